//! Unit-level co-simulation: each generated module alone, driven port by port, against the
//! golden model: the distance unit's LUT, the scanner's scores (and its initiation interval),
//! and both top-k units on adversarial score streams full of ties.

use hwgen::emit::Design;
use kvpq_core::golden::lut::build_lut;
use kvpq_core::golden::scan::score_codes;
use kvpq_core::golden::topk::{top_k, Hit};
use kvpq_core::interface::bits::{beat_words, field, pack_fields, sign_extend};
use kvpq_core::interface::Streams;
use kvpq_core::spec::{Accelerator, TopKStrategy};
use kvpq_tests::random::small_accelerators;
use kvpq_tests::workload::{draw, Values};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sim::{build_model, default_cache, Harness, Result, Stalls};

/// A model of internal unit `top` (ports from its Verilog: the interface description covers
/// only the tops), inputs zeroed, after two cycles of reset.
fn bench(acc: &Accelerator, top: &str) -> Result<Harness> {
    let design = Design::render(acc)?;
    let built = build_model(&design, top, &default_cache())?;
    let mut b = Harness::unit(&built, 0, Stalls::NONE)?;
    b.zero_inputs();
    let rst = b.port("rst")?;
    b.pulse(rst, 1, 2, Harness::tick);
    Ok(b)
}

fn configs(seed: u64, n: usize) -> Vec<Accelerator> {
    small_accelerators(seed, n)
}

#[test]
fn dist_unit_lut_matches_golden() -> Result<()> {
    for (i, acc) in configs(21, 12).iter().enumerate() {
        let w = acc.derived().widths;
        let streams = Streams::of(acc);
        let c = acc.config();
        let mut b = bench(acc, "pq_dist_unit")?;
        for (round, values) in [Values::Uniform, Values::Ties].into_iter().enumerate() {
            let wl = draw(acc, 4, 3, values, (i * 10 + round) as u64);
            // Codebook: one centroid per transfer.
            let (m, k, sub) = wl.codebook.values.dim();
            for e in 0..m * k {
                let words = pack_fields(
                    (0..sub).map(|j| i64::from(wl.codebook.values[[e / k, e % k, j]])),
                    w.centroid_bits,
                    streams.cb_data,
                );
                b.drive_words("cb_data", &words)?;
                b.drive("cb_valid", 1)?;
                while b.sample("cb_ready")? == 0 {
                    b.tick();
                }
                b.tick();
            }
            b.drive("cb_valid", 0)?;
            let mut queries = wl.queries.clone();
            queries.push(vec![0; c.pq.head_dim as usize]); // all-zero query: shift 0
            for q in &queries {
                let want = build_lut(q, &wl.codebook, w.lut_bits);
                b.drive_words(
                    "q_data",
                    &pack_fields(
                        q.iter().map(|&v| i64::from(v)),
                        w.query_bits,
                        streams.q_data,
                    ),
                )?;
                b.drive("lut_free", 1)?;
                b.drive("q_valid", 1)?;
                while b.sample("q_ready")? == 0 {
                    b.tick();
                }
                b.tick();
                b.drive("q_valid", 0)?;
                let mut got = Array2::<i64>::from_elem((m, k), i64::MIN);
                let mut guard = 0;
                while b.sample("lut_done")? == 0 {
                    if b.sample("lut_we")? == 1 {
                        let (mi, ci) = (b.sample("lut_wm")? as usize, b.sample("lut_wc")? as usize);
                        assert_eq!(
                            got[[mi, ci]],
                            i64::MIN,
                            "{}: entry ({mi},{ci}) written twice",
                            c.name
                        );
                        got[[mi, ci]] = sign_extend(b.sample("lut_wdata")?, w.lut_bits);
                    }
                    b.tick();
                    guard += 1;
                    assert!(guard < 100_000, "{}: no lut_done", c.name);
                }
                // The cycle model counts from the accepting edge to lut_done.
                assert_eq!(
                    guard + 1,
                    acc.derived().cycles.lut_build,
                    "{}: LUT build cycles against the cycle model",
                    c.name
                );
                assert_eq!(
                    b.sample("lut_shift")? as u32,
                    want.shift,
                    "{}: shift",
                    c.name
                );
                assert_eq!(
                    got,
                    want.values.mapv(i64::from),
                    "{}: LUT ({values:?})",
                    c.name
                );
                b.tick();
            }
        }
    }
    Ok(())
}

#[test]
fn scanner_scores_match_golden_at_one_group_per_cycle() -> Result<()> {
    for (i, acc) in configs(22, 12).iter().enumerate() {
        let w = acc.derived().widths;
        let c = acc.config();
        let layout = acc.derived().layout;
        let lanes = c.scanner.lanes as usize;
        let mut b = bench(acc, "lut_scanner")?;
        let mut rng = ChaCha8Rng::seed_from_u64(i as u64);
        for round in 0..3 {
            let n = if round == 0 {
                c.engine.max_tokens as usize
            } else {
                rng.random_range(0..=c.engine.max_tokens as usize)
            };
            let wl = draw(acc, n, 1, Values::Uniform, (i * 7 + round) as u64);
            let lut = build_lut(&wl.queries[0], &wl.codebook, w.lut_bits);
            let buf = rng.random_range(0..2u64);
            for ((mi, ci), &v) in lut.values.indexed_iter() {
                b.drive("lut_we", 1)?;
                b.drive("lut_wbuf", buf)?;
                b.drive("lut_wm", mi as u64)?;
                b.drive("lut_wc", ci as u64)?;
                b.drive("lut_wdata", (i64::from(v) as u64) & ((1 << w.lut_bits) - 1))?;
                b.tick();
            }
            b.drive("lut_we", 0)?;
            let want = score_codes(&lut, wl.codes.view());
            b.drive("n_tokens", n as u64)?;
            b.drive("start_buf", buf)?;
            b.drive("start", 1)?;
            b.tick();
            b.drive("start", 0)?;
            let mut got = vec![None; n];
            let mut beat = 0;
            let mut active_cycles = Vec::new();
            let mut guard = 0;
            loop {
                let more = beat < layout.beats_for(n);
                b.drive("code_valid", u64::from(more))?;
                if more {
                    b.drive_words(
                        "code_data",
                        &beat_words(&wl.beats, layout.words_per_beat(), beat, layout.beat_bits),
                    )?;
                }
                if more && b.sample("code_ready")? == 1 {
                    beat += 1;
                }
                let valid = b.sample("s_valid")?;
                let scores = b.sample_words("s_score")?;
                let indices = b.sample_words("s_index")?;
                if valid != 0 {
                    active_cycles.push(b.cycle());
                }
                for l in 0..lanes {
                    if (valid >> l) & 1 == 1 {
                        let t = field(&indices, l, w.index_bits) as usize;
                        assert!(
                            t < n && got[t].is_none(),
                            "{}: token {t} scored twice or out of range",
                            c.name
                        );
                        got[t] =
                            Some(sign_extend(field(&scores, l, w.score_bits), w.score_bits) as i32);
                    }
                }
                let last = b.sample("s_last")? == 1;
                b.tick();
                if last {
                    break;
                }
                guard += 1;
                assert!(guard < 100_000, "{}: no s_last", c.name);
            }
            b.drive("code_valid", 0)?;
            let got: Vec<i32> = got
                .into_iter()
                .map(|s| s.expect("every token scored"))
                .collect();
            assert_eq!(got, want, "{}: scores", c.name);
            // Initiation interval 1: with no stalls, one group of lanes per cycle, no bubbles.
            assert_eq!(active_cycles.len(), n.div_ceil(lanes), "{}: groups", c.name);
            if let (Some(first), Some(last)) = (active_cycles.first(), active_cycles.last()) {
                assert_eq!(
                    last - first + 1,
                    active_cycles.len() as u64,
                    "{}: bubbles in the scan",
                    c.name
                );
            }
        }
    }
    Ok(())
}

/// Adversarial score streams: all equal, rising, falling, three values, extremes.
fn streams(n: usize, score_bits: u32, rng: &mut ChaCha8Rng) -> Vec<Vec<i32>> {
    let max = (1i64 << (score_bits - 1)) - 1;
    let min = -max - 1;
    vec![
        vec![0; n],
        (0..n).map(|t| (t as i64 % (max + 1)) as i32).collect(),
        (0..n).map(|t| (max - t as i64).max(min) as i32).collect(),
        (0..n).map(|_| rng.random_range(-1..=1)).collect(),
        (0..n)
            .map(|t| if t % 3 == 0 { max as i32 } else { min as i32 })
            .collect(),
        (0..n).map(|_| rng.random_range(min..=max) as i32).collect(),
    ]
}

#[test]
fn topk_units_match_golden_on_tie_heavy_streams() -> Result<()> {
    let mut seen = [false; 2];
    for (i, acc) in configs(23, 16).iter().enumerate() {
        let c = acc.config();
        let w = acc.derived().widths;
        let lanes = c.scanner.lanes as usize;
        let top = match c.topk.strategy {
            TopKStrategy::Systolic => {
                seen[0] = true;
                "topk_systolic"
            }
            TopKStrategy::Select => {
                seen[1] = true;
                "topk_select"
            }
        };
        let mut b = bench(acc, top)?;
        let mut rng = ChaCha8Rng::seed_from_u64(100 + i as u64);
        let n_max = c.engine.max_tokens as usize;
        for scores in streams(n_max, w.score_bits, &mut rng) {
            for &(n, k) in &[
                (n_max, c.topk.k_max as usize),
                (
                    rng.random_range(1..=n_max),
                    rng.random_range(1..=c.topk.k_max as usize),
                ),
            ] {
                let want = top_k(&scores[..n], k);
                b.drive("clear", 1)?;
                b.tick();
                b.drive("clear", 0)?;
                b.drive("count", want.len() as u64)?;
                let groups = n.div_ceil(lanes);
                for g in 0..groups {
                    let mut valid = 0u64;
                    let (mut sc, mut ix) = (Vec::new(), Vec::new());
                    for l in 0..lanes {
                        let t = g * lanes + l;
                        valid |= u64::from(t < n) << l;
                        sc.push(i64::from(*scores.get(t).unwrap_or(&0)));
                        ix.push(t as i64 % (1 << w.index_bits));
                    }
                    b.drive("in_valid", valid)?;
                    b.drive_words(
                        "in_score",
                        &pack_fields(sc, w.score_bits, lanes as u32 * w.score_bits),
                    )?;
                    b.drive_words(
                        "in_index",
                        &pack_fields(ix, w.index_bits, lanes as u32 * w.index_bits),
                    )?;
                    b.drive("flush", u64::from(g + 1 == groups))?;
                    b.tick();
                }
                b.drive("in_valid", 0)?;
                b.drive("flush", 0)?;
                let mut got = Vec::new();
                let mut guard = 0;
                b.drive("res_ready", 1)?;
                while b.sample("done")? == 0 {
                    if rng.random_bool(0.7) {
                        b.drive("res_ready", 1)?;
                        if b.sample("res_valid")? == 1 {
                            // A beat carries res_n results in its lowest slots.
                            let (ix, sc) =
                                (b.sample_words("res_index")?, b.sample_words("res_score")?);
                            for slot in 0..b.sample("res_n")? as usize {
                                got.push(Hit {
                                    index: field(&ix, slot, w.index_bits) as u32,
                                    score: sign_extend(field(&sc, slot, w.score_bits), w.score_bits)
                                        as i32,
                                });
                            }
                        }
                    } else {
                        b.drive("res_ready", 0)?;
                    }
                    b.tick();
                    guard += 1;
                    assert!(guard < 1_000_000, "{}: no done", c.name);
                }
                assert_eq!(got, want, "{} ({top}, n {n}, k {k})", c.name);
            }
        }
    }
    assert!(seen[0] && seen[1], "both strategies covered");
    Ok(())
}
