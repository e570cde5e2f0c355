//! C simulation of the generated HLS kernel: compiled with g++ and run against the golden
//! model, bit-exact on 50 random configurations (`KVPQ_CSIM_CONFIGS=N` for more), with
//! uniform and tie-heavy data, N not a multiple of the beat, N < k, N = 0, k = 0, k = k_max.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use hwgen::emit::hls;
use kvpq_core::golden::{GoldenEngine, Hit, QuantCodebook, QueryResult};
use kvpq_core::spec::Accelerator;
use kvpq_tests::random::small_accelerators;
use kvpq_tests::workload::{draw, Values};
use kvpq_tests::{compare, env_or};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use sim::Job;

/// Compiles the C simulation of `acc` (cached by the hash of its sources); returns the binary.
pub(crate) fn build(acc: &Accelerator) -> Result<PathBuf, String> {
    let files = hls::render(acc).map_err(|e| e.to_string())?;
    let mut h = Sha256::new();
    for f in &files {
        h.update(f.text.as_bytes());
    }
    let key: String = h
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../target/kvpq-csim/{}-{key}", acc.config().name));
    let bin = dir.join("csim");
    if bin.is_file() {
        return Ok(bin);
    }
    // Compiled in a folder of its own, then moved in (a rename replaces atomically): another
    // test may build the same kernel at the same time (hls_csim and cosim_adversarial).
    static BUILDS: AtomicUsize = AtomicUsize::new(0);
    let tmp = dir.join(format!(
        "build{}-{}",
        std::process::id(),
        BUILDS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    for f in &files {
        std::fs::write(tmp.join(&f.file_name), &f.text).map_err(|e| e.to_string())?;
    }
    let out = Command::new("g++")
        .args([
            "-std=c++17",
            "-O1",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-Wno-unknown-pragmas",
            "-Wno-unused-label",
            "pq_topk_kernel.cpp",
            "csim_main.cpp",
            "-o",
            "csim",
        ])
        .current_dir(&tmp)
        .output()
        .map_err(|e| format!("g++: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "g++ failed in {}:\n{}",
            tmp.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // The binary last: once it is there, the folder is complete.
    for name in files.iter().map(|f| f.file_name.as_str()).chain(["csim"]) {
        std::fs::rename(tmp.join(name), dir.join(name)).map_err(|e| e.to_string())?;
    }
    let _ = std::fs::remove_dir(&tmp);
    Ok(bin)
}

/// Runs `jobs` through the C simulation `bin` (the first call loads `codebook`); returns each
/// job's result and reported count. `tag` names the job file beside the binary.
pub(crate) fn run_jobs(
    bin: &Path,
    codebook: &QuantCodebook,
    jobs: &[Job],
    tag: &str,
) -> Result<Vec<(QueryResult, usize)>, String> {
    let mut text = String::new();
    for v in codebook.values.iter() {
        write!(text, "{v} ").unwrap();
    }
    text.push('\n');
    for job in jobs {
        write!(text, "{} {} ", job.n_tokens, job.k).unwrap();
        for v in job.query {
            write!(text, "{v} ").unwrap();
        }
        write!(text, "{} ", job.beats.len()).unwrap();
        for w in job.beats {
            write!(text, "{w:x} ").unwrap();
        }
        text.push('\n');
    }
    let path = bin.with_file_name(format!("job-{tag}.txt"));
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    let out = Command::new(bin)
        .arg(&path)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("csim exited with {}", out.status));
    }
    let parse = |line: &str| -> Option<(QueryResult, usize)> {
        let mut parts = line.split_whitespace();
        let count = parts.next()?.parse().ok()?;
        let shift = parts.next()?.parse().ok()?;
        let hits = parts
            .map(|p| {
                let (i, s) = p.split_once(':')?;
                Some(Hit {
                    index: i.parse().ok()?,
                    score: s.parse().ok()?,
                })
            })
            .collect::<Option<Vec<Hit>>>()?;
        Some((QueryResult { hits, shift }, count))
    };
    let results = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| parse(l).ok_or_else(|| format!("bad csim line: {l}")))
        .collect::<Result<Vec<_>, String>>()?;
    if results.len() != jobs.len() {
        return Err(format!(
            "csim printed {} lines for {} jobs",
            results.len(),
            jobs.len()
        ));
    }
    Ok(results)
}

fn run_config(acc: &Accelerator, seed: u64) -> Result<usize, String> {
    let name = &acc.config().name;
    let bin = build(acc).map_err(|e| format!("{name}: {e}"))?;
    let max_n = acc.config().engine.max_tokens as usize;
    let k_max = acc.config().topk.k_max as usize;
    let tpb = acc.derived().layout.tokens_per_beat as usize;
    let shapes = [
        (max_n, k_max),
        (max_n / 2 + 1, k_max.div_ceil(2)),
        (k_max.saturating_sub(1), k_max),
        (0, 1),
        (max_n, 0),
        ((tpb + 1).min(max_n), k_max),
    ];
    let mut checked = 0;
    for (round, values) in [Values::Uniform, Values::Ties].into_iter().enumerate() {
        let wl = draw(acc, max_n, shapes.len(), values, seed * 2 + round as u64);
        let golden = GoldenEngine::new(acc, wl.codebook.clone()).map_err(|e| e.to_string())?;
        let jobs = wl.jobs(&shapes);
        let got = run_jobs(&bin, &wl.codebook, &jobs, &format!("{seed}-{round}"))
            .map_err(|e| format!("{name}: {e}"))?;
        for (job, (got, count)) in jobs.iter().zip(&got) {
            let (n, k) = (job.n_tokens, job.k);
            let want = golden
                .run(job.query, job.beats, n, k)
                .map_err(|e| e.to_string())?;
            compare("csim", got, *count, &want).map_err(|e| {
                format!(
                    "{name} ({values:?}, n {n}, k {k}): {e}\n{}",
                    acc.config().to_toml_string()
                )
            })?;
            checked += 1;
        }
    }
    Ok(checked)
}

#[test]
fn hls_csim_matches_the_golden_model() {
    let count = env_or("KVPQ_CSIM_CONFIGS", 50) as usize;
    let seed = env_or("KVPQ_CSIM_SEED", 5);
    let accs = small_accelerators(seed, count);
    let results: Vec<Result<usize, String>> = accs
        .par_iter()
        .enumerate()
        .map(|(i, a)| run_config(a, seed * 1000 + i as u64))
        .collect();
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {count} configs failed:\n{}",
        failures.len(),
        failures
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let queries: usize = results.iter().filter_map(|r| r.as_ref().ok()).sum();
    println!("{count} configs, {queries} queries bit-exact");
}
