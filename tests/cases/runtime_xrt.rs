//! The runtime's `xrt` device against a fake XRT (`runtime_xrt/fake_xrt.c`, compiled here):
//! the fake keeps buffers in host memory, checks the call sequence (syncs before starts and
//! reads, every argument set, sizes inside buffers, nothing touched while in flight,
//! handles released in order) and answers each run with the golden model through a kernel
//! model. Checked: whole layer calls bit-exact with the golden model on generated Alveo
//! folders (the pqcache-llama3 example at small n_tokens and random small descriptions),
//! codebooks sent only when the slot changes, runs in flight together; typed errors for a
//! missing library, card or xclbin and for failing XRT calls, after which the device still
//! works; refused calls that change nothing; and that the fake does catch a bad sequence.

mod fake;
mod kernel_model;

use std::ffi::{c_int, c_void};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use hwgen_cli::commands::generate;
use kvpq_core::golden::{GoldenEngine, QuantCodebook, QueryResult};
use kvpq_core::interface::alveo::{out_flags, KernelInterface};
use kvpq_core::spec::{Accelerator, Platform};
use kvpq_runtime::backends::xrt::{KernelKind, XrtDevice, XrtOptions, LIBRARY_ENV};
use kvpq_runtime::{open_folder, Device, HeadQuery, ModelShape, RuntimeError};
use kvpq_tests::random::small_accelerators;
use kvpq_tests::scratch;
use kvpq_tests::workload::{draw, IntWorkload, Values};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use fake::Fake;
use kernel_model::{handler, KernelModel};

/// A generated Alveo folder with a stand-in xclbin, a fake XRT and the kernel behind it.
struct Bench {
    name: String,
    dir: PathBuf,
    acc: Accelerator,
    iface: KernelInterface,
    fake: Fake,
    /// Registered with the fake by address: kept alive (and in place) by the bench.
    model: Arc<Mutex<KernelModel>>,
}

impl Bench {
    fn new(name: &str, acc: &Accelerator) -> Self {
        let dir = scratch("runtime_xrt", name);
        generate::generate(acc, &dir, false, false).expect("generate the folder");
        let folder = open_folder(&dir, &ModelShape::default()).expect("open the folder");
        let iface = folder.manifest.interface.kernel.expect("an Alveo folder");
        // Any readable file passes for an xclbin with the fake.
        let xclbin = KernelKind::Rtl.default_xclbin(&dir);
        std::fs::create_dir_all(xclbin.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&xclbin, b"stand-in xclbin").expect("write the xclbin");
        let fake = Fake::build(name);
        fake.configure(&iface);
        let model = Arc::new(Mutex::new(KernelModel::new(acc, &iface, fake.reporter())));
        fake.set_handler(handler, Arc::as_ptr(&model) as *mut c_void);
        Self {
            name: name.into(),
            dir,
            acc: acc.clone(),
            iface,
            fake,
            model,
        }
    }

    fn options(&self) -> XrtOptions {
        XrtOptions {
            library: Some(self.fake.path.clone()),
            ..XrtOptions::default()
        }
    }

    fn open(&self) -> XrtDevice {
        XrtDevice::open(&self.dir, &ModelShape::default(), &self.options())
            .unwrap_or_else(|e| panic!("{}: open: {e}", self.name))
    }

    fn open_with(&self, options: &XrtOptions) -> Result<XrtDevice, RuntimeError> {
        XrtDevice::open(&self.dir, &ModelShape::default(), options)
    }

    fn model(&self) -> std::sync::MutexGuard<'_, KernelModel> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Everything released and no breach of the call sequence.
    fn assert_released(&self, when: &str) {
        self.fake.assert_clean(when);
        assert_eq!(self.fake.live_handles(), 0, "{when}: handles left open");
    }
}

/// One KV head: a codebook slot's workload.
struct Head {
    wl: IntWorkload,
    n_max: usize,
}

/// Heads for `slots` slots, each with its own codebook, codes and queries.
fn heads(acc: &Accelerator, slots: usize, n_max: usize, seed: u64) -> Vec<Head> {
    (0..slots)
        .map(|s| {
            let values = if s % 2 == 0 {
                Values::Uniform
            } else {
                Values::Ties
            };
            Head {
                wl: draw(acc, n_max, 4, values, seed + s as u64),
                n_max,
            }
        })
        .collect()
}

/// One search of a layer call: slot, query of that head, n_tokens, k.
type Search = (usize, usize, usize, usize);

fn queries<'a>(heads: &'a [Head], searches: &[Search]) -> Vec<HeadQuery<'a>> {
    searches
        .iter()
        .map(|&(slot, q, n, k)| HeadQuery {
            slot,
            query: &heads[slot].wl.queries[q],
            beats: &heads[slot].wl.beats,
            n_tokens: n,
            k,
        })
        .collect()
}

/// The golden answers of `searches` with the codebooks `loaded` holds per slot.
fn golden(
    acc: &Accelerator,
    loaded: &[QuantCodebook],
    heads: &[Head],
    searches: &[Search],
) -> Vec<QueryResult> {
    queries(heads, searches)
        .iter()
        .map(|q| {
            GoldenEngine::new(acc, loaded[q.slot].clone())
                .and_then(|g| g.run(q.query, q.beats, q.n_tokens, q.k))
                .expect("golden run")
        })
        .collect()
}

/// Runs one layer call and checks it against the golden model.
fn check_call(
    bench: &Bench,
    dev: &mut XrtDevice,
    loaded: &[QuantCodebook],
    heads: &[Head],
    searches: &[Search],
) {
    let got = dev
        .search(&queries(heads, searches))
        .unwrap_or_else(|e| panic!("{}: {searches:?}: {e}", bench.name));
    let want = golden(&bench.acc, loaded, heads, searches);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        kvpq_tests::compare("xrt", g, g.hits.len(), w)
            .unwrap_or_else(|e| panic!("{}: search {i} {:?}: {e}", bench.name, searches[i]));
    }
    assert_eq!(got.len(), searches.len());
    bench.fake.assert_clean(&bench.name);
}

/// Loads every head's codebook into the slot of its index.
fn load_all(dev: &mut XrtDevice, heads: &[Head]) -> Vec<QuantCodebook> {
    for (slot, h) in heads.iter().enumerate() {
        dev.load_codebook(slot, h.wl.codebook.clone())
            .expect("load a codebook");
    }
    heads.iter().map(|h| h.wl.codebook.clone()).collect()
}

/// Layer calls covering full and random sizes, N < k, empty searches, repeated slots, a
/// first slot equal to the one on chip, and a codebook replaced in the slot on chip.
fn exercise(bench: &Bench, n_max: usize, seed: u64) {
    let c = bench.acc.config();
    let k_max = (c.topk.k_max as usize).min(300);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let hs = heads(&bench.acc, 5, n_max, seed);
    let mut dev = bench.open();
    let mut loaded = load_all(&mut dev, &hs);
    let draw_search = |slot: usize, rng: &mut ChaCha8Rng| -> Search {
        let n_max = hs[slot].n_max;
        match rng.random_range(0..4) {
            0 => (slot, 0, n_max, k_max),
            1 => (
                slot,
                1,
                rng.random_range(1..=n_max),
                rng.random_range(1..=k_max),
            ),
            2 => (slot, 2, n_max.min(k_max - 1), k_max), // N < k
            _ => (slot, 3, 0, k_max.min(3)),             // nothing to scan
        }
    };
    let calls: Vec<Vec<usize>> = vec![
        vec![0, 1, 2, 3],
        vec![3, 3, 4, 0, 1, 2, 3, 4], // starts with the slot on chip, repeats a slot
        vec![4],
        vec![2, 0],
    ];
    let mut on_chip = None;
    let mut loads = 0;
    for slots in &calls {
        let searches: Vec<Search> = slots.iter().map(|&s| draw_search(s, &mut rng)).collect();
        check_call(bench, &mut dev, &loaded, &hs, &searches);
        for &s in slots {
            loads += usize::from(on_chip != Some(s));
            on_chip = Some(s);
        }
    }
    // A new codebook in the slot the kernel holds must be sent again.
    let other = draw(&bench.acc, 1, 1, Values::Uniform, seed ^ 0xc0de).codebook;
    dev.load_codebook(0, other.clone())
        .expect("replace a codebook");
    loaded[0] = other;
    let searches = [draw_search(0, &mut rng), draw_search(0, &mut rng)];
    check_call(bench, &mut dev, &loaded, &hs, &searches);
    loads += 1;
    assert_eq!(bench.model().loads, loads, "{}: codebook reads", bench.name);
    assert!(
        bench.fake.max_in_flight() >= 8,
        "{}: the searches of a call were not in flight together ({} at most)",
        bench.name,
        bench.fake.max_in_flight()
    );
    drop(dev);
    bench.assert_released(&bench.name);
}

fn alveo(acc: &Accelerator, i: usize) -> Accelerator {
    let platform = [Platform::U280, Platform::U55c][i % 2];
    acc.retarget(platform)
        .expect("small beats fit an AXI4 master")
}

/// `count` random small Alveo descriptions.
fn alveo_accelerators(seed: u64, count: usize) -> Vec<Accelerator> {
    small_accelerators(seed, count)
        .iter()
        .enumerate()
        .map(|(i, a)| alveo(a, i))
        .collect()
}

#[test]
fn layer_calls_are_bit_exact_with_the_golden_model() {
    let llama = kvpq_tests::example("pqcache-llama3");
    let bench = Bench::new("llama3", &llama);
    exercise(&bench, 1500, 1);
    for (i, acc) in alveo_accelerators(47, 3).iter().enumerate() {
        let bench = Bench::new(&acc.config().name, acc);
        exercise(
            &bench,
            acc.config().engine.max_tokens as usize,
            100 + i as u64,
        );
    }
}

/// Checks that `r` is an `xrt` error of kind `kind` (`Unavailable`, `Fault`) whose message
/// holds every needle.
fn xrt_error(r: Result<impl std::fmt::Debug, RuntimeError>, kind: &str, needles: &[&str]) {
    let (found, text) = match r {
        Err(RuntimeError::Unavailable {
            backend: "xrt",
            reason,
        }) => ("Unavailable", reason),
        Err(RuntimeError::Fault {
            backend: "xrt",
            detail,
        }) => ("Fault", detail),
        other => panic!("expected an xrt {kind}, got {other:?}"),
    };
    assert_eq!(found, kind, "{text}");
    for n in needles {
        assert!(text.contains(n), "`{n}` not in: {text}");
    }
}

fn unavailable(r: Result<XrtDevice, RuntimeError>, needles: &[&str]) {
    xrt_error(r, "Unavailable", needles);
}

fn fault(r: Result<impl std::fmt::Debug, RuntimeError>, needles: &[&str]) {
    xrt_error(r, "Fault", needles);
}

#[test]
fn a_card_that_cannot_be_opened_is_a_typed_error() {
    let acc = alveo_accelerators(53, 1)[0].clone();
    let bench = Bench::new("open", &acc);
    let missing = bench.dir.join("no/libxrt_coreutil.so");
    let opts = XrtOptions {
        library: Some(missing.clone()),
        ..bench.options()
    };
    unavailable(
        bench.open_with(&opts),
        &[
            "XRT was not found",
            &missing.display().to_string(),
            LIBRARY_ENV,
        ],
    );
    let opts = XrtOptions {
        device_index: Some(3),
        ..bench.options()
    };
    unavailable(bench.open_with(&opts), &["xrtDeviceOpen(3)"]);
    let xclbin = bench.dir.join("elsewhere.xclbin");
    let opts = XrtOptions {
        xclbin: Some(xclbin.clone()),
        ..bench.options()
    };
    unavailable(bench.open_with(&opts), &[&xclbin.display().to_string()]);
    bench.fake.inject("xrtDeviceLoadXclbinFile", 0, -22);
    fault(
        bench.open_with(&bench.options()),
        &["xrtDeviceLoadXclbinFile", "returned -22"],
    );
    // An RTL xclbin has no HLS kernel.
    let opts = XrtOptions {
        kernel: KernelKind::Hls,
        xclbin: Some(KernelKind::Rtl.default_xclbin(&bench.dir)),
        ..bench.options()
    };
    fault(bench.open_with(&opts), &["xrtPLKernelOpen(pq_topk_kernel)"]);
    bench.fake.inject("xrtKernelArgGroupId", 1, -5);
    fault(
        bench.open_with(&bench.options()),
        &["xrtKernelArgGroupId", "returned -5"],
    );
    // An xclbin whose kernel was built from another interface.
    let mut moved = bench.iface.clone();
    moved.args[3].offset += 8;
    bench.fake.configure(&moved);
    unavailable(
        bench.open_with(&bench.options()),
        &["register 0x30", "not built from this folder"],
    );
    bench.fake.configure(&bench.iface);
    bench.assert_released("failed opens");
    // A folder without a kernel.
    let generic = acc.retarget(Platform::Generic).expect("generic");
    let dir = scratch("runtime_xrt", "generic");
    generate::generate(&generic, &dir, false, false).expect("generate");
    match XrtDevice::open(&dir, &ModelShape::default(), &bench.options()) {
        Err(RuntimeError::Mismatch { field, .. }) => assert_eq!(field, "target.platform"),
        other => panic!("expected Mismatch, got {other:?}"),
    }
    // And after all that, the card opens.
    drop(bench.open());
    bench.assert_released("open and close");
}

#[test]
fn failing_calls_are_faults_and_the_device_recovers() {
    let acc = alveo_accelerators(59, 1)[0].clone();
    let bench = Bench::new("faults", &acc);
    let n = acc.config().engine.max_tokens as usize;
    let k = acc.config().topk.k_max as usize;
    let hs = heads(&acc, 4, n, 7);
    let mut dev = bench.open();
    let loaded = load_all(&mut dev, &hs);
    let layer: Vec<Search> = (0..4).map(|s| (s, s % 4, n, k)).collect();
    check_call(&bench, &mut dev, &loaded, &hs, &layer);

    // The last run of a call ends in error and the kernel loses its codebook (as after a
    // reset): the next call starts with that slot and must send its codebook again.
    let runs = bench.model().runs;
    bench.model().fail_run = Some(runs + 3);
    fault(
        dev.search(&queries(&hs, &layer)),
        &["xrtRunWait", "search 3", "ERT_CMD_STATE_ERROR"],
    );
    bench.fake.assert_clean("after a failed run");
    check_call(
        &bench,
        &mut dev,
        &loaded,
        &hs,
        &[(3, 0, n, k), (0, 1, n, k)],
    );

    // The kernel flags a memory error in a result header (a read answered SLVERR/DECERR:
    // no results; a result write did): a Fault naming it, then bit-exact calls again.
    for (flags, text) in [
        (out_flags::READ_ERROR, "bit 63"),
        (out_flags::WRITE_ERROR, "bit 62"),
    ] {
        bench.fake.inject_memory_error(2, flags);
        fault(
            dev.search(&queries(&hs, &layer)),
            &["memory error", "SLVERR or DECERR", text],
        );
        bench.fake.assert_clean("after a memory error");
        check_call(&bench, &mut dev, &loaded, &hs, &layer);
    }

    // Failing XRT calls at each step of a layer call.
    for (call, skip, value, text) in [
        ("xrtBOWrite", 3, -12, "returned -12"),
        ("xrtBOSync", 5, -5, "returned -5"),
        ("xrtRunSetArg", 9, -1, "returned -1"),
        ("xrtRunStart", 2, -1, "returned -1"),
        ("xrtRunWait", 1, 6, "ERT_CMD_STATE_ABORT"),
        ("xrtBORead", 0, -14, "returned -14"),
    ] {
        bench.fake.inject(call, skip, value);
        fault(dev.search(&queries(&hs, &layer)), &[call, text]);
        bench.fake.assert_clean(call);
        check_call(&bench, &mut dev, &loaded, &hs, &layer);
    }
    // A failing upload keeps the slot's codebook.
    bench.fake.inject("xrtBOSync", 0, -5);
    fault(
        dev.load_codebook(1, hs[0].wl.codebook.clone()),
        &["xrtBOSync"],
    );
    bench.fake.inject("xrtBOAlloc", 0, 0);
    fault(
        dev.load_codebook(1, hs[0].wl.codebook.clone()),
        &["xrtBOAlloc"],
    );
    check_call(&bench, &mut dev, &loaded, &hs, &layer);
    drop(dev);
    bench.assert_released("faults");
}

#[test]
fn refused_calls_change_nothing() {
    let acc = alveo_accelerators(61, 1)[0].clone();
    let bench = Bench::new("refused", &acc);
    let c = acc.config();
    let (n, k) = (c.engine.max_tokens as usize, c.topk.k_max as usize);
    let hs = heads(&acc, 2, n, 11);
    let mut dev = bench.open();
    let loaded = load_all(&mut dev, &hs);
    let layer: Vec<Search> = vec![(0, 0, n, k), (1, 1, n, k)];
    check_call(&bench, &mut dev, &loaded, &hs, &layer);
    let (calls, loads) = (bench.fake.calls(None), bench.model().loads);

    let good = queries(&hs, &layer);
    let short = vec![0; hs[0].wl.queries[0].len() - 1];
    let refused: Vec<Vec<HeadQuery<'_>>> = vec![
        vec![
            good[0],
            HeadQuery {
                k: k + 1,
                ..good[1]
            },
        ],
        vec![HeadQuery {
            n_tokens: n + 1,
            ..good[0]
        }],
        vec![
            good[1],
            HeadQuery {
                query: &short,
                ..good[0]
            },
        ],
        vec![HeadQuery { slot: 9, ..good[0] }],
        vec![HeadQuery {
            beats: &[],
            ..good[0]
        }],
    ];
    for qs in &refused {
        let e = dev.search(qs).expect_err("an invalid search is refused");
        assert!(
            !matches!(
                e,
                RuntimeError::Fault { .. } | RuntimeError::Unavailable { .. }
            ),
            "refused by the checks, not the card: {e}"
        );
    }
    let mut wrong = hs[1].wl.codebook.clone();
    wrong.values = ndarray::Array3::zeros((1, 1, 1));
    dev.load_codebook(0, wrong).expect_err("wrong shape");
    let mut wide = hs[1].wl.codebook.clone();
    wide.values[[0, 0, 0]] = 1 << c.quant.centroid_bits;
    dev.load_codebook(0, wide).expect_err("value too wide");
    dev.load_codebook(usize::MAX, hs[1].wl.codebook.clone())
        .expect_err("slot out of range");
    assert_eq!(bench.fake.calls(None), calls, "a refused call reached XRT");

    // Same answers, and the slot on chip is still known: slot 1 is not sent again.
    check_call(
        &bench,
        &mut dev,
        &loaded,
        &hs,
        &[(1, 2, n, k), (0, 3, n, k)],
    );
    assert_eq!(bench.model().loads, loads + 1);
    assert!(dev.search(&[]).expect("an empty call").is_empty());
    drop(dev);
    bench.assert_released("refused");
}

#[test]
fn the_fake_catches_a_bad_call_sequence() {
    use std::ffi::c_uint;
    type H = *mut c_void;
    let acc = alveo_accelerators(67, 1)[0].clone();
    let bench = Bench::new("sequence", &acc);
    let f = &bench.fake;
    let open: unsafe extern "C" fn(c_uint) -> H = f.sym("xrtDeviceOpen");
    let load: unsafe extern "C" fn(H, *const std::ffi::c_char) -> c_int =
        f.sym("xrtDeviceLoadXclbinFile");
    let uuid: unsafe extern "C" fn(H, *mut u8) -> c_int = f.sym("xrtDeviceGetXclbinUUID");
    let kopen: unsafe extern "C" fn(H, *const u8, *const std::ffi::c_char) -> H =
        f.sym("xrtPLKernelOpen");
    let alloc: unsafe extern "C" fn(H, usize, u64, u32) -> H = f.sym("xrtBOAlloc");
    let write: unsafe extern "C" fn(H, *const c_void, usize, usize) -> c_int = f.sym("xrtBOWrite");
    let read: unsafe extern "C" fn(H, *mut c_void, usize, usize) -> c_int = f.sym("xrtBORead");
    let sync: unsafe extern "C" fn(H, c_int, usize, usize) -> c_int = f.sym("xrtBOSync");
    let free: unsafe extern "C" fn(H) -> c_int = f.sym("xrtBOFree");
    let run_open: unsafe extern "C" fn(H) -> H = f.sym("xrtRunOpen");
    let set_arg: unsafe extern "C" fn(H, c_int, ...) -> c_int = f.sym("xrtRunSetArg");
    let start: unsafe extern "C" fn(H) -> c_int = f.sym("xrtRunStart");
    let wait: unsafe extern "C" fn(H) -> c_int = f.sym("xrtRunWait");
    let close: unsafe extern "C" fn(H) -> c_int = f.sym("xrtDeviceClose");
    let xclbin = std::ffi::CString::new(
        KernelKind::Rtl
            .default_xclbin(&bench.dir)
            .into_os_string()
            .into_encoded_bytes(),
    )
    .expect("no NUL");
    let kernel = std::ffi::CString::new(bench.iface.rtl_kernel.clone()).expect("no NUL");
    let group = |name: &str| {
        let a = bench.iface.arg(name).expect("argument");
        let m = bench.iface.master(a.master.as_deref().expect("buffer"));
        fake::group_of(m.expect("master").hbm_channel) as u32
    };
    // SAFETY: each pointer is called with the signature the fake declares, on handles it
    // returned; the buffers outlive the calls.
    let log = unsafe {
        let dev = open(0);
        assert_eq!(load(dev, xclbin.as_ptr()), 0);
        let mut id = [0u8; 16];
        assert_eq!(uuid(dev, id.as_mut_ptr()), 0);
        let k = kopen(dev, id.as_ptr(), kernel.as_ptr());
        assert!(!k.is_null());
        let bos: Vec<H> = ["codebook", "query", "codes", "out"]
            .iter()
            .map(|n| alloc(dev, 4096, 0, group(n)))
            .collect();
        // Zeros everywhere (valid for the kernel), sent to the device.
        let zeros = [0u8; 4096];
        for bo in &bos {
            assert_eq!(write(*bo, zeros.as_ptr().cast(), 4096, 0), 0);
            assert_eq!(sync(*bo, 0, 4096, 0), 0);
        }
        let run = run_open(k);
        // Started with only the buffers set.
        for (i, bo) in bos.iter().enumerate() {
            assert_eq!(set_arg(run, i as c_int, *bo), 0);
        }
        assert_eq!(start(run), -1);
        // Started with host bytes of the query not synced to the device.
        assert_eq!(write(bos[1], zeros.as_ptr().cast(), 64, 0), 0);
        for i in 4..7 {
            assert_eq!(set_arg(run, i, 1 as c_uint), 0);
        }
        assert_eq!(start(run), 0);
        // Results read while the run is in flight, then without a sync from the device.
        let mut out = [0u8; 8];
        read(bos[3], out.as_mut_ptr().cast(), 8, 0);
        wait(run);
        read(bos[3], out.as_mut_ptr().cast(), 8, 0);
        // A buffer freed twice; the device closed with its kernel and run open.
        free(bos[0]);
        free(bos[0]);
        close(dev);
        f.violations()
    };
    let (count, text) = log;
    for needle in [
        "argument 4 was never set",
        "written but not synced to the device",
        "xrtBORead: 1 runs in flight",
        "not synced from the device",
        "xrtBOFree: 0x",
        "still open",
    ] {
        assert!(
            text.contains(needle),
            "`{needle}` not in the fake's log:\n{text}"
        );
    }
    assert!(count >= 6, "{count} violations:\n{text}");
}
