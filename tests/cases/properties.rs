//! Property tests over random valid descriptions and random data: the golden model obeys
//! docs/design.md section 3 and agrees with a plain, independent re-statement of it.

use kvpq_core::golden::fixed::quantize;
use kvpq_core::golden::packing::{pack, unpack};
use kvpq_core::golden::topk::Hit;
use kvpq_core::golden::{GoldenEngine, QuantCodebook};
use kvpq_core::spec::{
    check, Accelerator, AcceleratorBuilder, EngineConfig, PqConfig, QuantConfig, ScannerConfig,
    TopKConfig,
};
use ndarray::{Array2, Array3};
use proptest::prelude::*;

/// Random descriptions; those the validator accepts are used.
fn any_accelerator() -> impl Strategy<Value = Accelerator> {
    (
        (1u32..=6, 0u32..=4),              // sub_dim exponent-ish, m exponent
        1u32..=8,                          // code_bits
        (2u32..=12, 2u32..=12, 2u32..=20), // query, centroid, lut bits
        0u32..=3,                          // lanes exponent
        prop::bool::ANY,                   // systolic or select
        1u32..=64,                         // k_max
        prop::sample::select(vec![32u32, 64, 128, 256, 512]),
    )
        .prop_map(|((sub, me), b, (qb, cb, lb), le, systolic, k, beat)| {
            let m = 1u32 << me;
            let pq = PqConfig::new(sub * m, m, b);
            let topk = if systolic {
                TopKConfig::systolic(k)
            } else {
                TopKConfig::select(k).with_radix_bits(1 + k % 4)
            };
            AcceleratorBuilder::new("prop", pq)
                .quant(QuantConfig::new(qb, cb, lb.min(qb + cb)))
                .scanner(ScannerConfig::new(1 << le))
                .topk(topk)
                .engine(EngineConfig::new(512).with_beat_bits(beat))
                .retrieval(kvpq_core::spec::RetrievalConfig::default().with_budget(0.05, 0.5))
        })
        .prop_filter_map("invalid combination", |b| b.build().ok())
}

/// Random integer inputs that fit the accelerator's widths.
fn inputs(acc: &Accelerator) -> impl Strategy<Value = (Vec<i32>, Vec<i32>, Vec<u8>, usize, usize)> {
    let w = acc.derived().widths;
    let m = acc.config().pq.m as usize;
    let cb_len = m * w.codebook_size as usize * w.sub_dim as usize;
    let qmin = -(1i32 << (w.query_bits - 1));
    let cmin = -(1i32 << (w.centroid_bits - 1));
    let k_max = acc.config().topk.k_max as usize;
    let k = w.codebook_size;
    (0usize..200).prop_flat_map(move |n| {
        (
            prop::collection::vec(qmin..=-qmin - 1, (w.sub_dim as usize) * m),
            prop::collection::vec(cmin..=-cmin - 1, cb_len),
            prop::collection::vec(0..k, n * m)
                .prop_map(|v| v.into_iter().map(|c| c as u8).collect()),
            Just(n),
            0usize..=k_max,
        )
    })
}

/// Section 3 restated plainly: i128 arithmetic, a full sort, no shared code.
fn reference(
    acc: &Accelerator,
    q: &[i32],
    cb: &Array3<i32>,
    codes: &Array2<u8>,
    k: usize,
) -> (Vec<Hit>, u32) {
    let (m, kk, sub) = cb.dim();
    let lb = acc.config().quant.lut_bits;
    let mut acc_v = vec![vec![0i128; kk]; m];
    for mi in 0..m {
        for c in 0..kk {
            acc_v[mi][c] = (0..sub)
                .map(|j| q[mi * sub + j] as i128 * cb[[mi, c, j]] as i128)
                .sum();
        }
    }
    let a = acc_v
        .iter()
        .flatten()
        .map(|v| v.unsigned_abs())
        .max()
        .unwrap_or(0);
    let need = 128 - a.leading_zeros();
    let shift = need.saturating_sub(lb - 1);
    let lut: Vec<Vec<i128>> = acc_v
        .iter()
        .map(|row| row.iter().map(|&v| v.div_euclid(1i128 << shift)).collect())
        .collect();
    let mut all: Vec<(i128, usize)> = codes
        .outer_iter()
        .enumerate()
        .map(|(t, row)| ((0..m).map(|mi| lut[mi][row[mi] as usize]).sum(), t))
        .collect();
    // Rank by score, ties to the smaller index; return the winners in ascending index.
    all.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    all.truncate(k);
    all.sort_by_key(|&(_, t)| t);
    let hits = all
        .into_iter()
        .map(|(s, t)| Hit {
            index: t as u32,
            score: i32::try_from(s).expect("score fits i32"),
        })
        .collect();
    (hits, shift)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn golden_engine_matches_plain_restatement(
        (acc, (q, cb, codes, n, k)) in any_accelerator().prop_flat_map(|a| { let i = inputs(&a); (Just(a), i) })
    ) {
        let w = acc.derived().widths;
        let m = acc.config().pq.m as usize;
        let cb = Array3::from_shape_vec((m, w.codebook_size as usize, w.sub_dim as usize), cb).unwrap();
        let codes = Array2::from_shape_vec((n, m), codes).unwrap();
        let engine = GoldenEngine::new(&acc, QuantCodebook { values: cb.clone(), scale: 1.0 }).unwrap();
        let got = engine.run_codes(&q, &codes, k).unwrap();
        let (hits, shift) = reference(&acc, &q, &cb, &codes, k);
        prop_assert_eq!(got.shift, shift);
        prop_assert_eq!(&got.hits, &hits);
        prop_assert_eq!(got.hits.len(), k.min(n));

        // Every LUT entry and every score fits its declared width.
        let lut = engine.build_lut(&q).unwrap();
        let lmax = 1i64 << (w.lut_bits - 1);
        prop_assert!(lut.values.iter().all(|&v| (-lmax..lmax).contains(&i64::from(v))));
        let smax = 1i64 << (w.score_bits - 1);
        prop_assert!(got.hits.iter().all(|h| (-smax..smax).contains(&i64::from(h.score))));
        prop_assert!(lut.shift <= w.max_shift);
    }

    #[test]
    fn packing_round_trips(
        (acc, (_, _, codes, n, _)) in any_accelerator().prop_flat_map(|a| { let i = inputs(&a); (Just(a), i) })
    ) {
        let layout = acc.derived().layout;
        let codes = Array2::from_shape_vec((n, layout.m as usize), codes).unwrap();
        let words = pack(&layout, codes.view()).unwrap();
        prop_assert_eq!(words.len(), layout.beats_for(n) * layout.words_per_beat());
        prop_assert_eq!(unpack(&layout, &words, n).unwrap(), codes);
        // Padding bits of every beat stay zero.
        for beat in words.chunks(layout.words_per_beat()) {
            let used = (layout.tokens_per_beat * layout.token_bits()) as usize;
            for bit in used..layout.words_per_beat() * 64 {
                prop_assert_eq!((beat[bit / 64] >> (bit % 64)) & 1, 0);
            }
        }
    }

    #[test]
    fn quantization_bounds_error_and_range(
        xs in prop::collection::vec(-1e4f32..1e4, 1..64),
        bits in 2u32..=16,
    ) {
        let q = quantize("x", &xs, bits).unwrap();
        let max = (1i32 << (bits - 1)) - 1;
        prop_assert!(q.values.iter().all(|&v| (-max..=max).contains(&v)));
        for (&x, &v) in xs.iter().zip(&q.values) {
            // Round to nearest: at most half a step away, plus the f32 division's rounding.
            let err = (f64::from(x) - f64::from(v) * f64::from(q.scale)).abs();
            prop_assert!(err <= 0.5 * f64::from(q.scale) + f64::from(x.abs()) * 1e-6);
        }
        let max_abs = xs.iter().fold(0f32, |a, x| a.max(x.abs()));
        if max_abs > 0.0 {
            prop_assert!(q.values.iter().any(|v| v.abs() == max));
        }
    }

    #[test]
    fn accepted_descriptions_keep_their_invariants(acc in any_accelerator()) {
        let cfg = acc.config();
        let d = acc.derived();
        prop_assert!(check(cfg).is_empty());
        prop_assert_eq!(cfg.pq.head_dim % cfg.pq.m, 0);
        prop_assert_eq!(d.layout.tokens_per_beat % cfg.scanner.lanes, 0);
        prop_assert!(d.widths.acc_bits <= kvpq_core::spec::MAX_ACC_BITS);
        prop_assert!(d.widths.score_bits <= kvpq_core::spec::MAX_SCORE_BITS);
        prop_assert!(cfg.topk.k_max <= cfg.engine.max_tokens);
    }
}

/// The random descriptions the RTL and co-simulation tests draw stay valid under the policy
/// rule (k at max_tokens is at least 1) and retrieve exactly k_max.
#[test]
fn random_descriptions_retrieve_k_max() {
    for acc in kvpq_tests::random::small_accelerators(7, 64) {
        let c = acc.config();
        assert_eq!(
            acc.policy_k(c.engine.max_tokens),
            c.topk.k_max,
            "{}",
            c.name
        );
    }
}
