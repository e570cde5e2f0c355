//! The `hwgen` binary as a user runs it.

use std::path::PathBuf;
use std::process::Command;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn hwgen(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hwgen"))
        .args(args)
        .output()
        .expect("hwgen runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_prints_the_derived_view_of_every_example() {
    let dir = examples();
    let paths: Vec<String> = ["pqcache-llama3", "fastscan-4bit", "large-m16-b8"]
        .iter()
        .map(|n| dir.join(format!("{n}.toml")).display().to_string())
        .collect();
    let args: Vec<&str> = std::iter::once("check")
        .chain(paths.iter().map(String::as_str))
        .collect();
    let (ok, out, err) = hwgen(&args);
    assert!(ok, "{err}");
    for name in ["pqcache-llama3", "fastscan-4bit", "large-m16-b8"] {
        assert!(
            out.contains(&format!("accelerator `{name}`: valid")),
            "{out}"
        );
    }
    assert!(out.contains("accumulator 22"), "{out}");
    for column in ["scan eff", "eng eff", "interval", "Mtok/s"] {
        assert!(out.contains(column), "{column}: {out}");
    }
}

/// The row for `tokens` of a projection table (`hwgen check`, `hwgen report`): tokens, k,
/// scan, drain, latency, interval, scan eff, eng eff, Mtok/s, us/query.
fn projection_row(out: &str, tokens: u32) -> Vec<f64> {
    let row: Vec<&str> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() == 10 && f[0] == tokens.to_string())
        .unwrap_or_else(|| panic!("no projection row for {tokens}:\n{out}"));
    row.iter()
        .map(|v| v.parse().unwrap_or_else(|e| panic!("{v}: {e}\n{out}")))
        .collect()
}

#[test]
fn check_and_report_project_throughput_from_the_query_interval() {
    let dir = scratch("projection");
    let cfg = examples().join("pqcache-llama3.toml");
    let (ok, _, err) = generate(&cfg, &dir, &[]);
    assert!(ok, "{err}");
    let (ok, report, err) = hwgen(&["report", dir.to_str().unwrap()]);
    assert!(ok, "{err}");
    let (ok, check, err) = hwgen(&["check", cfg.to_str().unwrap()]);
    assert!(ok, "{err}");
    std::fs::remove_dir_all(&dir).ok();
    let acc = kvpq_core::spec::Accelerator::from_toml_file(&cfg).unwrap();
    let c = &acc.derived().cycles;
    let (lanes, mhz) = (f64::from(acc.config().scanner.lanes), 250.0);
    let n = 131072u32;
    let k = acc.policy_k(n).min(acc.config().topk.k_max);
    let interval = c.query_interval(u64::from(n), u64::from(k));
    for out in [&report, &check] {
        let row = projection_row(out, n);
        assert_eq!(row[1], f64::from(k), "k from the policy:\n{out}");
        assert_eq!(row[5], interval as f64, "interval:\n{out}");
        // The interval holds the scan and, apart, the top-k drain (which overlaps the next scan).
        assert!(row[5] >= row[2].max(row[3]), "{out}");
        let want = f64::from(n) * mhz / interval as f64;
        assert!(
            (row[8] - want).abs() <= 0.05 + 1e-9,
            "Mtok/s {} vs {want}",
            row[8]
        );
        assert!(
            (row[7] - want / (lanes * mhz)).abs() <= 0.0005 + 1e-9,
            "{out}"
        );
        // The engine never beats its scan.
        assert!(row[7] <= row[6] + 1e-9, "{out}");
        assert!(row[6] > 0.99, "scan efficiency:\n{out}");
    }
    assert!(
        report.contains("projected at the description's 250.0 MHz"),
        "{report}"
    );
    assert!(report.contains("the scan alone"), "{report}");
}

#[test]
fn check_refuses_an_invalid_config_naming_field_and_rule() {
    let dir = std::env::temp_dir().join(format!("hwgen-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(examples().join("pqcache-llama3.toml"))
        .unwrap()
        .replace("lanes = 42", "lanes = 8");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, text).unwrap();
    let (ok, _, err) = hwgen(&["check", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("`scanner.lanes` = 8"), "{err}");
    assert!(err.contains("must divide the 42 tokens of a beat"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn golden_reports_recall() {
    let cfg = examples().join("fastscan-4bit.toml");
    let (ok, out, err) = hwgen(&[
        "golden",
        cfg.to_str().unwrap(),
        "--tokens",
        "2048",
        "--queries",
        "2",
        "--kmeans-iters",
        "5",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("recall@"), "{out}");
    assert!(out.contains("bit-exact engine"), "{out}");
}

#[test]
fn missing_config_is_a_clear_error() {
    let (ok, _, err) = hwgen(&["golden", "does-not-exist.toml"]);
    assert!(!ok);
    assert!(err.contains("does-not-exist.toml"), "{err}");
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hwgen-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every example, `copies` times over: far more output than a pipe buffers, so the writer
/// is still writing when the reader goes away.
fn many_examples(copies: usize) -> Vec<String> {
    let mut paths: Vec<String> = std::fs::read_dir(examples())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| p.display().to_string())
        .collect();
    paths.sort();
    assert!(paths.len() >= 4, "{paths:?}");
    paths
        .iter()
        .cycle()
        .take(paths.len() * copies)
        .cloned()
        .collect()
}

#[test]
fn closed_pipe_ends_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_hwgen"))
        .arg("check")
        .args(many_examples(100))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hwgen runs");
    let mut head = [0u8; 10];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    // The read end is dropped here, like `| head -c 10`.
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.is_empty(), "expected a quiet exit, got:\n{err}");
    assert!(out.status.success(), "{:?}", out.status);
}

#[test]
fn full_disk_is_an_error_not_a_panic() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return; // no /dev/full on this system
    };
    let out = Command::new(env!("CARGO_BIN_EXE_hwgen"))
        .arg("check")
        .args(many_examples(1))
        .stdout(full)
        .output()
        .expect("hwgen runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("error: writing output: No space left on device"),
        "{err}"
    );
}

#[test]
fn oversize_description_is_refused() {
    let dir = scratch("oversize");
    let text = std::fs::read_to_string(examples().join("pqcache-llama3.toml"))
        .unwrap()
        .replace(
            "name = \"pqcache-llama3\"",
            &format!("name = \"a{}\"", "b".repeat(20 << 20)),
        );
    let big = dir.join("big.toml");
    std::fs::write(&big, text).unwrap();
    let (ok, _, err) = hwgen(&["check", big.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("big.toml"), "{err}");
    assert!(err.contains("1048576-byte limit"), "{err}");
    assert!(err.len() < 1000, "{} bytes of error", err.len());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn wrong_type_names_the_field() {
    let dir = scratch("type");
    let text = std::fs::read_to_string(examples().join("pqcache-llama3.toml"))
        .unwrap()
        .replace("lanes = 42", "lanes = \"4\"");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, text).unwrap();
    let (ok, _, err) = hwgen(&["check", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("scanner.lanes: invalid type: string \"4\", expected u32"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A generated folder whose manifest `edit` corrupts; returns `hwgen report`'s result.
fn report_after(name: &str, edit: impl Fn(&mut serde_json::Value)) -> (bool, String, String) {
    let dir = scratch(name);
    let cfg = examples().join("fastscan-4bit.toml");
    let (ok, _, err) = hwgen(&[
        "generate",
        cfg.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let path = dir.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // The report reads the folder as is first.
    let (ok, out, err) = hwgen(&["report", dir.to_str().unwrap()]);
    assert!(ok && out.contains("fastscan-4bit"), "{err}");
    edit(&mut m);
    std::fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    let result = hwgen(&["report", dir.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).ok();
    result
}

/// An ECP5 record as `hwgen build` writes it.
fn ecp5_record(achieved: f64, used: u64, available: u64) -> serde_json::Value {
    serde_json::json!({
        "board": "ulx3s",
        "device": "--85k --package CABGA381",
        "top": "ulx3s_top",
        "bitstream": "design.bit",
        "core_clock": "clk",
        "fmax": { "achieved": achieved, "constraint": 100.0 },
        "utilization": { "TRELLIS_COMB": { "used": used, "available": available } },
        "seconds": [["synth", 1.0]]
    })
}

#[test]
fn report_refuses_zero_lanes() {
    let (ok, out, err) = report_after("lanes0", |m| m["config"]["scanner"]["lanes"] = 0.into());
    assert!(!ok, "{out}");
    assert!(!out.contains("inf"), "{out}");
    assert!(err.contains("`scanner.lanes` = 0"), "{err}");
    assert!(err.contains("manifest field `config`"), "{err}");
}

#[test]
fn report_refuses_a_negative_fmax() {
    let (ok, out, err) = report_after("fmax", |m| m["ecp5"] = ecp5_record(-42.0, 10, 100));
    assert!(!ok, "{out}");
    assert!(!out.contains("met"), "{out}");
    assert!(err.contains("ecp5.fmax.achieved"), "{err}");
    assert!(err.contains("-42 MHz is not a clock frequency"), "{err}");
}

#[test]
fn report_refuses_more_used_than_available() {
    let (ok, out, err) = report_after("used", |m| m["ecp5"] = ecp5_record(90.0, u64::MAX, 83640));
    assert!(!ok, "{out}");
    assert!(!out.contains('%'), "{out}");
    assert!(err.contains("ecp5.utilization.TRELLIS_COMB"), "{err}");
    assert!(err.contains("used of 83640 available"), "{err}");
}

#[test]
fn report_of_a_valid_ecp5_record_prints_it() {
    // The same record with plausible numbers is accepted: the refusals above are about the
    // values, not the record's shape.
    let (ok, out, err) = report_after("valid", |m| m["ecp5"] = ecp5_record(90.0, 10, 100));
    assert!(ok, "{err}");
    assert!(out.contains("90.0 MHz achieved"), "{out}");
    // Projected again at the achieved clock, from the interval.
    let at = out.find("projected at the achieved 90.0 MHz").expect(&out);
    let row = projection_row(&out[at..], 4096);
    let want = 4096.0 * 90.0 / row[5];
    assert!((row[8] - want).abs() <= 0.05 + 1e-9, "{out}");
}

#[test]
fn golden_bounds_queries_and_tokens() {
    let cfg = examples().join("fastscan-4bit.toml");
    let cfg = cfg.to_str().unwrap();
    let (ok, _, err) = hwgen(&["golden", cfg, "--queries", "4294967295"]);
    assert!(!ok);
    assert!(
        err.contains("--queries 4294967295: must be in 1..=65536"),
        "{err}"
    );
    let (ok, _, err) = hwgen(&["golden", cfg, "--tokens", "0"]);
    assert!(!ok);
    assert!(err.contains("--tokens 0"), "{err}");
}

#[test]
fn golden_refuses_a_huge_gqa_group_at_check() {
    let dir = scratch("gqa");
    let text = std::fs::read_to_string(examples().join("fastscan-4bit.toml"))
        .unwrap()
        .replace("gqa_group = 4", "gqa_group = 4294967295");
    let bad = dir.join("gqa.toml");
    std::fs::write(&bad, text).unwrap();
    let (ok, _, err) = hwgen(&["golden", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("`retrieval.gqa_group` = 4294967295"), "{err}");
    assert!(err.contains("at most 1024"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn golden_says_recall_does_not_apply_when_k_is_zero() {
    // fastscan-4bit keeps 32 sinks: at 33 tokens the local window takes the last one.
    let cfg = examples().join("fastscan-4bit.toml");
    let (ok, out, err) = hwgen(&[
        "golden",
        cfg.to_str().unwrap(),
        "--tokens",
        "33",
        "--queries",
        "2",
        "--kmeans-iters",
        "2",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("recall: not applicable, k = 0 (sinks + local window only)"),
        "{out}"
    );
    assert!(!out.contains("recall@0"), "{out}");
}

fn generate(
    cfg: &std::path::Path,
    dir: &std::path::Path,
    extra: &[&str],
) -> (bool, String, String) {
    let mut args = vec![
        "generate",
        cfg.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    hwgen(&args)
}

/// Every file under `dir`, relative, sorted.
fn tree(dir: &std::path::Path) -> Vec<String> {
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn generate_refuses_to_mix_two_designs() {
    let root = scratch("mix");
    let dir = root.join("out");
    let (ok, _, err) = generate(&examples().join("pqcache-llama3.toml"), &dir, &[]);
    assert!(ok, "{err}");
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let fastscan = examples().join("fastscan-4bit.toml");
    let (ok, _, err) = generate(&fastscan, &dir, &[]);
    assert!(!ok);
    assert!(err.contains(&dir.display().to_string()), "{err}");
    assert!(err.contains("holds the design `pqcache-llama3`"), "{err}");
    assert!(err.contains("--force"), "{err}");
    // Nothing was written: the folder is still the old design.
    assert!(tree(&dir).contains(&"kvpq_krnl.v".to_string()));

    let (ok, out, err) = generate(&fastscan, &dir, &["--force"]);
    assert!(ok, "{err}");
    assert!(out.contains("removed"), "{out}");
    let files = tree(&dir);
    for stale in ["kvpq_krnl.v", "hls/kvpq_params.h", "vitis/Makefile"] {
        assert!(
            !files.contains(&stale.to_string()),
            "{stale} left: {files:?}"
        );
    }
    // Files no manifest accounts for are never touched.
    assert!(files.contains(&"notes.txt".to_string()), "{files:?}");
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let mut listed: Vec<String> = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    listed.extend(["README.md", "manifest.json", "notes.txt"].map(String::from));
    // An ECP5 design's folder also holds its board files (the target's render).
    if m["config"]["target"]["platform"] == "ecp5" {
        listed.extend(
            [
                "kvpq_uart_rx.v",
                "kvpq_uart_tx.v",
                "kvpq_ulx3s_top.v",
                "ulx3s.lpf",
            ]
            .map(String::from),
        );
    }
    listed.sort();
    assert_eq!(files, listed);
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn generate_refuses_stale_files_of_the_same_design() {
    let root = scratch("stale");
    let dir = root.join("out");
    let cfg = examples().join("pqcache-llama3.toml");
    let (ok, _, err) = generate(&cfg, &dir, &[]);
    assert!(ok, "{err}");
    // The same design again is fine: every file is rewritten.
    let (ok, _, err) = generate(&cfg, &dir, &[]);
    assert!(ok, "{err}");
    // The same design without its Alveo target would leave the kernel and projects behind.
    let (ok, _, err) = generate(&cfg, &dir, &["--target", "generic"]);
    assert!(!ok);
    assert!(
        err.contains("of the previous generation would remain"),
        "{err}"
    );
    assert!(err.contains("kvpq_krnl.v"), "{err}");
    let (ok, _, err) = generate(&cfg, &dir, &["--target", "generic", "--force"]);
    assert!(ok, "{err}");
    let files = tree(&dir);
    assert!(
        !files
            .iter()
            .any(|f| f.starts_with("vitis") || f == "kvpq_krnl.v"),
        "{files:?}"
    );
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn force_never_deletes_outside_the_folder() {
    let root = scratch("escape");
    let dir = root.join("out");
    let cfg = examples().join("fastscan-4bit.toml");
    let (ok, _, err) = generate(&cfg, &dir, &[]);
    assert!(ok, "{err}");
    let victim = root.join("victim.txt");
    std::fs::write(&victim, "keep").unwrap();
    let path = dir.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    m["files"][0]["name"] = "../victim.txt".into();
    m["config"]["name"] = "other".into();
    std::fs::write(&path, m.to_string()).unwrap();
    let (ok, _, err) = generate(&cfg, &dir, &["--force"]);
    assert!(ok, "{err}");
    assert!(victim.exists(), "--force deleted a file outside the folder");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn generate_refuses_an_unreadable_manifest() {
    let root = scratch("garbage");
    let dir = root.join("out");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("manifest.json"), "not json").unwrap();
    let cfg = examples().join("fastscan-4bit.toml");
    let (ok, _, err) = generate(&cfg, &dir, &[]);
    assert!(!ok);
    assert!(err.contains("manifest.json that cannot be read"), "{err}");
    let (ok, _, err) = generate(&cfg, &dir, &["--force"]);
    assert!(ok, "{err}");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn endless_inputs_are_refused() {
    if !std::path::Path::new("/dev/zero").exists() {
        return;
    }
    let (ok, _, err) = hwgen(&["check", "/dev/zero"]);
    assert!(!ok);
    assert!(err.contains("1048576-byte limit of a description"), "{err}");
    let dir = scratch("explore-zero");
    let (ok, _, err) = hwgen(&["explore", "/dev/zero", "--out", dir.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("1048576-byte limit of a space file"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
