//! The runtime's `xrt` device against a fake XRT (`runtime_xrt/fake_xrt.c`, compiled here):
//! the fake keeps buffers in host memory, checks the call sequence (syncs before starts and
//! reads, every argument set, sizes inside buffers, nothing touched while in flight,
//! handles released in order) and answers each run through a model of the layer-per-call
//! kernel (jobs parsed, job j on engine j % E, its beats read from the engine's S stripe
//! buffers, every job answered by the golden model). Checked: whole layer calls bit-exact
//! with the golden model on generated Alveo folders (the pqcache-llama3 example at small
//! n_tokens, its codes in 2 stripes; random small descriptions of 1 to 3 engines, in 1
//! stripe, and made faster to take 2 and 4), one run per layer call whose slots fit the
//! heads, codebooks sent only when the kernel holds another; typed errors for a missing library, card or xclbin, for failing
//! XRT calls and for the flags a result header carries, after which the device still works;
//! refused calls (more than MAX_JOBS searches among them) that change nothing; and that the
//! fake and the kernel model do catch a bad sequence or a bad job.

mod fake;
mod kernel_model;

use std::ffi::{c_int, c_void};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use hwgen_cli::commands::generate;
use kvpq_core::golden::{GoldenEngine, QuantCodebook, QueryResult};
use kvpq_core::interface::alveo::{
    code_stripes, engine_arg, engine_master, out_flags, ArgKind, KernelInterface, MAX_JOBS,
};
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
            stream: None,
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

/// What the device should do with codebooks, modelled apart from it: slot s lives in head
/// s % heads of the `codebooks` buffer; a run takes the longest stretch of searches in
/// which no head serves two slots, and loads the codebooks (the whole buffer) only when the
/// kernel holds another codebook in a head the run reads.
struct Expect {
    heads: usize,
    /// Per head: the slot the buffer holds.
    region: Vec<Option<usize>>,
    /// Per head: the slot the kernel holds; `None` when unknown.
    chip: Option<Vec<Option<usize>>>,
    runs: usize,
    loads: usize,
}

impl Expect {
    fn new(acc: &Accelerator) -> Self {
        let heads = acc.config().engine.heads() as usize;
        Self {
            heads,
            region: vec![None; heads],
            chip: None,
            runs: 0,
            loads: 0,
        }
    }

    fn load_codebook(&mut self, slot: usize) {
        let h = slot % self.heads;
        self.region[h] = Some(slot);
        if let Some(chip) = &mut self.chip {
            if chip[h] == Some(slot) {
                chip[h] = None;
            }
        }
    }

    fn call(&mut self, slots: &[usize]) {
        let mut i = 0;
        while i < slots.len() {
            let mut serves = vec![None; self.heads];
            let mut load = false;
            while let Some(&s) = slots.get(i) {
                let h = s % self.heads;
                if serves[h].is_some_and(|x| x != s) {
                    break;
                }
                serves[h] = Some(s);
                self.region[h] = Some(s);
                load |= self.chip.as_ref().is_none_or(|c| c[h] != Some(s));
                i += 1;
            }
            self.runs += 1;
            if load {
                self.loads += 1;
                self.chip = Some(self.region.clone());
            }
        }
    }

    /// A call failed: what the kernel holds is unknown to the device.
    fn forget(&mut self) {
        self.chip = None;
    }

    /// The model's runs and loads are the expected ones.
    fn check(&self, bench: &Bench, when: &str) {
        let m = bench.model();
        assert_eq!(
            (m.runs, m.loads),
            (self.runs, self.loads),
            "{}: {when}: (runs, codebook loads)",
            bench.name
        );
    }
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

/// [`check_call`], then the runs and loads `expect` predicts for it.
fn check_expected(
    bench: &Bench,
    dev: &mut XrtDevice,
    expect: &mut Expect,
    loaded: &[QuantCodebook],
    heads: &[Head],
    searches: &[Search],
) {
    check_call(bench, dev, loaded, heads, searches);
    let slots: Vec<usize> = searches.iter().map(|s| s.0).collect();
    expect.call(&slots);
    expect.check(bench, &format!("{slots:?}"));
}

/// Loads every head's codebook into the slot of its index.
fn load_all(dev: &mut XrtDevice, expect: &mut Expect, heads: &[Head]) -> Vec<QuantCodebook> {
    for (slot, h) in heads.iter().enumerate() {
        dev.load_codebook(slot, h.wl.codebook.clone())
            .expect("load a codebook");
        expect.load_codebook(slot);
    }
    heads.iter().map(|h| h.wl.codebook.clone()).collect()
}

/// Layer calls covering full and random sizes, N < k, empty searches, repeated slots, slots
/// that share a head (on descriptions with fewer heads than slots), and a codebook replaced
/// in a slot the kernel holds; the runs and codebook loads are the expected ones.
fn exercise(bench: &Bench, n_max: usize, seed: u64) {
    let c = bench.acc.config();
    let k_max = (c.topk.k_max as usize).min(300);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let hs = heads(&bench.acc, 5, n_max, seed);
    let mut dev = bench.open();
    let mut expect = Expect::new(&bench.acc);
    let mut loaded = load_all(&mut dev, &mut expect, &hs);
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
        vec![3, 3, 4, 0, 1, 2, 3, 4], // repeats slots
        vec![4],
        vec![2, 0],
        vec![0, 1, 2, 3, 4, 0, 1],
        vec![1, 1, 1, 1], // one slot, e.g. the query heads of a GQA group: every engine
    ];
    for slots in &calls {
        let searches: Vec<Search> = slots.iter().map(|&s| draw_search(s, &mut rng)).collect();
        check_expected(bench, &mut dev, &mut expect, &loaded, &hs, &searches);
    }
    // A new codebook in a slot the kernel holds must be loaded again.
    let other = draw(&bench.acc, 1, 1, Values::Uniform, seed ^ 0xc0de).codebook;
    dev.load_codebook(0, other.clone())
        .expect("replace a codebook");
    expect.load_codebook(0);
    loaded[0] = other;
    let searches = [draw_search(0, &mut rng), draw_search(0, &mut rng)];
    check_expected(bench, &mut dev, &mut expect, &loaded, &hs, &searches);
    let m = bench.model();
    assert!(
        m.jobs_per_lane.iter().all(|&j| j > 0),
        "{}: jobs per engine {:?}",
        bench.name,
        m.jobs_per_lane
    );
    // Every stripe a search of n_max tokens reaches was read from.
    let reach = (bench.acc.derived().layout.beats_for(n_max)).min(m.beats_per_stripe.len());
    assert!(
        m.beats_per_stripe[..reach].iter().all(|&b| b > 0),
        "{}: beats read per stripe {:?}",
        bench.name,
        m.beats_per_stripe
    );
    drop(m);
    assert_eq!(
        bench.fake.max_in_flight(),
        1,
        "{}: runs in flight",
        bench.name
    );
    drop(dev);
    bench.assert_released(&bench.name);
}

fn alveo(acc: &Accelerator, i: usize) -> Accelerator {
    let platform = [Platform::U280, Platform::U55c][i % 2];
    acc.retarget(platform)
        .expect("small beats fit an AXI4 master")
}

/// `acc` with `engines` engines and, when given, `heads` codebook heads.
fn reshape(acc: &Accelerator, engines: u32, heads: Option<u32>) -> Accelerator {
    let mut config = acc.config().clone();
    config.target.engines = Some(engines);
    if heads.is_some() {
        config.engine.heads = heads;
    }
    config.name = format!("{}_e{engines}", config.name);
    Accelerator::new(config).expect("a small description takes a few engines")
}

/// `acc` made to stripe its codes over `stripes` pseudo-channels (`alveo::code_stripes`):
/// the first of wider beats, more lanes (the beat's tokens scanned in fewer cycles) and a
/// faster clock, in that order of preference, that is valid and does. Its `max_tokens` is
/// raised to 2 x `stripes` + 1 beats when below (the retrieval budget cut to keep k at
/// `max_tokens` at `k_max`), so a search can take every stripe more than once.
fn striped(acc: &Accelerator, stripes: u32) -> Accelerator {
    let c = acc.config();
    let token_bits = c.pq.m * c.pq.code_bits;
    for beat in [32, 64, 128, 256, 512, 1024] {
        if beat < c.engine.beat_bits {
            continue;
        }
        let per_beat = beat / token_bits;
        for lanes in (1..=per_beat).filter(|l| per_beat.is_multiple_of(*l)) {
            for clock in [c.target.clock_mhz, 250.0, 500.0, 1000.0] {
                let mut config = c.clone();
                config.engine.beat_bits = beat;
                config.scanner.lanes = lanes;
                config.target.clock_mhz = clock;
                config.name = format!("{}_s{stripes}", c.name);
                let tokens = (2 * stripes + 1) * per_beat;
                if c.engine.max_tokens < tokens {
                    config.engine.max_tokens = tokens;
                    config.retrieval.budget =
                        ((f64::from(c.topk.k_max) + 0.5) / f64::from(tokens)).min(1.0);
                }
                if let Ok(a) = Accelerator::new(config) {
                    if code_stripes(a.config()) == stripes {
                        return a;
                    }
                }
            }
        }
    }
    panic!("{}: no faster variant stripes over {stripes}", c.name)
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
    assert_eq!(
        code_stripes(llama.config()),
        2,
        "llama3's codes take 2 stripes"
    );
    let bench = Bench::new("llama3", &llama);
    exercise(&bench, 1500, 1);
    // Its heads hold the 5 slots: one run per call, loads only when the kernel holds none
    // yet and after slot 0's codebook changed.
    let m = bench.model();
    assert_eq!((m.runs, m.loads), (7, 2));
    drop(m);
    // Random descriptions of 1, 2 and 3 engines (1, 2 and 1 heads: slots share heads).
    for (i, acc) in alveo_accelerators(47, 3).iter().enumerate() {
        let acc = reshape(acc, 1 + i as u32, None);
        let bench = Bench::new(&acc.config().name, &acc);
        exercise(
            &bench,
            acc.config().engine.max_tokens as usize,
            100 + i as u64,
        );
    }
    // Three engines and enough heads for every slot.
    let acc = reshape(&alveo_accelerators(71, 1)[0], 3, Some(5));
    let bench = Bench::new(&acc.config().name, &acc);
    exercise(&bench, acc.config().engine.max_tokens as usize, 200);
    assert_eq!(bench.model().runs, 7, "one run per layer call");
    // Random descriptions made fast enough to stripe their codes: 2 stripes on 2 engines,
    // 4 on 3 (at small n_tokens some stripes of a job hold no beat).
    for (i, (seed, engines, stripes)) in [(73, 2, 2), (79, 3, 4)].into_iter().enumerate() {
        let acc = striped(
            &reshape(&alveo_accelerators(seed, 1)[0], engines, None),
            stripes,
        );
        assert_eq!(code_stripes(acc.config()), stripes);
        let bench = Bench::new(&acc.config().name, &acc);
        exercise(
            &bench,
            acc.config().engine.max_tokens as usize,
            300 + i as u64,
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
    // Failing allocations of the device's buffers and run at open.
    for (call, skip) in [("xrtBOAlloc", 0), ("xrtBOAlloc", 2), ("xrtRunOpen", 0)] {
        bench.fake.inject(call, skip, 0);
        fault(bench.open_with(&bench.options()), &[call, "null handle"]);
    }
    // An xclbin whose kernel was built from another interface: `n_jobs` moved.
    let mut moved = bench.iface.clone();
    let n_jobs = moved
        .args
        .iter_mut()
        .find(|a| a.name == "n_jobs")
        .expect("n_jobs");
    n_jobs.offset += 8;
    let register = format!("register {:#x}", n_jobs.offset);
    bench.fake.configure(&moved);
    unavailable(
        bench.open_with(&bench.options()),
        &["`n_jobs`", &register, "not built from this folder"],
    );
    bench.fake.configure(&bench.iface);
    bench.assert_released("failed opens");
    // A folder for two engines, an xclbin of one: its arguments end S registers early (the
    // second engine's stripes), so the first argument past them is at no register.
    let two = reshape(&acc, 2, None);
    let bench2 = Bench::new("open-two", &two);
    bench2.fake.configure(&bench.iface);
    let first_missing = format!("`{}`", bench2.iface.args[bench.iface.args.len()].name);
    unavailable(
        bench2.open_with(&bench2.options()),
        &[&first_missing, "not built from this folder"],
    );
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
    // Two engines and four heads: a layer of four slots is one run.
    let acc = reshape(&alveo_accelerators(59, 1)[0], 2, Some(4));
    // One stripe: the failing calls below count one upload and download per lane.
    assert_eq!(code_stripes(acc.config()), 1);
    let bench = Bench::new("faults", &acc);
    let n = acc.config().engine.max_tokens as usize;
    let k = acc.config().topk.k_max as usize;
    let hs = heads(&acc, 4, n, 7);
    let mut dev = bench.open();
    let mut expect = Expect::new(&acc);
    let loaded = load_all(&mut dev, &mut expect, &hs);
    let layer: Vec<Search> = (0..4).map(|s| (s, s % 4, n, k)).collect();
    let slots: Vec<usize> = (0..4).collect();
    check_expected(&bench, &mut dev, &mut expect, &loaded, &hs, &layer);

    // Every failed call below leaves the kernel's codebooks unknown to the device, so the
    // next call loads them again (`expect.forget`).
    let failed = |bench: &Bench, expect: &mut Expect, ran: bool| {
        bench.fake.assert_clean("after a failed call");
        if ran {
            expect.call(&slots);
        }
        expect.forget();
    };

    // The run ends in error and the kernel loses its codebooks (as after a reset).
    let runs = bench.model().runs;
    bench.model().fail_run = Some(runs);
    fault(
        dev.search(&queries(&hs, &layer)),
        &["xrtRunWait", "searches 0..4", "ERT_CMD_STATE_ERROR"],
    );
    failed(&bench, &mut expect, true);
    check_expected(&bench, &mut dev, &mut expect, &loaded, &hs, &layer);

    // What the kernel reports in a result header: a Fault naming the search and the flag,
    // then bit-exact calls again.
    for (job, flags, text) in [
        (
            2,
            out_flags::READ_ERROR,
            ["memory error", "SLVERR or DECERR", "bit 63"],
        ),
        (
            3,
            out_flags::WRITE_ERROR,
            ["memory error", "SLVERR or DECERR", "bit 62"],
        ),
    ] {
        bench.model().memory_error = Some((job, flags));
        let search = format!("search {job} (slot {job})");
        fault(
            dev.search(&queries(&hs, &layer)),
            &[&search, text[0], text[1], text[2]],
        );
        failed(&bench, &mut expect, true);
        check_expected(&bench, &mut dev, &mut expect, &loaded, &hs, &layer);
    }
    // A kernel built for fewer heads refuses slot 2's head (bit 61).
    bench.model().heads = 2;
    fault(
        dev.search(&queries(&hs, &layer)),
        &["search 2 (slot 2)", "request error", "bit 61"],
    );
    bench.model().heads = 4;
    failed(&bench, &mut expect, true);
    check_expected(&bench, &mut dev, &mut expect, &loaded, &hs, &layer);
    // A job the kernel never answered.
    bench.model().skip_job = Some(1);
    fault(
        dev.search(&queries(&hs, &layer)),
        &["search 1 (slot 1)", "did not answer"],
    );
    failed(&bench, &mut expect, true);
    check_expected(&bench, &mut dev, &mut expect, &loaded, &hs, &layer);

    // Failing XRT calls at each step of a layer call: the jobs upload, the two lanes'
    // uploads, the arguments, the start and wait, the two lanes' downloads.
    for (call, skip, value, text, ran) in [
        ("xrtBOWrite", 0, -12, "returned -12", false),
        ("xrtBOWrite", 2, -12, "returned -12", false),
        ("xrtBOSync", 1, -5, "returned -5", false),
        ("xrtBOSync", 4, -5, "returned -5", true),
        ("xrtRunSetArg", 5, -1, "returned -1", false),
        ("xrtRunStart", 0, -1, "returned -1", false),
        ("xrtRunWait", 0, 6, "ERT_CMD_STATE_ABORT", true),
        ("xrtBORead", 1, -14, "returned -14", true),
    ] {
        bench.fake.inject(call, skip, value);
        fault(dev.search(&queries(&hs, &layer)), &[call, text]);
        failed(&bench, &mut expect, ran);
        check_expected(&bench, &mut dev, &mut expect, &loaded, &hs, &layer);
    }
    // A failing codebook upload keeps the slot's codebook, and the kernel still holds it:
    // the region is written again, no load is needed.
    for call in ["xrtBOSync", "xrtBOWrite"] {
        bench.fake.inject(call, 0, -5);
        fault(dev.load_codebook(1, hs[0].wl.codebook.clone()), &[call]);
        check_expected(&bench, &mut dev, &mut expect, &loaded, &hs, &layer);
    }
    drop(dev);
    bench.assert_released("faults");
}

#[test]
fn refused_calls_change_nothing() {
    let acc = reshape(&alveo_accelerators(61, 1)[0], 2, Some(2));
    let bench = Bench::new("refused", &acc);
    let c = acc.config();
    let (n, k) = (c.engine.max_tokens as usize, c.topk.k_max as usize);
    let hs = heads(&acc, 2, n, 11);
    let mut dev = bench.open();
    let mut expect = Expect::new(&acc);
    let loaded = load_all(&mut dev, &mut expect, &hs);
    let layer: Vec<Search> = vec![(0, 0, n, k), (1, 1, n, k)];
    check_expected(&bench, &mut dev, &mut expect, &loaded, &hs, &layer);
    let calls = bench.fake.calls(None);

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
        // More searches than the kernel's n_jobs takes.
        vec![good[0]; MAX_JOBS as usize + 1],
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
        if qs.len() > MAX_JOBS as usize {
            assert!(e.to_string().contains("65535"), "{e}");
        }
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

    // Same answers, and what the kernel holds is still known: no codebook load.
    check_expected(
        &bench,
        &mut dev,
        &mut expect,
        &loaded,
        &hs,
        &[(1, 2, n, k), (0, 3, n, k)],
    );
    let calls = bench.fake.calls(None);
    assert!(dev.search(&[]).expect("an empty call").is_empty());
    assert_eq!(bench.fake.calls(None), calls, "an empty call reached XRT");
    // The most searches a call takes: one run of MAX_JOBS jobs.
    let most: Vec<Search> = (0..MAX_JOBS as usize)
        .map(|i| (i % 2, i % 4, (i % 3).min(n), 1))
        .collect();
    check_expected(&bench, &mut dev, &mut expect, &loaded, &hs, &most);
    assert_eq!(bench.model().n_jobs.last(), Some(&(MAX_JOBS as usize)));
    drop(dev);
    bench.assert_released("refused");
}

#[test]
fn the_fake_catches_a_bad_call_sequence() {
    use std::ffi::c_uint;
    type H = *mut c_void;
    // Codes in 2 stripes (and jobs of up to 5 beats), so a job whose second beat leaves
    // stripe 1's buffer can be made.
    let acc = striped(&alveo_accelerators(67, 1)[0], 2);
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
    let stripes = code_stripes(acc.config());
    assert_eq!(stripes, 2);
    // One job of `n` tokens, top-1, head 0; `codes`/`out` offsets in bytes. The good one
    // reads one beat (stripe 0), its results at 0 and its codes at the first beat after.
    let d = acc.config().pq.head_dim as usize;
    let beat = bench
        .iface
        .master(&engine_master(0, 0, stripes))
        .expect("master")
        .data_bits as usize
        / 8;
    let job = |n: u32, codes: u32, out: u32| -> Vec<u8> {
        let mut w = vec![n, 1, 0, 0, codes, 0, out, 0];
        w.resize(8 + d, 0);
        w.iter().flat_map(|v| v.to_le_bytes()).collect()
    };
    let codes = beat.max(16);
    let good = job(1, codes as u32, 0);
    // Two beats: the second lies in stripe 1, whose buffer below ends where codes begin.
    let tokens_per_beat = acc.derived().layout.tokens_per_beat;
    let two_beats = job(tokens_per_beat + 1, codes as u32, 0);
    // The buffer arguments in order: codebooks, jobs, lane0, lane0_1, ...; the scalars.
    let names: Vec<String> = bench
        .iface
        .args
        .iter()
        .filter(|a| a.kind == ArgKind::Buffer)
        .map(|a| a.name.clone())
        .collect();
    assert_eq!(names[2..4], [engine_arg(0, 0), engine_arg(0, 1)]);
    let scalar = |name: &str| bench.iface.arg(name).expect("scalar").id as c_int;
    let (n_jobs, load_codebook) = (scalar("n_jobs"), scalar("load_codebook"));
    let size = |name: &str| {
        if name == engine_arg(0, 1) {
            codes
        } else {
            4096
        }
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
        let bos: Vec<H> = names
            .iter()
            .map(|n| alloc(dev, size(n), 0, group(n)))
            .collect();
        // Zeros everywhere (valid codebooks), the job, all sent to the device.
        let zeros = [0u8; 4096];
        for (bo, n) in bos.iter().zip(&names) {
            assert_eq!(write(*bo, zeros.as_ptr().cast(), size(n), 0), 0);
            assert_eq!(sync(*bo, 0, size(n), 0), 0);
        }
        assert_eq!(write(bos[1], good.as_ptr().cast(), good.len(), 0), 0);
        assert_eq!(sync(bos[1], 0, good.len(), 0), 0);
        let run = run_open(k);
        // Started with only the buffers set.
        for (i, bo) in bos.iter().enumerate() {
            assert_eq!(set_arg(run, i as c_int, *bo), 0);
        }
        assert_eq!(start(run), -1);
        // Started with host bytes of the codebooks not synced to the device.
        assert_eq!(write(bos[0], zeros.as_ptr().cast(), 64, 0), 0);
        for i in [n_jobs, load_codebook] {
            assert_eq!(set_arg(run, i, 1 as c_uint), 0);
        }
        assert_eq!(start(run), 0);
        // Results read while the run is in flight, then without a sync from the device.
        let mut out = [0u8; 8];
        read(bos[2], out.as_mut_ptr().cast(), 8, 0);
        wait(run);
        read(bos[2], out.as_mut_ptr().cast(), 8, 0);
        // Jobs the kernel model refuses: codes off their beat, results over the codes, a
        // beat past its stripe's buffer.
        for bad in [job(1, 4, 0), job(1, 0, 0), two_beats] {
            assert_eq!(write(bos[1], bad.as_ptr().cast(), bad.len(), 0), 0);
            assert_eq!(sync(bos[1], 0, bad.len(), 0), 0);
            assert_eq!(sync(bos[0], 0, 4096, 0), 0);
            assert_eq!(sync(bos[2], 1, 4096, 0), 0);
            assert_eq!(start(run), 0);
            wait(run);
        }
        // A buffer freed twice; the device closed with its kernel and run open.
        free(bos[0]);
        free(bos[0]);
        close(dev);
        f.violations()
    };
    let (count, text) = log;
    let unset = format!("argument {n_jobs} was never set");
    for needle in [
        unset.as_str(),
        "written but not synced to the device",
        "xrtBORead: 1 runs in flight",
        "not synced from the device",
        "off its alignment",
        "overlaps a result area",
        "past lane 0 stripe 1's",
        "xrtBOFree: 0x",
        "still open",
    ] {
        assert!(
            text.contains(needle),
            "`{needle}` not in the fake's log:\n{text}"
        );
    }
    assert!(count >= 9, "{count} violations:\n{text}");
}
