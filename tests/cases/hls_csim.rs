//! C simulation of the generated HLS kernel: compiled with g++ and driven as a host drives the
//! card (docs/design.md section 7.1: a call answers many jobs over E lanes), bit-exact against
//! the golden model on 50 random configurations (`KVPQ_CSIM_CONFIGS=N` for more) with 2 to 4
//! engines, and on the default example with 2, as given and at 450 MHz (smaller). Each round
//! loads every head's codebook and runs uniform or tie-heavy jobs on every head (N not a
//! multiple of the beat, N < k, N = 0, k = 0, k = k_max, N and k above their limits), two with
//! a head out of range (request error) and one past `n_jobs` (ignored); a second call reuses
//! the codebooks left on chip. The first configuration also passes `n_jobs` above `MAX_JOBS`.
//! Each lane is as many buffers as its codes have stripes (`alveo::code_stripes`: 2 for the
//! default example, 4 at 450 MHz), the beats laid out as a host lays them: beat b of a job in
//! stripe b % S, b / S beats in. Every buffer is read back whole: the kernel may write
//! nothing but each job's header and results.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use hwgen::emit::hls;
use kvpq_core::golden::{GoldenEngine, Hit, QuantCodebook, QueryResult};
use kvpq_core::interface::alveo::{code_stripes, engine_arg, job, out_flags, MAX_JOBS};
use kvpq_core::spec::{Accelerator, Platform};
use kvpq_tests::random::small_accelerators;
use kvpq_tests::workload::{draw, Values};
use kvpq_tests::{compare, env_or, example};
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

/// One kernel call, as a host makes it.
pub(crate) struct Call<'a> {
    /// Every head's codebook (`engine.heads` of them), loaded before the jobs
    /// (`load_codebook = 1`); `None` keeps those on chip and passes a null `codebooks`.
    pub codebooks: Option<&'a [QuantCodebook]>,
    /// The jobs buffer; job j runs on lane j % `target.engines`.
    pub jobs: &'a [Job<'a>],
    /// The `n_jobs` argument: the kernel runs min(n_jobs, MAX_JOBS) jobs, which the buffer
    /// must hold; jobs past them must be left alone.
    pub n_jobs: u32,
}

/// What the kernel wrote for one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The results `out[1..=count]` and the header's shift.
    pub result: QueryResult,
    /// The header's count.
    pub count: usize,
    /// The header's flag bits (`out_flags::ALL`).
    pub flags: u64,
}

/// Written where results may go, so a word the kernel did not write is recognised.
const POISON: u64 = 0xa5a5_a5a5_a5a5_a5a5;

/// The numbers of a built C simulation that lay its buffers out, read back from the
/// `kvpq_params.h` it was compiled with (so a caller needs only the binary).
struct Built {
    engines: usize,
    stripes: usize,
    heads: usize,
    words_per_beat: usize,
    max_tokens: usize,
    k_max: usize,
    job_words: usize,
}

impl Built {
    fn read(bin: &Path) -> Result<Self, String> {
        let path = bin.with_file_name("kvpq_params.h");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let define = |name: &str| -> Result<usize, String> {
            text.lines()
                .find_map(|l| {
                    let mut w = l.split_whitespace();
                    (w.next() == Some("#define") && w.next() == Some(name))
                        .then(|| w.next()?.trim_end_matches('u').parse().ok())
                        .flatten()
                })
                .ok_or_else(|| format!("{}: no {name}", path.display()))
        };
        Ok(Self {
            engines: define("KVPQ_ENGINES")?,
            stripes: define("KVPQ_STRIPES")?,
            heads: define("KVPQ_HEADS")?,
            words_per_beat: define("KVPQ_WORDS_PER_BEAT")?,
            max_tokens: define("KVPQ_MAX_TOKENS")?,
            k_max: define("KVPQ_K_MAX")?,
            job_words: define("KVPQ_JOB_WORDS")?,
        })
    }
}

/// Where one job's results sit.
struct Placed {
    /// The buffer (in [`lay_out`]'s order): stripe 0 of its engine.
    buffer: usize,
    /// 64-bit words into it.
    out: usize,
    /// Result words the job may write after its header: min(k, n) clamped.
    room: usize,
}

fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

/// Lays out `call`'s buffers (codes shared by jobs of a lane that share them, each job's
/// result area poisoned with a poisoned word after it) and appends the call to `file`.
/// Returns the engine buffers in argument order (`lane{e}` of engine e at `e * stripes`, its
/// stripe s after it) and where each job's results go.
fn lay_out(built: &Built, call: &Call, file: &mut Vec<u8>) -> (Vec<Vec<u64>>, Vec<Placed>) {
    let engines = built.engines;
    let stripes = built.stripes;
    let wpb = built.words_per_beat;
    let mut lanes: Vec<Vec<u64>> = vec![Vec::new(); engines * stripes];
    let mut codes_at: Vec<Vec<(*const u64, usize, usize)>> = vec![Vec::new(); engines];
    let mut words: Vec<i32> = Vec::with_capacity(call.jobs.len() * built.job_words);
    let mut placed = Vec::with_capacity(call.jobs.len());
    for (j, jb) in call.jobs.iter().enumerate() {
        let e = j % engines;
        let lane = &mut lanes[e * stripes..(e + 1) * stripes];
        let key = (jb.beats.as_ptr(), jb.beats.len());
        let codes = match codes_at[e].iter().find(|(p, l, _)| (*p, *l) == key) {
            Some(&(_, _, at)) => at,
            None => {
                // One offset for every stripe, beat aligned (a multiple of the master's
                // width), past everything already in stripe 0 (the longest: it also holds the
                // results). Slots a stripe has no beat for stay poisoned.
                let at = lane[0].len().next_multiple_of(wpb);
                let end = at + jb.beats.len().div_ceil(wpb).div_ceil(stripes) * wpb;
                for buf in lane.iter_mut() {
                    buf.resize(end, POISON);
                }
                for (b, beat) in jb.beats.chunks(wpb).enumerate() {
                    let w = at + b / stripes * wpb;
                    lane[b % stripes][w..w + beat.len()].copy_from_slice(beat);
                }
                codes_at[e].push((key.0, key.1, at));
                at
            }
        };
        let lane = &mut lane[0];
        let n = jb.n_tokens.min(built.max_tokens);
        let room = jb.k.min(built.k_max).min(n);
        let out = lane.len();
        lane.resize(out + 2 + room, POISON);
        placed.push(Placed {
            buffer: e * stripes,
            out,
            room,
        });
        let mut header = [0i32; job::OUT + 2];
        header[job::N_TOKENS] = jb.n_tokens as u32 as i32;
        header[job::K] = jb.k as u32 as i32;
        header[job::HEAD] = jb.head as i32;
        for (at, bytes) in [(job::CODES, codes * 8), (job::OUT, out * 8)] {
            header[at] = bytes as u32 as i32;
            header[at + 1] = ((bytes as u64) >> 32) as u32 as i32;
        }
        words.extend_from_slice(&header);
        words.extend_from_slice(jb.query);
    }
    let cb: Vec<i32> = call
        .codebooks
        .into_iter()
        .flatten()
        .flat_map(|q| q.values.iter().copied())
        .collect();
    put_u32(file, u32::from(call.codebooks.is_some()));
    put_u32(file, call.n_jobs);
    put_u32(file, cb.len() as u32);
    put_u32(file, words.len() as u32);
    for lane in &lanes {
        put_u32(file, lane.len() as u32);
    }
    for v in cb.iter().chain(&words) {
        file.extend_from_slice(&v.to_le_bytes());
    }
    for w in lanes.iter().flatten() {
        file.extend_from_slice(&w.to_le_bytes());
    }
    (lanes, placed)
}

/// Runs `calls` one after another through the C simulation `bin` (one process, so the
/// codebooks stay on chip between calls); returns each call's answers to the jobs it runs.
/// Fails if the kernel wrote an engine buffer word outside those answers. `tag` names the call file
/// beside the binary.
pub(crate) fn run_calls(bin: &Path, calls: &[Call], tag: &str) -> Result<Vec<Vec<Answer>>, String> {
    let built = Built::read(bin)?;
    let heads = built.heads;
    let stripes = built.stripes;
    let mut file = Vec::new();
    let mut layouts = Vec::with_capacity(calls.len());
    for (i, call) in calls.iter().enumerate() {
        if call.codebooks.is_some_and(|cb| cb.len() != heads) {
            return Err(format!(
                "call {i}: a codebook for each of the {heads} heads"
            ));
        }
        if call.n_jobs.min(MAX_JOBS) as usize > call.jobs.len() {
            return Err(format!(
                "call {i}: n_jobs {} > {} jobs",
                call.n_jobs,
                call.jobs.len()
            ));
        }
        layouts.push(lay_out(&built, call, &mut file));
    }
    let input = bin.with_file_name(format!("calls-{tag}.bin"));
    let output = bin.with_file_name(format!("lanes-{tag}.bin"));
    std::fs::write(&input, file).map_err(|e| e.to_string())?;
    let run = Command::new(bin)
        .arg(&input)
        .arg(&output)
        .output()
        .map_err(|e| e.to_string())?;
    if !run.status.success() {
        return Err(format!(
            "csim exited with {}: {}",
            run.status,
            String::from_utf8_lossy(&run.stderr)
        ));
    }
    let bytes = std::fs::read(&output).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&input);
    let _ = std::fs::remove_file(&output);
    let mut back = bytes
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    let mut answers = Vec::with_capacity(calls.len());
    for (i, (call, (lanes, placed))) in calls.iter().zip(&layouts).enumerate() {
        let after: Vec<Vec<u64>> = lanes
            .iter()
            .map(|l| back.by_ref().take(l.len()).collect())
            .collect();
        if after.iter().zip(lanes).any(|(a, l)| a.len() != l.len()) {
            return Err(format!("call {i}: the engine buffers came back short"));
        }
        // Words each job may have written: its header and `count` results.
        let mut written: Vec<Vec<bool>> = lanes.iter().map(|l| vec![false; l.len()]).collect();
        let runs = call.n_jobs.min(MAX_JOBS) as usize;
        let mut got = Vec::with_capacity(runs);
        for (j, p) in placed.iter().take(runs).enumerate() {
            let lane = &after[p.buffer];
            let header = lane[p.out];
            if header == POISON {
                return Err(format!("call {i} job {j}: no header written"));
            }
            let count = header as u32 as usize;
            if count > p.room {
                return Err(format!(
                    "call {i} job {j}: header {header:#018x} counts {count} results, the job \
                     allows {}",
                    p.room
                ));
            }
            written[p.buffer][p.out..=p.out + count].fill(true);
            got.push(Answer {
                result: QueryResult {
                    hits: lane[p.out + 1..=p.out + count]
                        .iter()
                        .map(|&w| Hit {
                            index: w as u32,
                            score: (w >> 32) as u32 as i32,
                        })
                        .collect(),
                    shift: ((header & !out_flags::ALL) >> 32) as u32,
                },
                count,
                flags: header & out_flags::ALL,
            });
        }
        for (b, (before, after)) in lanes.iter().zip(&after).enumerate() {
            if let Some(w) = (0..before.len()).find(|&w| !written[b][w] && before[w] != after[w]) {
                return Err(format!(
                    "call {i}: {} word {w} became {:#018x} (was {:#018x}): outside every \
                     job's results",
                    engine_arg((b / stripes) as u32, (b % stripes) as u32),
                    after[w],
                    before[w]
                ));
            }
        }
        answers.push(got);
    }
    Ok(answers)
}

/// Runs `jobs` as one call of the C simulation `bin`, every head loaded with `codebook`;
/// returns each job's result and reported count (no flag may be set).
pub(crate) fn run_jobs(
    bin: &Path,
    codebook: &QuantCodebook,
    jobs: &[Job],
    tag: &str,
) -> Result<Vec<(QueryResult, usize)>, String> {
    let codebooks = vec![codebook.clone(); Built::read(bin)?.heads];
    let call = Call {
        codebooks: Some(&codebooks),
        jobs,
        n_jobs: jobs.len() as u32,
    };
    let answers = run_calls(bin, &[call], tag)?.remove(0);
    answers
        .into_iter()
        .enumerate()
        .map(|(j, a)| match a.flags {
            0 => Ok((a.result, a.count)),
            f => Err(format!("job {j}: flags {f:#018x}")),
        })
        .collect()
}

/// `acc` on an Alveo card with `engines` engines (several exist only in the Alveo kernel).
fn with_engines(acc: &Accelerator, engines: u32) -> Accelerator {
    let mut c = acc.config().clone();
    if !c.target.platform.is_alveo() {
        c.target.platform = Platform::U55c;
    }
    c.target.engines = Some(engines);
    Accelerator::new(c).unwrap_or_else(|e| panic!("{}: {e}", acc.config().name))
}

/// What the golden model says the kernel writes for `jb` (`goldens`: one per head).
fn expected(acc: &Accelerator, goldens: &[GoldenEngine], jb: &Job) -> Result<Answer, String> {
    let c = acc.config();
    let n = jb.n_tokens.min(c.engine.max_tokens as usize);
    let k = jb.k.min(c.topk.k_max as usize);
    match goldens.get(jb.head as usize) {
        Some(g) => {
            let result = g.run(jb.query, jb.beats, n, k).map_err(|e| e.to_string())?;
            Ok(Answer {
                count: result.hits.len(),
                result,
                flags: 0,
            })
        }
        // A head out of range: the LUT from codebook 0 gives the shift, nothing else is kept.
        None => {
            let shift = goldens[0]
                .run(jb.query, jb.beats, n, k)
                .map_err(|e| e.to_string())?
                .shift;
            Ok(Answer {
                result: QueryResult {
                    hits: Vec::new(),
                    shift,
                },
                count: 0,
                flags: out_flags::REQUEST_ERROR,
            })
        }
    }
}

/// Checks every answer of `calls` against the golden model; returns how many were checked.
fn check(
    acc: &Accelerator,
    goldens: &[GoldenEngine],
    calls: &[Call],
    answers: &[Vec<Answer>],
    what: &str,
) -> Result<usize, String> {
    let mut checked = 0;
    for (i, (call, got)) in calls.iter().zip(answers).enumerate() {
        for (j, (jb, got)) in call.jobs.iter().zip(got).enumerate() {
            let want = expected(acc, goldens, jb)?;
            let (n, k, head) = (jb.n_tokens, jb.k, jb.head);
            let at = || {
                format!(
                    "{} ({what}, call {i} job {j}: n {n}, k {k}, head {head}, lane {})",
                    acc.config().name,
                    j % acc.config().target.engines() as usize
                )
            };
            compare("csim", &got.result, got.count, &want.result)
                .map_err(|e| format!("{}: {e}\n{}", at(), acc.config().to_toml_string()))?;
            if got.flags != want.flags {
                return Err(format!(
                    "{}: flags {:#018x}, want {:#018x}",
                    at(),
                    got.flags,
                    want.flags
                ));
            }
            checked += 1;
        }
    }
    Ok(checked)
}

fn run_config(acc: &Accelerator, seed: u64, clamp_jobs: bool) -> Result<usize, String> {
    let name = &acc.config().name;
    let bin = build(acc).map_err(|e| format!("{name}: {e}"))?;
    let c = acc.config();
    let max_n = c.engine.max_tokens as usize;
    let k_max = c.topk.k_max as usize;
    let tpb = acc.derived().layout.tokens_per_beat as usize;
    let heads = c.engine.heads();
    let shapes = [
        (max_n, k_max),
        (max_n / 2 + 1, k_max.div_ceil(2)),
        (k_max.saturating_sub(1), k_max),
        (0, 1),
        (max_n, 0),
        ((tpb + 1).min(max_n), k_max),
        // Above the limits: clamped to max_tokens and k_max.
        (max_n + 1, u32::MAX as usize),
    ];
    let mut checked = 0;
    for (round, values) in [Values::Uniform, Values::Ties].into_iter().enumerate() {
        let seed = seed * 2 + round as u64;
        let wl = draw(acc, max_n, shapes.len() + 2, values, seed);
        // Head 0 is the workload's codebook; the others are drawn alike.
        let codebooks: Vec<QuantCodebook> = std::iter::once(wl.codebook.clone())
            .chain(
                (1..heads).map(|h| draw(acc, 0, 0, values, seed ^ (u64::from(h) << 32)).codebook),
            )
            .collect();
        let goldens = codebooks
            .iter()
            .map(|cb| GoldenEngine::new(acc, cb.clone()).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let mk = |(n_tokens, k): (usize, usize), query: usize, head: u32| Job {
            query: &wl.queries[query],
            beats: &wl.beats,
            n_tokens,
            k,
            head,
        };
        // Call 1 loads the codebooks: every shape, heads in turn, then two heads out of range,
        // then a job past n_jobs.
        let mut first: Vec<Job> = shapes
            .iter()
            .enumerate()
            .map(|(i, &s)| mk(s, i, i as u32 % heads))
            .collect();
        first.push(mk((max_n, k_max), shapes.len(), heads));
        first.push(mk(((tpb + 1).min(max_n), 1), shapes.len() + 1, u32::MAX));
        let n_first = first.len() as u32;
        first.push(mk((max_n, k_max), 0, 0));
        // Call 2 keeps them: the shapes again, on other heads and lanes.
        let second: Vec<Job> = shapes
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, &s)| mk(s, i, (i as u32 + 1) % heads))
            .collect();
        let mut calls = vec![
            Call {
                codebooks: Some(&codebooks),
                jobs: &first,
                n_jobs: n_first,
            },
            Call {
                codebooks: None,
                jobs: &second,
                n_jobs: second.len() as u32,
            },
        ];
        // n_jobs above MAX_JOBS: exactly MAX_JOBS tiny jobs run, the one after them does not.
        let many: Vec<Job> = if clamp_jobs && round == 0 {
            (0..=MAX_JOBS as usize)
                .map(|j| mk((j % 3, 1), j % wl.queries.len(), j as u32 % heads))
                .collect()
        } else {
            Vec::new()
        };
        if !many.is_empty() {
            calls.push(Call {
                codebooks: None,
                jobs: &many,
                n_jobs: u32::MAX,
            });
        }
        let answers = run_calls(&bin, &calls, &format!("{seed}"))
            .map_err(|e| format!("{name} ({values:?}): {e}"))?;
        checked += check(acc, &goldens, &calls, &answers, &format!("{values:?}"))?;
    }
    Ok(checked)
}

#[test]
fn hls_csim_matches_the_golden_model() {
    let count = env_or("KVPQ_CSIM_CONFIGS", 50) as usize;
    let seed = env_or("KVPQ_CSIM_SEED", 5);
    // Random descriptions with 2 to 4 engines, and the default example with 2 (as given, and
    // at 450 MHz).
    let mut accs: Vec<Accelerator> = small_accelerators(seed, count)
        .iter()
        .enumerate()
        .map(|(i, a)| with_engines(a, 2 + (i % 3) as u32))
        .collect();
    let llama = with_engines(&example("pqcache-llama3"), 2);
    // The same beats at 450 MHz need four stripes; shrunk so that it runs in a moment.
    let mut c = llama.config().clone();
    c.name = format!("{}-450mhz", c.name);
    c.target.clock_mhz = 450.0;
    c.engine.max_tokens = 4096;
    c.engine.heads = Some(4);
    c.topk.k_max = 256;
    accs.push(llama);
    accs.push(Accelerator::new(c).expect("pqcache-llama3 at 450 MHz"));
    // The host's striped layout must be exercised: the default example's 512-bit beats at
    // 250 MHz need two pseudo-channels an engine, at 450 MHz four.
    let stripes: Vec<u32> = accs.iter().map(|a| code_stripes(a.config())).collect();
    for s in [2, 4] {
        assert!(
            stripes.contains(&s),
            "no configuration has {s} code stripes"
        );
    }
    let striped = stripes.iter().filter(|&&s| s > 1).count();
    let results: Vec<Result<usize, String>> = accs
        .par_iter()
        .enumerate()
        .map(|(i, a)| run_config(a, seed * 1000 + i as u64, i == 0))
        .collect();
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} configs failed:\n{}",
        failures.len(),
        accs.len(),
        failures
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let queries: usize = results.iter().filter_map(|r| r.as_ref().ok()).sum();
    println!(
        "{} configs ({striped} with striped codes), {queries} jobs bit-exact (flags included)",
        accs.len()
    );
}
