//! The runtime's board device (`kvpq-runtime` with feature `board`) without a board: a
//! pseudo-terminal stands in for the ULX3S's UART, and a bridge thread feeds the bytes the
//! device writes into the Verilator model of `kvpq_board_top` and writes the model's result
//! bytes back. Whole layer calls over several slots (so the board's one codebook is reloaded)
//! must be bit-exact with the golden model, shifts of empty searches included; a port that
//! does not exist is `Unavailable`, and a board that stops answering is a `Fault` after the
//! timeout, not a hang.
//!
//! With a ULX3S attached, `KVPQ_BOARD_PORT=/dev/ttyUSB0 KVPQ_BOARD_DIR=bitstreams/<folder>`
//! also runs layer calls on the real board (docs/board.md); without them that test passes
//! without doing anything.

use std::io::{ErrorKind, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hwgen::emit::Design;
use hwgen_cli::commands::generate::generate;
use kvpq_core::golden::GoldenEngine;
use kvpq_core::interface::{BoardFormat, Streams};
use kvpq_core::spec::Accelerator;
use kvpq_runtime::backends::board::BoardDevice;
use kvpq_runtime::{Device, HeadQuery, ModelShape, RuntimeError};
use kvpq_tests::random::small_accelerators;
use kvpq_tests::scratch;
use kvpq_tests::workload::{draw, IntWorkload, Values};
use serialport::{SerialPort, TTYPort};
use sim::board::BoardSim;
use sim::{build_model, default_cache, Stalls};

/// Cycles the bridge clocks the model between looks at the port.
const PUMP_CYCLES: u64 = 4096;
/// How long the device waits for the simulated board: a model on a loaded machine is slow.
const SIM_TIMEOUT: Duration = Duration::from_secs(120);

/// A thread playing the board on the master side of a pseudo-terminal; the device opens the
/// slave side by path.
struct Bridge {
    path: String,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<(), String>>,
    /// The slave end stays open until the bridge ends, so the master never sees a hang-up
    /// between the device's open and close.
    _slave: TTYPort,
}

impl Bridge {
    /// Starts `serve` on the master end of a new pseudo-terminal pair.
    fn start(
        serve: impl FnOnce(TTYPort, &AtomicBool) -> Result<(), String> + Send + 'static,
    ) -> Self {
        let (master, slave) = TTYPort::pair().expect("a pseudo-terminal pair");
        let path = slave.name().expect("the slave end has a path");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || serve(master, &flag));
        Self {
            path,
            stop,
            thread,
            _slave: slave,
        }
    }

    /// The model of `kvpq_board_top` for `acc` behind the pseudo-terminal.
    fn model(acc: &Accelerator, seed: u64) -> Self {
        let name = acc.config().name.clone();
        let design = Design::render(acc).unwrap_or_else(|e| panic!("{name}: {e}"));
        let built = build_model(&design, "kvpq_board_top", &default_cache())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let acc = acc.clone();
        Self::start(move |mut port, stop| {
            // Random gaps on both byte streams, as a UART's pacing would make.
            let stalls = Stalls {
                input_valid: 0.6,
                output_ready: 0.6,
            };
            let mut sim = BoardSim::new(&built, &acc, seed, stalls).map_err(|e| e.to_string())?;
            let mut buf = [0u8; 4096];
            while !stop.load(Ordering::Relaxed) {
                // Block (briefly, to see `stop`) only when the model has nothing to do.
                let wait = if sim.idle() {
                    Duration::from_millis(20)
                } else {
                    Duration::ZERO
                };
                port.set_timeout(wait).map_err(|e| e.to_string())?;
                match port.read(&mut buf) {
                    Ok(n) => sim.push(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::TimedOut => {}
                    Err(e) => return Err(format!("bridge read: {e}")),
                }
                let out = sim.pump(PUMP_CYCLES);
                if !out.is_empty() {
                    port.set_timeout(SIM_TIMEOUT).map_err(|e| e.to_string())?;
                    port.write_all(&out)
                        .map_err(|e| format!("bridge write: {e}"))?;
                }
            }
            Ok(())
        })
    }

    /// A board that takes every byte and never answers.
    fn silent() -> Self {
        Self::start(|mut port, stop| {
            port.set_timeout(Duration::from_millis(20))
                .map_err(|e| e.to_string())?;
            let mut buf = [0u8; 4096];
            while !stop.load(Ordering::Relaxed) {
                match port.read(&mut buf) {
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::TimedOut => {}
                    Err(e) => return Err(format!("bridge read: {e}")),
                }
            }
            Ok(())
        })
    }

    /// A board that, once `after` bytes have arrived, answers with one record marked last: a
    /// query expecting more results ends early.
    fn early(acc: &Accelerator, after: usize) -> Self {
        let f = BoardFormat::of(&Streams::of(acc));
        let last = 1u128 << (f.index_bits + f.score_bits + f.shift_bits);
        let record = last.to_le_bytes()[..f.record_bytes()].to_vec();
        Self::start(move |mut port, stop| {
            port.set_timeout(Duration::from_millis(20))
                .map_err(|e| e.to_string())?;
            let mut buf = [0u8; 4096];
            let mut received = 0;
            while !stop.load(Ordering::Relaxed) {
                match port.read(&mut buf) {
                    Ok(n) => received += n,
                    Err(e) if e.kind() == ErrorKind::TimedOut => {}
                    Err(e) => return Err(format!("bridge read: {e}")),
                }
                if received >= after {
                    port.write_all(&record)
                        .map_err(|e| format!("bridge write: {e}"))?;
                    received = 0;
                }
            }
            Ok(())
        })
    }

    /// Stops the thread; `Err` if it failed.
    fn finish(self) -> Result<(), String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .unwrap_or_else(|_| Err("the bridge panicked".into()))
    }
}

/// `acc` generated into a scratch folder, as the device opens bitstream folders.
fn folder(acc: &Accelerator) -> PathBuf {
    let dir = scratch("runtime_board", &acc.config().name);
    generate(acc, &dir, false, false).unwrap_or_else(|e| panic!("{e:#}"));
    dir
}

/// A board device on a bridge, for the folder of `acc`.
struct Rig {
    dir: PathBuf,
    bridge: Bridge,
    device: BoardDevice,
}

impl Rig {
    fn open(acc: &Accelerator, shape: &ModelShape, bridge: Bridge, timeout: Duration) -> Self {
        let dir = folder(acc);
        let device = BoardDevice::open(&dir, shape, &bridge.path)
            .unwrap_or_else(|e| panic!("{e}"))
            .with_timeout(timeout);
        Self {
            dir,
            bridge,
            device,
        }
    }

    /// Closes the device, then stops the bridge; panics if it failed.
    fn finish(self) {
        drop(self.device);
        self.bridge.finish().unwrap();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The detail of a board fault; panics on anything else.
fn fault<T: std::fmt::Debug>(result: Result<T, RuntimeError>) -> String {
    match result {
        Err(RuntimeError::Fault { backend, detail }) => {
            assert_eq!(backend, "board");
            detail
        }
        other => panic!("expected a board Fault, got {other:?}"),
    }
}

/// One search of a layer call: slot, query number (of that slot's workload), n_tokens, k.
type Search = (usize, usize, usize, usize);

/// Runs `calls` on `device` and checks every result against the golden model of the slot's
/// codebook; `workloads[slot]` holds the slot's codebook, codes and queries.
fn check_calls(
    acc: &Accelerator,
    device: &mut BoardDevice,
    workloads: &[IntWorkload],
    calls: &[Vec<Search>],
) {
    for (c, call) in calls.iter().enumerate() {
        let queries: Vec<HeadQuery> = call
            .iter()
            .map(|&(slot, qi, n, k)| HeadQuery {
                slot,
                query: &workloads[slot].queries[qi],
                beats: &workloads[slot].beats,
                n_tokens: n,
                k,
                stream: None,
            })
            .collect();
        let got = device
            .search(&queries)
            .unwrap_or_else(|e| panic!("call {c}: {e}"));
        assert_eq!(got.len(), queries.len(), "call {c}");
        for (i, (q, got)) in queries.iter().zip(&got).enumerate() {
            let golden = GoldenEngine::new(acc, workloads[q.slot].codebook.clone()).unwrap();
            let want = golden.run(q.query, q.beats, q.n_tokens, q.k).unwrap();
            assert_eq!(
                got, &want,
                "call {c}, search {i} (slot {}, n {}, k {})",
                q.slot, q.n_tokens, q.k
            );
        }
    }
}

/// Draws `slots` workloads of `n` tokens and `queries` queries (seeds from `seed` on), one per
/// slot, and loads each one's codebook into its slot.
fn load_slots(
    device: &mut BoardDevice,
    slots: u64,
    n: usize,
    queries: usize,
    values: Values,
    seed: u64,
) -> Vec<IntWorkload> {
    let acc = device.accelerator().clone();
    (0..slots)
        .map(|slot| {
            let wl = draw(&acc, n, queries, values, seed + slot);
            device
                .load_codebook(slot as usize, wl.codebook.clone())
                .unwrap_or_else(|e| panic!("slot {slot}: {e}"));
            wl
        })
        .collect()
}

#[test]
fn layer_calls_on_the_default_example_match_the_golden_model() {
    let acc = kvpq_tests::example("pqcache-llama3");
    let shape = ModelShape {
        head_dim: Some(128),
        gqa_group: Some(4),
        max_tokens: Some(300),
    };
    let mut rig = Rig::open(&acc, &shape, Bridge::model(&acc, 3), SIM_TIMEOUT);
    assert_eq!(rig.device.name(), "board");
    // Two layers of two KV heads: slot = layer * 2 + head, each with its own codebook,
    // codes and queries.
    let n = 300;
    let mut workloads = load_slots(&mut rig.device, 4, n, 3, Values::Uniform, 40);
    check_calls(
        &acc,
        &mut rig.device,
        &workloads,
        &[
            // Layer 0, then layer 1 (N < k on one head).
            vec![(0, 0, n, 64), (1, 0, n, 64)],
            vec![(2, 0, n, 300), (3, 0, 199, 250)],
            // Mixed slots, repeated slots, empty searches (k = 0, N = 0), N not a multiple
            // of the 42-token beat.
            vec![
                (1, 1, 120, 7),
                (0, 1, n, 0),
                (3, 1, 0, 5),
                (0, 2, 290, 33),
                (1, 2, n, 1),
            ],
        ],
    );
    // Replacing the codebook the board holds must reach the board.
    workloads[1] = draw(&acc, n, 3, Values::Ties, 99);
    rig.device
        .load_codebook(1, workloads[1].codebook.clone())
        .unwrap();
    check_calls(
        &acc,
        &mut rig.device,
        &workloads,
        &[vec![(1, 0, n, 50), (0, 0, n, 50)], vec![(1, 1, n, 300)]],
    );
    rig.finish();
}

#[test]
fn layer_calls_on_a_small_random_description_match_the_golden_model() {
    let acc = small_accelerators(61, 1).remove(0);
    let shape = ModelShape::default();
    let mut rig = Rig::open(&acc, &shape, Bridge::model(&acc, 5), SIM_TIMEOUT);
    let max_n = acc.config().engine.max_tokens as usize;
    let k_max = acc.config().topk.k_max as usize;
    let workloads = load_slots(&mut rig.device, 3, max_n, 2, Values::Ties, 70);
    check_calls(
        &acc,
        &mut rig.device,
        &workloads,
        &[
            vec![(0, 0, max_n, k_max), (1, 0, max_n, k_max), (2, 0, 1, k_max)],
            vec![
                (2, 1, max_n / 2, 1),
                (0, 1, max_n, 0),
                (1, 1, max_n - 1, k_max),
            ],
        ],
    );
    rig.finish();
}

/// A workload of one query over `acc`'s whole context.
fn single(acc: &Accelerator, seed: u64) -> IntWorkload {
    let n = acc.config().engine.max_tokens as usize;
    draw(acc, n, 1, Values::Uniform, seed)
}

/// Slot 0's search of `wl`'s query over all its tokens, for `k` results.
fn whole(wl: &IntWorkload, k: usize) -> HeadQuery<'_> {
    HeadQuery {
        slot: 0,
        query: &wl.queries[0],
        beats: &wl.beats,
        n_tokens: wl.codes.nrows(),
        k,
        stream: None,
    }
}

#[test]
fn a_missing_port_is_unavailable_and_a_silent_board_a_fault() {
    let acc = small_accelerators(62, 1).remove(0);
    let missing = "/dev/kvpq-no-such-port";
    let dir = folder(&acc);
    match BoardDevice::open(&dir, &ModelShape::default(), missing) {
        Err(RuntimeError::Unavailable { backend, reason }) => {
            assert_eq!(backend, "board");
            assert!(reason.contains(missing), "{reason}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }

    let timeout = Duration::from_millis(300);
    let mut rig = Rig::open(&acc, &ModelShape::default(), Bridge::silent(), timeout);
    let wl = single(&acc, 9);
    rig.device.load_codebook(0, wl.codebook.clone()).unwrap();
    let query = whole(&wl, 1);
    let started = Instant::now();
    let detail = fault(rig.device.search(&[query]));
    assert!(
        detail.contains("no reply within") && detail.contains("0 of 1 result records"),
        "{detail}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= timeout && waited < Duration::from_secs(30),
        "{waited:?}"
    );
    // The board may be mid-command now: the device refuses to go on.
    let detail = fault(rig.device.search(&[query]));
    assert!(detail.contains("earlier fault"), "{detail}");
    rig.finish();
}

#[test]
fn a_board_that_ends_early_is_a_fault_naming_the_count() {
    let acc = small_accelerators(63, 1).remove(0);
    let wl = single(&acc, 10);
    let query = whole(&wl, 2);
    // The answer comes once the codebook and the query are in.
    let (f, quant) = (BoardFormat::of(&Streams::of(&acc)), &acc.config().quant);
    let sent = f.codebook_frames(&wl.codebook, quant.centroid_bits).len()
        + f.query_frames(
            query.query,
            quant.query_bits,
            &acc.derived().layout,
            query.beats,
            query.n_tokens,
            query.k,
        )
        .unwrap()
        .len();
    let bridge = Bridge::early(&acc, sent);
    let mut rig = Rig::open(&acc, &ModelShape::default(), bridge, SIM_TIMEOUT);
    rig.device.load_codebook(0, wl.codebook.clone()).unwrap();
    let started = Instant::now();
    let detail = fault(rig.device.search(&[query]));
    assert!(
        detail.contains("search 0 (slot 0)")
            && detail.contains("record 1 has last = true")
            && detail.contains("2 results are due"),
        "{detail}"
    );
    // Named as the record arrived, not after the (long) timeout.
    assert!(started.elapsed() < Duration::from_secs(30));
    rig.finish();
}

#[test]
fn layer_calls_on_an_attached_board_match_the_golden_model() {
    let (Ok(port), Ok(dir)) = (
        std::env::var("KVPQ_BOARD_PORT"),
        std::env::var("KVPQ_BOARD_DIR"),
    ) else {
        println!("no board: set KVPQ_BOARD_PORT and KVPQ_BOARD_DIR to run on one");
        return;
    };
    let mut device = BoardDevice::open(PathBuf::from(dir).as_path(), &ModelShape::default(), &port)
        .unwrap_or_else(|e| panic!("{e}"));
    let acc = device.accelerator().clone();
    let n = (acc.config().engine.max_tokens as usize).min(4096);
    let k = (acc.config().topk.k_max as usize).min(n);
    let workloads = load_slots(&mut device, 3, n, 2, Values::Uniform, 80);
    check_calls(
        &acc,
        &mut device,
        &workloads,
        &[
            vec![(0, 0, n, k), (1, 0, n, k), (2, 0, n / 2 + 1, k / 2)],
            vec![(2, 1, n, 1), (0, 1, n, 0), (1, 1, n - 1, k)],
        ],
    );
}
