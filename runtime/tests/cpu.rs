//! The CPU device against the golden model: bit-exact on random codebooks, queries and codes
//! for shapes on both scoring paths (joint table and per subspace), whole layers per call;
//! and every invalid call refused without running any search.

use kvpq_core::golden::packing::pack;
use kvpq_core::golden::{GoldenEngine, QuantCodebook};
use kvpq_core::spec::{
    Accelerator, AcceleratorBuilder, EngineConfig, PqConfig, QuantConfig, ScannerConfig, TopKConfig,
};
use kvpq_runtime::backends::cpu::CpuDevice;
use kvpq_runtime::{Device, HeadQuery, RuntimeError};
use ndarray::{Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// (head_dim, m, code_bits, beat_bits): M*b of 4, 12 (the PQCache shape), 32 and 128 bits.
const SHAPES: [(u32, u32, u32, u32); 4] = [
    (16, 2, 2, 64),
    (128, 2, 6, 512),
    (64, 4, 8, 512),
    (128, 16, 8, 256),
];

fn accelerator(head_dim: u32, m: u32, code_bits: u32, beat_bits: u32) -> Accelerator {
    let tokens_per_beat = beat_bits / (m * code_bits);
    AcceleratorBuilder::new("cpu-test", PqConfig::new(head_dim, m, code_bits))
        .quant(QuantConfig::new(8, 8, 16))
        .scanner(ScannerConfig::new(tokens_per_beat))
        .topk(TopKConfig::select(256))
        .engine(EngineConfig::new(4096).with_beat_bits(beat_bits))
        .build()
        .unwrap_or_else(|e| panic!("{head_dim}/{m}/{code_bits}/{beat_bits}: {e}"))
}

struct Head {
    codebook: QuantCodebook,
    query: Vec<i32>,
    beats: Vec<u64>,
}

fn head(acc: &Accelerator, n: usize, rng: &mut ChaCha8Rng) -> Head {
    let c = acc.config();
    let w = acc.derived().widths;
    let (m, k, sub) = (
        c.pq.m as usize,
        w.codebook_size as usize,
        w.sub_dim as usize,
    );
    // Few distinct values: ties in the scores exercise the order.
    let values = Array3::from_shape_fn((m, k, sub), |_| rng.random_range(-128..128));
    let query = (0..c.pq.head_dim)
        .map(|_| rng.random_range(-8..8) * 16)
        .collect();
    let codes = Array2::from_shape_fn((n, m), |_| rng.random_range(0..k) as u8);
    Head {
        codebook: QuantCodebook { values, scale: 1.0 },
        query,
        beats: pack(&acc.derived().layout, codes.view()).unwrap(),
    }
}

#[test]
fn layers_match_the_golden_model_on_every_scoring_path() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for (d, m, b, beat) in SHAPES {
        let acc = accelerator(d, m, b, beat);
        let mut dev = CpuDevice::new(acc.clone());
        let shapes = [
            (4096, 205),
            (4096, 256),
            (1000, 1),
            (3, 10),
            (0, 5),
            (777, 0),
        ];
        let heads: Vec<Head> = (0..shapes.len())
            .map(|_| head(&acc, 4096, &mut rng))
            .collect();
        for (i, h) in heads.iter().enumerate() {
            dev.load_codebook(i, h.codebook.clone()).unwrap();
        }
        let queries: Vec<HeadQuery> = heads
            .iter()
            .zip(shapes)
            .enumerate()
            .map(|(i, (h, (n, k)))| HeadQuery {
                slot: i,
                query: &h.query,
                beats: &h.beats,
                n_tokens: n,
                k,
            })
            .collect();
        let got = dev.search(&queries).unwrap();
        for (q, (h, got)) in queries.iter().zip(heads.iter().zip(&got)) {
            let golden = GoldenEngine::new(&acc, h.codebook.clone()).unwrap();
            let want = golden.run(q.query, q.beats, q.n_tokens, q.k).unwrap();
            assert_eq!(
                got, &want,
                "M {m} b {b} beat {beat}: n {} k {}",
                q.n_tokens, q.k
            );
        }
    }
}

#[test]
fn invalid_calls_are_refused_naming_the_input() {
    let acc = accelerator(128, 2, 6, 512);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let h = head(&acc, 100, &mut rng);
    let mut dev = CpuDevice::new(acc.clone());
    let search = |dev: &mut CpuDevice, head: usize, query: &[i32], n: usize, k: usize| {
        dev.search(&[HeadQuery {
            slot: head,
            query,
            beats: &h.beats,
            n_tokens: n,
            k,
        }])
        .unwrap_err()
        .to_string()
    };
    let e = search(&mut dev, 0, &h.query, 100, 5);
    assert!(e.contains("slot 0") && e.contains("no codebook"), "{e}");
    dev.load_codebook(0, h.codebook.clone()).unwrap();
    let e = search(&mut dev, 0, &h.query[..10], 100, 5);
    assert!(e.contains("pq.head_dim"), "{e}");
    let mut big = h.query.clone();
    big[3] = 128;
    let e = search(&mut dev, 0, &big, 100, 5);
    assert!(e.contains("quant.query_bits"), "{e}");
    let e = search(&mut dev, 0, &h.query, 5000, 5);
    assert!(e.contains("engine.max_tokens"), "{e}");
    let e = search(&mut dev, 0, &h.query, 100, 300);
    assert!(e.contains("topk.k_max"), "{e}");
    let e = search(&mut dev, 0, &h.query, 200, 5);
    assert!(e.contains("200"), "too few beats: {e}");

    let e = dev
        .load_codebook(kvpq_runtime::MAX_SLOTS, h.codebook.clone())
        .unwrap_err();
    assert!(e.to_string().contains("codebook slot"), "{e}");

    let mut wrong = h.codebook.clone();
    wrong.values[[0, 0, 0]] = 1000;
    let e = dev.load_codebook(1, wrong).unwrap_err().to_string();
    assert!(e.contains("quant.centroid_bits"), "{e}");
    let e = dev
        .load_codebook(
            1,
            QuantCodebook {
                values: Array3::zeros((2, 16, 64)),
                scale: 1.0,
            },
        )
        .unwrap_err();
    assert!(matches!(e, RuntimeError::Shape { .. }), "{e}");
}
