//! The runtime's `sim` device (the Verilator model of the engine) against its `cpu` device
//! on whole decode sequences: prefill, appends and selects through the retrieval index give
//! the same selections on both (the cpu device is bit-exact with the golden model, checked
//! in runtime/tests). Opening a generated folder checks its manifest, its files' hashes and
//! the model shape.

use kvpq_core::spec::Accelerator;
use kvpq_core::workload::synthetic::{SyntheticKv, SyntheticSpec};
use kvpq_runtime::backends::sim::SimDevice;
use kvpq_runtime::{Index, IndexOptions, ModelShape, RuntimeError};
use kvpq_tests::random::small_accelerators;
use kvpq_tests::{example, scratch};
use ndarray::{Array2, Array3, Axis};

const HEADS: usize = 2;

fn keys(acc: &Accelerator, n: usize, seed: u64) -> Array3<f32> {
    let d = acc.config().pq.head_dim as usize;
    let mut out = Array3::zeros((HEADS, n, d));
    for h in 0..HEADS {
        let mut spec = SyntheticSpec::new(n, d, 1, 1);
        spec.seed = seed * 10 + h as u64;
        out.index_axis_mut(Axis(0), h)
            .assign(&SyntheticKv::generate(&spec).keys);
    }
    out
}

fn queries(acc: &Accelerator, seed: u64) -> Array2<f32> {
    let c = acc.config();
    let (d, g) = (c.pq.head_dim as usize, c.retrieval.gqa_group as usize);
    let mut spec = SyntheticSpec::new(64, d, HEADS, g);
    spec.seed = seed;
    SyntheticKv::generate(&spec)
        .queries
        .into_shape_with_order((HEADS * g, d))
        .expect("contiguous")
}

/// Prefill, then `steps` rounds of select + append on two layers, through both devices.
fn decode(acc: &Accelerator, prefill: usize, steps: u64) {
    let name = &acc.config().name;
    let opts = IndexOptions::new(2, HEADS).with_capacity(prefill + steps as usize * 3);
    let sim = SimDevice::new(acc.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let on_sim = Index::new(acc.clone(), opts.clone(), vec![Box::new(sim)]).expect("index");
    let on_cpu = Index::cpu(acc.clone(), opts).expect("index");
    for layer in 0..2 {
        let k = keys(acc, prefill, layer as u64);
        for index in [&on_sim, &on_cpu] {
            index.prefill(layer, k.view(), k.view()).expect("prefill");
        }
    }
    for step in 0..steps {
        for layer in 0..2 {
            let q = queries(acc, step * 2 + layer as u64);
            let want = on_cpu.select(layer, q.view()).expect("cpu select");
            let got = on_sim.select(layer, q.view()).expect("sim select");
            assert_eq!(got, want, "{name}: step {step} layer {layer}");
            let new = keys(acc, 1 + (step as usize % 3), 100 + step);
            for index in [&on_sim, &on_cpu] {
                index.append(layer, new.view(), new.view()).expect("append");
            }
        }
    }
}

#[test]
fn sim_and_cpu_devices_select_the_same_tokens() {
    // The default design at a short context, and the first random descriptions of the
    // co-simulation sweep (their models are already in the cache there).
    decode(&example("pqcache-llama3"), 1500, 6);
    for acc in small_accelerators(11, 3) {
        let c = acc.config();
        let k = 1usize << c.pq.code_bits;
        let prefill = k.max(c.engine.max_tokens as usize / 2);
        let steps = (c.engine.max_tokens as usize - prefill).min(12) as u64 / 3;
        decode(&acc, prefill, steps.max(1));
    }
}

#[test]
fn a_search_past_the_cycle_limit_is_a_fault_and_the_next_one_runs() {
    use kvpq_runtime::{Device, HeadQuery};
    let acc = small_accelerators(11, 1).remove(0);
    let c = acc.config();
    let n = c.engine.max_tokens as usize;
    let w = kvpq_tests::workload::draw(&acc, n, 1, kvpq_tests::workload::Values::Uniform, 5);
    let mut dev = SimDevice::new(acc.clone()).expect("model");
    dev.load_codebook(0, w.codebook.clone()).expect("codebook");
    let search = HeadQuery {
        slot: 0,
        query: &w.queries[0],
        beats: &w.beats,
        n_tokens: n,
        k: c.topk.k_max as usize,
        stream: None,
    };
    dev.set_cycle_limit(Some(3));
    let e = dev.search(&[search]).unwrap_err();
    assert!(
        matches!(e, RuntimeError::Fault { backend: "sim", .. }) && e.to_string().contains("cycles"),
        "{e}"
    );
    dev.set_cycle_limit(None);
    let got = dev.search(&[search]).expect("runs after the fault");
    let golden = kvpq_core::golden::GoldenEngine::new(&acc, w.codebook).expect("codebook");
    let want = golden
        .run(&w.queries[0], &w.beats, n, c.topk.k_max as usize)
        .expect("golden");
    assert_eq!(got, vec![want]);
}

#[test]
fn opening_a_folder_checks_manifest_files_and_shape() {
    let acc = example("pqcache-llama3");
    let dir = scratch("runtime-sim", "folder");
    hwgen_cli::commands::generate::generate(&acc, &dir, false, true).expect("generate");
    let shape = ModelShape {
        head_dim: Some(128),
        max_tokens: Some(4096),
        gqa_group: Some(4),
    };
    SimDevice::open(&dir, &shape).expect("a fresh folder opens");

    let wrong = ModelShape {
        head_dim: Some(64),
        ..shape
    };
    let e = SimDevice::open(&dir, &wrong).unwrap_err();
    assert!(
        matches!(
            e,
            RuntimeError::Mismatch {
                field: "pq.head_dim",
                ..
            }
        ) && e.to_string().contains("128")
            && e.to_string().contains("64"),
        "{e}"
    );
    let long = ModelShape {
        max_tokens: Some(1 << 20),
        ..shape
    };
    let e = SimDevice::open(&dir, &long).unwrap_err().to_string();
    assert!(
        e.contains("engine.max_tokens") && e.contains("131072"),
        "{e}"
    );

    let edited = dir.join("topk_select.v");
    let text = std::fs::read_to_string(&edited).expect("generated");
    std::fs::write(&edited, text.replace("module", "module ")).expect("write");
    let e = SimDevice::open(&dir, &shape).unwrap_err().to_string();
    assert!(e.contains("topk_select.v") && e.contains("SHA-256"), "{e}");
    std::fs::remove_file(dir.join("manifest.json")).expect("remove");
    let e = SimDevice::open(&dir, &shape).unwrap_err().to_string();
    assert!(e.contains("manifest.json"), "{e}");
}
