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

/// (M, K, D/M) of `acc`.
fn dims(acc: &Accelerator) -> (usize, usize, usize) {
    let w = acc.derived().widths;
    (
        acc.config().pq.m as usize,
        w.codebook_size as usize,
        w.sub_dim as usize,
    )
}

fn head(acc: &Accelerator, n: usize, rng: &mut ChaCha8Rng) -> Head {
    let c = acc.config();
    let (m, k, sub) = dims(acc);
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
                stream: None,
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
            stream: None,
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

/// How the codes of a randomized head are drawn.
#[derive(Debug, Clone, Copy)]
enum Codes {
    /// Uniform over all codes.
    Uniform,
    /// From three codes: long runs of equal scores.
    Few,
    /// One code: every token ties.
    One,
    /// The beats a sample of every 8th beat would see hold the best code in their first
    /// half; all others a low one, so a guess from that sample keeps too few tokens.
    MisleadingSample,
}

/// An accelerator for `max_tokens` tokens and k up to `k_max`.
fn wide(d: u32, m: u32, b: u32, beat: u32, max_tokens: u32, k_max: u32) -> Accelerator {
    AcceleratorBuilder::new("cpu-random", PqConfig::new(d, m, b))
        .quant(QuantConfig::new(8, 8, 16))
        .scanner(ScannerConfig::new(beat / (m * b)))
        .topk(TopKConfig::select(k_max))
        .engine(EngineConfig::new(max_tokens).with_beat_bits(beat))
        .build()
        .unwrap_or_else(|e| panic!("{d}/{m}/{b}/{beat}: {e}"))
}

/// One random head: centroids from `levels` distinct values (few levels: many equal
/// scores), codes drawn as `codes` says.
fn random_head(
    acc: &Accelerator,
    n: usize,
    levels: i32,
    codes: Codes,
    rng: &mut ChaCha8Rng,
) -> Head {
    let c = acc.config();
    let (m, k, sub) = dims(acc);
    let step = 256 / levels;
    let values = Array3::from_shape_fn((m, k, sub), |_| -128 + step * rng.random_range(0..levels));
    let query: Vec<i32> = (0..c.pq.head_dim)
        .map(|_| rng.random_range(-128..128))
        .collect();
    let tpb = acc.derived().layout.tokens_per_beat as usize;
    let few: Vec<u8> = (0..3 * m).map(|_| rng.random_range(0..k) as u8).collect();
    let drawn = Array2::from_shape_fn((n, m), |(t, mi)| match codes {
        Codes::Uniform => rng.random_range(0..k) as u8,
        Codes::Few => few[(t % 3) * m + mi],
        Codes::One => few[mi],
        Codes::MisleadingSample if (t / tpb).is_multiple_of(8) && t % tpb < tpb / 2 => {
            (k - 1) as u8
        }
        Codes::MisleadingSample => 0,
    });
    let mut head = Head {
        codebook: QuantCodebook { values, scale: 1.0 },
        query,
        beats: pack(&acc.derived().layout, drawn.view()).unwrap(),
    };
    if let Codes::MisleadingSample = codes {
        // Code k - 1 scores highest in every subspace, code 0 lowest.
        head.query = vec![1; c.pq.head_dim as usize];
        for mut row in head.codebook.values.outer_iter_mut() {
            for (ci, mut cent) in row.outer_iter_mut().enumerate() {
                cent.fill(if ci == k - 1 { 100 } else { -100 });
            }
        }
    }
    head
}

#[test]
fn random_searches_match_the_golden_model_on_every_path() {
    // Joint path: unrolled readers of 12-, 10- and 8-bit tokens, and the generic reader
    // (12 bits in a 256-bit beat, 4 bits in a 64-bit one). General path: byte groups in
    // whole words (M = 16, b = 8), byte shuffles for 4-bit codes where the CPU has AVX2
    // (M = 32 in one 16-byte column, M = 16 in half of one; else byte groups as pairs), and
    // the generic group reader (24- and 48-bit tokens).
    let shapes: [(u32, u32, u32, u32); 11] = [
        (128, 2, 6, 512),
        (20, 2, 5, 512),
        (16, 2, 4, 512),
        (24, 3, 4, 256),
        (16, 2, 2, 64),
        (128, 32, 4, 512),
        (64, 16, 4, 256),
        (128, 16, 8, 512),
        (96, 3, 8, 512),
        (48, 8, 6, 512),
        (64, 4, 8, 512),
    ];
    let max_tokens = 70_000;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for (d, m, b, beat) in shapes {
        let acc = wide(d, m, b, beat, max_tokens, max_tokens);
        let tpb = acc.derived().layout.tokens_per_beat as usize;
        let mut dev = CpuDevice::new(acc.clone());
        // (n, codes, centroid levels): short and long contexts (the joint path samples
        // from 16,384 tokens on), n off the beat, fewer tokens than codes, ties.
        let cases = [
            (1, Codes::Uniform, 256),
            (tpb - 1, Codes::Uniform, 4),
            (tpb + 1, Codes::Few, 256),
            (3000, Codes::Uniform, 3),
            (4097, Codes::Uniform, 256),
            (20_000 + 3, Codes::Uniform, 256),
            (20_000, Codes::Few, 2),
            (17_000, Codes::One, 256),
            (max_tokens as usize - 5, Codes::Uniform, 5),
            (40_000, Codes::MisleadingSample, 256),
        ];
        for (n, codes, levels) in cases {
            let h = random_head(&acc, n, levels, codes, &mut rng);
            dev.load_codebook(0, h.codebook.clone()).unwrap();
            let golden = GoldenEngine::new(&acc, h.codebook.clone()).unwrap();
            let ks = [
                1,
                2,
                n / 20,
                n / 8,
                n / 8 + 1,
                rng.random_range(1..=n),
                n - 1,
                n,
                n + 1,
            ];
            for k in ks.into_iter().filter(|&k| k <= max_tokens as usize) {
                let q = HeadQuery {
                    slot: 0,
                    query: &h.query,
                    beats: &h.beats,
                    n_tokens: n,
                    k,
                    stream: None,
                };
                let got = dev.search(&[q]).unwrap();
                let want = golden.run(&h.query, &h.beats, n, k).unwrap();
                assert_eq!(
                    got[0], want,
                    "M {m} b {b} beat {beat}: n {n} k {k} codes {codes:?} levels {levels}"
                );
            }
        }
    }
}
