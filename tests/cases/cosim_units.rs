//! Unit-level co-simulation: each generated module alone, driven port by port, against the
//! golden model: the distance unit's LUT, the scanner's scores (and its initiation interval),
//! and both top-k units on adversarial score streams full of ties.

use hwgen::emit::Design;
use kvpq_core::golden::lut::build_lut;
use kvpq_core::golden::scan::score_codes;
use kvpq_core::golden::topk::{top_k, Hit};
use kvpq_core::interface::bits::{beat_words, pack_fields, sign_extend};
use kvpq_core::spec::{Accelerator, TopKStrategy};
use kvpq_tests::random::small_accelerators;
use kvpq_tests::workload::{draw, Values};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sim::{build_model, default_cache, Model};

/// A model of one module with its ports addressed by name.
struct Bench {
    model: Model,
    cycle: u64,
}

impl Bench {
    fn new(acc: &Accelerator, top: &str) -> Self {
        let design = Design::render(acc).unwrap();
        let built = build_model(&design, top, &default_cache()).unwrap();
        let mut b = Self {
            model: Model::load(&built).unwrap(),
            cycle: 0,
        };
        for p in b.model.ports().to_vec() {
            if p.input {
                b.set_words(&p.name, &vec![0; p.words()]);
            }
        }
        b.set("rst", 1);
        b.tick();
        b.tick();
        b.set("rst", 0);
        b
    }
    fn set(&mut self, name: &str, v: u64) {
        let id = self.model.port(name).unwrap();
        self.model.set_u64(id, v);
    }
    fn set_words(&mut self, name: &str, w: &[u32]) {
        let id = self.model.port(name).unwrap();
        self.model.set(id, w);
    }
    fn get(&mut self, name: &str) -> u64 {
        self.model.eval();
        let id = self.model.port(name).unwrap();
        self.model.get_u64(id)
    }
    fn get_words(&mut self, name: &str) -> Vec<u32> {
        self.model.eval();
        let id = self.model.port(name).unwrap();
        let mut w = vec![0; self.model.ports()[id].words()];
        self.model.get(id, &mut w);
        w
    }
    fn tick(&mut self) {
        self.model.eval();
        self.model.tick();
        self.cycle += 1;
    }
}

/// Field `i` of `bits` bits from port words.
fn field(words: &[u32], i: usize, bits: u32) -> u64 {
    let mut v = 0u64;
    for b in 0..bits as usize {
        let pos = i * bits as usize + b;
        v |= u64::from((words[pos / 32] >> (pos % 32)) & 1) << b;
    }
    v
}

fn configs(seed: u64, n: usize) -> Vec<Accelerator> {
    small_accelerators(seed, n)
}

#[test]
fn dist_unit_lut_matches_golden() {
    for (i, acc) in configs(21, 12).iter().enumerate() {
        let w = acc.derived().widths;
        let c = acc.config();
        let mut b = Bench::new(acc, "pq_dist_unit");
        for (round, values) in [Values::Uniform, Values::Ties].into_iter().enumerate() {
            let wl = draw(acc, 4, 3, values, (i * 10 + round) as u64);
            // Codebook: one centroid per transfer.
            let (m, k, sub) = wl.codebook.values.dim();
            for e in 0..m * k {
                let words = pack_fields(
                    (0..sub).map(|j| i64::from(wl.codebook.values[[e / k, e % k, j]])),
                    w.centroid_bits,
                    sub as u32 * w.centroid_bits,
                );
                b.set_words("cb_data", &words);
                b.set("cb_valid", 1);
                while b.get("cb_ready") == 0 {
                    b.tick();
                }
                b.tick();
            }
            b.set("cb_valid", 0);
            let mut queries = wl.queries.clone();
            queries.push(vec![0; c.pq.head_dim as usize]); // all-zero query: shift 0
            for q in &queries {
                let want = build_lut(q, &wl.codebook, w.lut_bits);
                b.set_words(
                    "q_data",
                    &pack_fields(
                        q.iter().map(|&v| i64::from(v)),
                        w.query_bits,
                        c.pq.head_dim * w.query_bits,
                    ),
                );
                b.set("lut_free", 1);
                b.set("q_valid", 1);
                while b.get("q_ready") == 0 {
                    b.tick();
                }
                b.tick();
                b.set("q_valid", 0);
                let mut got = Array2::<i64>::from_elem((m, k), i64::MIN);
                let mut guard = 0;
                while b.get("lut_done") == 0 {
                    if b.get("lut_we") == 1 {
                        let (mi, ci) = (b.get("lut_wm") as usize, b.get("lut_wc") as usize);
                        assert_eq!(
                            got[[mi, ci]],
                            i64::MIN,
                            "{}: entry ({mi},{ci}) written twice",
                            c.name
                        );
                        got[[mi, ci]] = sign_extend(b.get("lut_wdata"), w.lut_bits);
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
                assert_eq!(b.get("lut_shift") as u32, want.shift, "{}: shift", c.name);
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
}

#[test]
fn scanner_scores_match_golden_at_one_group_per_cycle() {
    for (i, acc) in configs(22, 12).iter().enumerate() {
        let w = acc.derived().widths;
        let c = acc.config();
        let layout = acc.derived().layout;
        let lanes = c.scanner.lanes as usize;
        let mut b = Bench::new(acc, "lut_scanner");
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
                b.set("lut_we", 1);
                b.set("lut_wbuf", buf);
                b.set("lut_wm", mi as u64);
                b.set("lut_wc", ci as u64);
                b.set("lut_wdata", (i64::from(v) as u64) & ((1 << w.lut_bits) - 1));
                b.tick();
            }
            b.set("lut_we", 0);
            let want = score_codes(&lut, wl.codes.view());
            b.set("n_tokens", n as u64);
            b.set("start_buf", buf);
            b.set("start", 1);
            b.tick();
            b.set("start", 0);
            let mut got = vec![None; n];
            let mut beat = 0;
            let mut active_cycles = Vec::new();
            let mut guard = 0;
            loop {
                let more = beat < layout.beats_for(n);
                b.set("code_valid", u64::from(more));
                if more {
                    b.set_words(
                        "code_data",
                        &beat_words(&wl.beats, layout.words_per_beat(), beat, layout.beat_bits),
                    );
                }
                if more && b.get("code_ready") == 1 {
                    beat += 1;
                }
                let valid = b.get("s_valid");
                let scores = b.get_words("s_score");
                let indices = b.get_words("s_index");
                if valid != 0 {
                    active_cycles.push(b.cycle);
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
                let last = b.get("s_last") == 1;
                b.tick();
                if last {
                    break;
                }
                guard += 1;
                assert!(guard < 100_000, "{}: no s_last", c.name);
            }
            b.set("code_valid", 0);
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
fn topk_units_match_golden_on_tie_heavy_streams() {
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
        let mut b = Bench::new(acc, top);
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
                b.set("clear", 1);
                b.tick();
                b.set("clear", 0);
                b.set("count", want.len() as u64);
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
                    b.set("in_valid", valid);
                    b.set_words(
                        "in_score",
                        &pack_fields(sc, w.score_bits, lanes as u32 * w.score_bits),
                    );
                    b.set_words(
                        "in_index",
                        &pack_fields(ix, w.index_bits, lanes as u32 * w.index_bits),
                    );
                    b.set("flush", u64::from(g + 1 == groups));
                    b.tick();
                }
                b.set("in_valid", 0);
                b.set("flush", 0);
                let mut got = Vec::new();
                let mut guard = 0;
                b.set("res_ready", 1);
                while b.get("done") == 0 {
                    if rng.random_bool(0.7) {
                        b.set("res_ready", 1);
                        if b.get("res_valid") == 1 {
                            got.push(Hit {
                                index: b.get("res_index") as u32,
                                score: sign_extend(b.get("res_score"), w.score_bits) as i32,
                            });
                        }
                    } else {
                        b.set("res_ready", 0);
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
}
