//! The retrieval index against the golden model: every selection of a multi-step decode
//! (prefill, appends, re-training) equals sinks + the golden engine's top-k over the index's
//! own codes + local window; codes equal the golden encoding; several devices, several
//! threads and one thread agree; the store gathers the selected rows; every bad input is
//! refused and changes nothing.

use half::bf16;
use kvpq_core::golden::fixed::quantize;
use kvpq_core::golden::packing::pack;
use kvpq_core::golden::GoldenEngine;
use kvpq_core::spec::{
    Accelerator, AcceleratorBuilder, EngineConfig, PqConfig, QuantConfig, RetrievalConfig,
    ScannerConfig, TopKConfig,
};
use kvpq_core::workload::synthetic::{SyntheticKv, SyntheticSpec};
use kvpq_runtime::backends::cpu::CpuDevice;
use kvpq_runtime::{DType, Device, Index, IndexOptions, RuntimeError, Selection, Sharding};
use ndarray::{s, Array2, Array3, Axis};

const D: usize = 32;
const G: usize = 2;
const HEADS: usize = 2;

fn accelerator() -> Accelerator {
    AcceleratorBuilder::new("index-test", PqConfig::new(D as u32, 2, 4))
        .quant(QuantConfig::new(8, 8, 16))
        .scanner(ScannerConfig::new(8))
        .topk(TopKConfig::select(1024))
        .engine(EngineConfig::new(4096).with_beat_bits(64))
        .retrieval(RetrievalConfig {
            gqa_group: G as u32,
            sink_tokens: 8,
            budget: 0.2,
            local_fraction: 0.5,
        })
        .build()
        .expect("a valid test accelerator")
}

/// Keys `[heads][n][D]` with the synthetic structure, a different seed per (layer, head).
fn keys(layer: usize, n: usize, seed: u64) -> Array3<f32> {
    let mut out = Array3::zeros((HEADS, n, D));
    for h in 0..HEADS {
        let mut spec = SyntheticSpec::new(n, D, 1, G);
        spec.seed = seed * 1000 + layer as u64 * 10 + h as u64;
        out.index_axis_mut(Axis(0), h)
            .assign(&SyntheticKv::generate(&spec).keys);
    }
    out
}

fn queries(step: u64) -> Array2<f32> {
    let mut spec = SyntheticSpec::new(64, D, HEADS, G);
    spec.seed = 77 + step;
    let kv = SyntheticKv::generate(&spec);
    // (heads, g, D) -> (heads * g, D): query heads h*g..(h+1)*g share KV head h.
    kv.queries
        .into_shape_with_order((HEADS * G, D))
        .expect("contiguous")
}

/// What the selection must be: recomputed from the index's codebooks and codes with the
/// golden engine, and the codes re-derived with the golden encoder.
fn expected(index: &Index, layer: usize, q: &Array2<f32>, all_keys: &Array3<f32>) -> Selection {
    let acc = index.accelerator();
    let split = acc.policy_split(all_keys.dim().1 as u32);
    let (sink, local) = (split.sink as usize, split.local as usize);
    let n = all_keys.dim().1;
    let mut ids = Vec::new();
    for h in 0..HEADS {
        let hc = index.head_codes(layer, h).expect("trained");
        let stream = all_keys.slice(s![h, sink.max(8).min(n).., ..]);
        let codes = hc.codebook.encode(stream).expect("encode");
        assert_eq!(
            pack(&acc.derived().layout, codes.view()).expect("pack"),
            hc.beats,
            "layer {layer} head {h}: codes differ from the golden encoding"
        );
        let sum: Vec<f32> = (0..D)
            .map(|j| (0..G).fold(0.0f32, |a, g| a + q[[h * G + g, j]]))
            .collect();
        let qi = quantize("q", &sum, 8).expect("finite").values;
        let engine = GoldenEngine::new(acc, hc.quant.clone()).expect("codebook");
        let middle = n - sink - local;
        let r = engine
            .run(&qi, &hc.beats, middle, split.topk as usize)
            .expect("golden");
        // The golden top-k is in ascending token index, as the selection's middle.
        let top: Vec<u32> = r.hits.iter().map(|x| x.index + sink as u32).collect();
        ids.extend(0..sink as u32);
        ids.extend(top);
        ids.extend((n - local) as u32..n as u32);
    }
    let got = index.select(layer, q.view()).expect("select");
    assert_eq!(got.ids().len(), ids.len(), "layer {layer}");
    assert_eq!(
        got.ids(),
        &ids[..],
        "layer {layer}: selection differs from golden"
    );
    got
}

#[test]
fn a_decode_sequence_selects_what_the_golden_engine_selects() {
    let opts = IndexOptions::new(3, HEADS)
        .with_capacity(3000)
        .with_retrain_every(300);
    let index = Index::cpu(accelerator(), opts).expect("index");
    let mut all: Vec<Array3<f32>> = Vec::new();
    for layer in 0..3 {
        let k = keys(layer, 700 + 100 * layer, 1);
        index.prefill(layer, k.view(), k.view()).expect("prefill");
        all.push(k);
    }
    let first = index.head_codes(0, 0).expect("trained").codebook;
    for step in 0..12u64 {
        for (layer, context) in all.iter_mut().enumerate() {
            let q = queries(step * 3 + layer as u64);
            // A re-training may be running: let it land so both sides see the same codebooks.
            index.wait_trained(layer).expect("trained");
            expected(&index, layer, &q, context);
            // Appends of 1 to 90 tokens, crossing the re-training threshold.
            let n = 1 + (step as usize * 37 + layer * 11) % 90;
            let new = keys(layer, n, 100 + step);
            index.append(layer, new.view(), new.view()).expect("append");
            *context = ndarray::concatenate(Axis(1), &[context.view(), new.view()])
                .expect("same heads and dim");
            assert_eq!(index.tokens(layer).expect("layer"), context.dim().1);
        }
    }
    index.wait_trained(0).expect("trained");
    let last = index.head_codes(0, 0).expect("trained").codebook;
    assert_ne!(first, last, "300 appended tokens re-trained the codebooks");
}

#[test]
fn the_index_and_the_store_are_send_and_sync() {
    fn shared<T: Send + Sync>() {}
    shared::<Index>();
    shared::<kvpq_runtime::KvStore>();
    shared::<Selection>();
}

#[test]
fn devices_threads_and_one_thread_agree() {
    let layers = 4;
    let build = |devices: usize, sharding| {
        let acc = accelerator();
        let devs: Vec<Box<dyn Device>> = (0..devices)
            .map(|_| Box::new(CpuDevice::new(acc.clone())) as Box<dyn Device>)
            .collect();
        let opts = IndexOptions::new(layers, HEADS)
            .with_capacity(2000)
            .with_sharding(sharding);
        let index = Index::new(acc, opts, devs).expect("index");
        for layer in 0..layers {
            let k = keys(layer, 900, 2);
            index.prefill(layer, k.view(), k.view()).expect("prefill");
        }
        index
    };
    let one = build(1, Sharding::Layers);
    let want: Vec<Selection> = (0..layers)
        .map(|l| one.select(l, queries(l as u64).view()).expect("select"))
        .collect();
    for (devices, sharding) in [
        (3, Sharding::Layers),
        (2, Sharding::Heads),
        (5, Sharding::Heads),
    ] {
        let index = build(devices, sharding);
        let got: Vec<Selection> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..layers)
                .map(|l| {
                    let index = &index;
                    s.spawn(move || {
                        // Each thread selects its layer several times.
                        let mut last = None;
                        for _ in 0..5 {
                            last = Some(index.select(l, queries(l as u64).view()).expect("select"));
                        }
                        last.expect("ran")
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        assert_eq!(got, want, "{devices} devices, {sharding:?}");
    }
}

#[test]
fn gather_copies_the_selected_rows() {
    let opts = IndexOptions::new(1, HEADS)
        .with_capacity(1000)
        .with_dtype(DType::Bf16);
    let index = Index::cpu(accelerator(), opts).expect("index");
    let k = keys(0, 500, 3);
    // Values as a strided view (every other column of a wider array): the store copies
    // non-contiguous input too.
    let wide = ndarray::concatenate(Axis(2), &[k.view(), k.view()]).expect("same shape");
    let v = wide.mapv(|x| x * 0.5 + 1.0);
    let v = v.slice(s![.., .., ..;2]);
    assert!(v.as_slice().is_none());
    index.prefill(0, k.view(), v).expect("prefill");
    let sel = index.select(0, queries(0).view()).expect("select");
    let r = sel.recall(k.view(), queries(0).view());
    assert!((0.0..=1.0).contains(&r), "{r}");
    // The whole middle holds the exact top-k whatever it is.
    let middle = sel.split().middle;
    let all = index
        .select_k(0, queries(0).view(), middle)
        .expect("select");
    assert_eq!(all.recall(k.view(), queries(0).view()), 1.0);
    let per = sel.len_per_head();
    assert_eq!(per, 8 + 50 + 50, "sinks + top-k + window at 500 tokens");
    let mut gk = vec![bf16::ZERO; HEADS * per * D];
    let mut gv = gk.clone();
    index
        .store()
        .gather(&sel, &mut gk, &mut gv)
        .expect("gather");
    for h in 0..HEADS {
        for (i, &t) in sel.head(h).iter().enumerate() {
            for j in 0..D {
                let at = (h * per + i) * D + j;
                assert_eq!(gk[at], bf16::from_f32(k[[h, t as usize, j]]));
                assert_eq!(gv[at], bf16::from_f32(v[[h, t as usize, j]]));
            }
        }
    }
    let mut wrong = vec![0f32; HEADS * per * D];
    let mut wrong_v = wrong.clone();
    let e = index
        .store()
        .gather(&sel, &mut wrong, &mut wrong_v)
        .unwrap_err();
    assert!(e.to_string().contains("bf16"), "{e}");
    let e = index
        .store()
        .gather(&sel, &mut gk[1..], &mut gv)
        .unwrap_err();
    assert!(e.to_string().contains("gather keys"), "{e}");
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let opts = IndexOptions::new(2, HEADS).with_capacity(1000);
    let index = Index::cpu(accelerator(), opts).expect("index");
    let q = queries(0);
    let err = |r: Result<Selection, RuntimeError>| r.unwrap_err().to_string();
    assert!(err(index.select(0, q.view())).contains("before prefill"));
    assert!(err(index.select(2, q.view())).contains("layer 2 is out of range"));
    let k = keys(0, 600, 4);
    let short = keys(0, 10, 4);
    let e = index.prefill(0, short.view(), short.view()).unwrap_err();
    assert!(e.to_string().contains("at least 16"), "{e}");
    index.prefill(0, k.view(), k.view()).expect("prefill");
    let before = index.select(0, q.view()).expect("select");

    let mut nan = keys(0, 5, 5);
    nan[[1, 2, 3]] = f32::NAN;
    let e = index.append(0, nan.view(), nan.view()).unwrap_err();
    assert!(matches!(e, RuntimeError::NonFinite { .. }), "{e}");
    let mut inf_q = q.clone();
    inf_q[[0, 0]] = f32::INFINITY;
    assert!(err(index.select(0, inf_q.view())).contains("must be finite"));
    let wide = Array3::<f32>::zeros((HEADS, 4, D + 1));
    let e = index.append(0, wide.view(), wide.view()).unwrap_err();
    assert!(e.to_string().contains("head_dim"), "{e}");
    let e = index
        .append(0, k.view(), k.slice(s![.., ..10, ..]))
        .unwrap_err();
    assert!(e.to_string().contains("append values"), "{e}");
    assert!(err(index.select(0, q.slice(s![..3, ..]))).contains("gqa_group"));
    assert!(err(index.select_k(0, q.view(), 10_000)).contains("exceeds"));
    let e = index.head_codes(0, HEADS).unwrap_err();
    assert!(e.to_string().contains("head 2 is out of range"), "{e}");
    let big = keys(0, 500, 6);
    let e = index.append(0, big.view(), big.view()).unwrap_err();
    assert!(matches!(e, RuntimeError::Capacity { .. }), "{e}");

    assert_eq!(
        index.tokens(0).expect("layer"),
        600,
        "refused calls appended nothing"
    );
    assert_eq!(index.select(0, q.view()).expect("select"), before);
}
