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
    assert!(out.contains("scan eff"), "{out}");
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
