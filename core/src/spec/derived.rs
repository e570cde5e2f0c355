//! The derived view of a validated accelerator: every width, the code packing and the cycle
//! model. Emitters, the golden model and the runtime all read these numbers from here.

use serde::{Deserialize, Serialize};

use super::config::{AcceleratorConfig, TopKStrategy};

/// Smallest `c` with `2^c >= n` (0 for n <= 1).
pub fn ceil_log2(n: u64) -> u32 {
    if n <= 1 {
        0
    } else {
        64 - (n - 1).leading_zeros()
    }
}

/// Bit length of `v` (0 for 0), as in docs/design.md section 3.
pub fn bit_length(v: u64) -> u32 {
    64 - v.leading_zeros()
}

/// Bits of an unsigned field that must hold values up to `v` (at least 1).
pub fn unsigned_bits(v: u64) -> u32 {
    bit_length(v).max(1)
}

/// Signed widths of the datapath, in bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Widths {
    /// D / M: dimensions per subspace.
    pub sub_dim: u32,
    /// K = 2^b centroids per subspace.
    pub codebook_size: u32,
    /// M * b: bits of one token's codes.
    pub token_bits: u32,
    /// QB: quantized query element (signed).
    pub query_bits: u32,
    /// CB: quantized centroid element (signed).
    pub centroid_bits: u32,
    /// Exact dot-product accumulator: QB + CB + ceil(log2(D/M)) (signed).
    pub acc_bits: u32,
    /// LB: normalized LUT entry (signed).
    pub lut_bits: u32,
    /// Score: LB + ceil(log2 M) (signed).
    pub score_bits: u32,
    /// Largest normalization shift: max(0, acc_bits - (LB - 1)).
    pub max_shift: u32,
    /// Unsigned width of the shift reported with the results.
    pub shift_bits: u32,
    /// Unsigned width of a token index (0 .. max_tokens - 1).
    pub index_bits: u32,
    /// Unsigned width of a token count (0 ..= max_tokens), e.g. n_tokens.
    pub count_bits: u32,
    /// Unsigned width of k (0 ..= k_max).
    pub k_bits: u32,
    /// Results per beat of the engine's result stream: as many 64-bit result words as a code
    /// beat holds (one per cycle for `systolic`), at most the lane count.
    pub result_lanes: u32,
    /// Scores the top-k unit's passes read per cycle: lanes x `topk.read_beats` for
    /// `select` (the width of its buffer words and its counting logic), lanes for `systolic`.
    pub topk_lanes: u32,
    /// Unsigned width of a codebook (KV head) number, 0 .. engine.heads - 1; at least 1.
    #[serde(default = "one")]
    pub head_bits: u32,
}

/// Serde default of a width that older manifests lack (1 bit).
pub(crate) fn one() -> u32 {
    1
}

impl Widths {
    /// Computes widths from an (unchecked) description; validation bounds the inputs.
    pub fn of(cfg: &AcceleratorConfig) -> Self {
        let q = &cfg.quant;
        let sub_dim = cfg.pq.head_dim / cfg.pq.m.max(1);
        let acc_bits = q.query_bits + q.centroid_bits + ceil_log2(u64::from(sub_dim));
        let max_shift = acc_bits.saturating_sub(q.lut_bits.saturating_sub(1));
        Self {
            sub_dim,
            codebook_size: 1u32 << cfg.pq.code_bits.min(31),
            token_bits: cfg.pq.m * cfg.pq.code_bits,
            query_bits: q.query_bits,
            centroid_bits: q.centroid_bits,
            acc_bits,
            lut_bits: q.lut_bits,
            score_bits: q.lut_bits + ceil_log2(u64::from(cfg.pq.m)),
            max_shift,
            shift_bits: unsigned_bits(u64::from(max_shift)),
            index_bits: unsigned_bits(u64::from(cfg.engine.max_tokens.saturating_sub(1))),
            count_bits: unsigned_bits(u64::from(cfg.engine.max_tokens)),
            k_bits: unsigned_bits(u64::from(cfg.topk.k_max)),
            result_lanes: match cfg.topk.strategy {
                TopKStrategy::Systolic => 1,
                TopKStrategy::Select => {
                    (cfg.engine.beat_bits / 64).clamp(1, cfg.scanner.lanes.max(1))
                }
            },
            topk_lanes: cfg.scanner.lanes
                * match cfg.topk.strategy {
                    TopKStrategy::Systolic => 1,
                    TopKStrategy::Select => cfg.topk.read_beats.unwrap_or(1),
                },
            head_bits: unsigned_bits(u64::from(cfg.engine.heads().saturating_sub(1))).max(1),
        }
    }

    /// Smallest representable value of a signed field of `bits` bits.
    pub fn signed_min(bits: u32) -> i64 {
        -(1i64 << (bits - 1))
    }

    /// Largest representable value of a signed field of `bits` bits.
    pub fn signed_max(bits: u32) -> i64 {
        (1i64 << (bits - 1)) - 1
    }
}

/// How codes are packed into memory beats (docs/design.md section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeLayout {
    /// Subspaces M (codes per token).
    pub m: u32,
    /// Bits per code b.
    pub code_bits: u32,
    /// Beat width W in bits.
    pub beat_bits: u32,
    /// floor(W / (M*b)) tokens per beat.
    pub tokens_per_beat: u32,
    /// Unused high bits of every beat (always zero).
    pub padding_bits: u32,
}

impl CodeLayout {
    /// Layout for M codes of `code_bits` bits in beats of `beat_bits` bits.
    pub fn new(m: u32, code_bits: u32, beat_bits: u32) -> Self {
        let token_bits = m * code_bits;
        let tokens_per_beat = beat_bits.checked_div(token_bits).unwrap_or(0);
        Self {
            m,
            code_bits,
            beat_bits,
            tokens_per_beat,
            padding_bits: beat_bits - tokens_per_beat * token_bits,
        }
    }

    /// Bits of one token's codes.
    pub fn token_bits(&self) -> u32 {
        self.m * self.code_bits
    }

    /// 64-bit words that hold one beat in host memory.
    pub fn words_per_beat(&self) -> usize {
        self.beat_bits.div_ceil(64) as usize
    }

    /// Beats needed for `n` tokens.
    pub fn beats_for(&self, n: usize) -> usize {
        n.div_ceil(self.tokens_per_beat as usize)
    }
}

/// On-chip storage the engine needs, in bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Storage {
    /// Quantized codebooks: heads * M * K * (D/M) * CB.
    pub codebook_bits: u64,
    /// One LUT: M * K * LB (the engine holds two: double buffering).
    pub lut_bits: u64,
    /// Scores held for threshold selection (`select` only): two banks of
    /// ceil(max_tokens / topk_lanes) words of topk_lanes scores.
    pub score_buffer_bits: u64,
    /// Queue registers (`systolic` only): (lanes + 1) * k_max * (score + index bits), one
    /// priority queue per lane and the output queue that puts the winners in index order.
    pub queue_bits: u64,
}

impl Storage {
    fn of(cfg: &AcceleratorConfig, w: &Widths) -> Self {
        let entries = u64::from(cfg.pq.m) * u64::from(w.codebook_size);
        let (score_buffer_bits, queue_bits) = match cfg.topk.strategy {
            TopKStrategy::Select => {
                let lanes = u64::from(w.topk_lanes.max(1));
                let words = u64::from(cfg.engine.max_tokens).div_ceil(lanes);
                (2 * words * lanes * u64::from(w.score_bits), 0)
            }
            TopKStrategy::Systolic => (
                0,
                (u64::from(cfg.scanner.lanes) + 1)
                    * u64::from(cfg.topk.k_max)
                    * u64::from(w.score_bits + w.index_bits),
            ),
        };
        Self {
            codebook_bits: u64::from(cfg.engine.heads())
                * entries
                * u64::from(w.sub_dim)
                * u64::from(w.centroid_bits),
            lut_bits: entries * u64::from(w.lut_bits),
            score_buffer_bits,
            queue_bits,
        }
    }
}

/// Cycles the engine spends per query (docs/design.md section 6), counted from the generated RTL
/// and checked against its Verilator model (`hwgen sim`, the co-simulation benches).
///
/// The LUT of query i+1 is built while query i is scanned (two LUT buffers); the scanner
/// stops at N, not at the end of the last beat; query i+1 may start once query i's scan has
/// ended, and the `select` unit fills one score bank while it selects from the other. The
/// `select` emit pass is an estimate ([`CycleModel::emit_cycles`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleModel {
    /// Parallel lanes of the scanner.
    pub lanes: u32,
    /// Cycles from accepting a query to its LUT being ready.
    pub lut_build: u64,
    /// Cycles from a token group's issue to its scores leaving the scanner.
    pub scan_depth: u64,
    /// Top-k strategy.
    pub strategy: TopKStrategy,
    /// Score bits resolved per selection pass (`select`).
    pub radix_bits: u32,
    /// Digits of the threshold: ceil(score_bits / radix_bits) (`select`).
    pub radix_digits: u32,
    /// Results the top-k unit sends per cycle (`Widths::result_lanes`).
    pub result_lanes: u32,
    /// Scores the top-k unit's passes read per cycle (`Widths::topk_lanes`).
    pub read_lanes: u32,
}

/// Cycles from `start` to the first token group's issue (start register, scanner start,
/// first beat register).
const START_OVERHEAD: u64 = 3;
/// Cycles from the last scores to `done` besides the top-k unit's own work.
const DONE_OVERHEAD: u64 = 1;
/// Cycles from the last scores to the next `start` (ready, then start sampled).
const NEXT_START: u64 = 2;
/// Cycles a kernel lane adds to a query's results: the header write after the results are
/// answered (address, data, response) and the packer's last beat.
const CALL_RESULT_OVERHEAD: u64 = 12;
/// Cycles a kernel call adds around its jobs: ap_start sampled, the first job read's
/// address and data, the last header's response, ap_done.
const CALL_OVERHEAD: u64 = 16;

impl CycleModel {
    fn of(cfg: &AcceleratorConfig, w: &Widths) -> Self {
        let sub = u64::from(w.sub_dim);
        let macs = u64::from(cfg.dist_unit.macs.max(1));
        let groups = (u64::from(cfg.pq.m) * u64::from(w.codebook_size)).div_ceil(macs);
        // Two passes over `groups` MAC groups; a group takes load + SUB MAC cycles + two tail
        // cycles (operand and product registers) + capture. Pass 0 folds each group's max|acc| in at capture; in pass 1 the MACS
        // accumulators drain into the LUT one per cycle while the next group computes.
        let group = sub + 4;
        let period = group.max(macs + 1);
        // Pass 0 ends once the last group's max has climbed the registered max tree:
        // log2(MACS) levels plus the fold.
        let pass0 = groups * group + u64::from(macs.trailing_zeros()) + 1;
        let pass1 = (group + macs) + (groups - 1) * period;
        let radix_bits = cfg.topk.radix_bits.unwrap_or(DEFAULT_RADIX_BITS).max(1);
        Self {
            lanes: cfg.scanner.lanes,
            lut_build: pass0 + pass1 + 3,
            // issue, LUT read, LUT entry register, one register per adder tree level
            scan_depth: 3 + u64::from(ceil_log2(u64::from(cfg.pq.m))),
            strategy: cfg.topk.strategy,
            radix_bits,
            radix_digits: w.score_bits.div_ceil(radix_bits),
            result_lanes: w.result_lanes,
            read_lanes: w.topk_lanes,
        }
    }

    /// Cycles the scanner is busy for `n` tokens: ceil(n / lanes).
    pub fn scan(&self, n: u64) -> u64 {
        n.div_ceil(u64::from(self.lanes))
    }

    /// Cycles from the last scores to `done` for a `k`-query over `n` tokens, with the
    /// result stream always ready.
    pub fn topk_drain(&self, n: u64, k: u64) -> u64 {
        let k = k.min(n);
        // `select` registers flush and count before it decides anything.
        let start = match self.strategy {
            TopKStrategy::Systolic => 1,
            TopKStrategy::Select => 2,
        };
        if k == 0 {
            return start + DONE_OVERHEAD;
        }
        match self.strategy {
            // The queues settle (`start`), the merge tree moves one winner per cycle into
            // the index-ordered output queue (k), which then emits one result per cycle (k).
            TopKStrategy::Systolic => start + 2 * k + DONE_OVERHEAD,
            // Digit 0 is counted while the scores arrive (9 cycles to settle, take the bank
            // and decide);
            // `digits - 1` threshold passes over the n/read_lanes bank words (6 cycles of
            // pipeline and a two-cycle decision each); then the emit pass, whose word reads
            // and result beats overlap ([`Self::emit_cycles`]) plus 7 cycles of pipeline.
            TopKStrategy::Select => {
                let digits = u64::from(self.radix_digits);
                let words = n.div_ceil(u64::from(self.read_lanes));
                start + 9 + (digits - 1) * (words + 8) + self.emit_cycles(n, k) + 6 + DONE_OVERHEAD
            }
        }
    }

    /// Cycles of the `select` emit pass over `n` scores keeping `k`, an estimate: it reads a
    /// bank word per cycle, and its picker sends up to `result_lanes` kept scores of one word
    /// per cycle, so a word with x kept scores takes max(1, ceil(x / result_lanes)) cycles.
    /// With the kept scores spread at random (x binomial over the word's lanes with p = k / n)
    /// that is words x E[max(1, ceil(x / result_lanes))], and never less than k / result_lanes.
    /// The pass is data dependent: it stops reading after the last kept score, and kept
    /// scores bunched in few words (scores rising with the index) cost more.
    pub fn emit_cycles(&self, n: u64, k: u64) -> u64 {
        let lanes = u64::from(self.read_lanes);
        let per_beat = u64::from(self.result_lanes);
        let words = n.div_ceil(lanes);
        let floor = k.div_ceil(per_beat);
        if n == 0 || k == 0 {
            return words.max(floor);
        }
        // Distribution of kept scores in one word, one lane at a time (stable for any p).
        let p = k as f64 / n as f64;
        let mut dist = vec![0.0f64; lanes as usize + 1];
        dist[0] = 1.0;
        for l in 0..lanes as usize {
            for x in (0..=l).rev() {
                let v = dist[x];
                dist[x + 1] += v * p;
                dist[x] = v * (1.0 - p);
            }
        }
        let per_word: f64 = dist
            .iter()
            .enumerate()
            .map(|(x, &pr)| pr * (x as u64).div_ceil(per_beat).max(1) as f64)
            .sum();
        ((words as f64 * per_word).ceil() as u64).max(floor)
    }

    /// Cycles from `start` to `done` for one query whose LUT is already built.
    pub fn query_latency(&self, n: u64, k: u64) -> u64 {
        START_OVERHEAD + self.scan(n) + self.scan_depth + self.topk_drain(n, k)
    }

    /// Steady-state cycles between query starts when queries follow back to back: the
    /// longest of the LUT build, the scan (the next query starts once this scan has ended)
    /// and the top-k unit's work per query. `select` holds two score banks, so its passes and
    /// emit overlap the next scan; `systolic` takes the next query once this one is done.
    pub fn query_interval(&self, n: u64, k: u64) -> u64 {
        let front = START_OVERHEAD + self.scan(n) + self.scan_depth + NEXT_START;
        let back = match self.strategy {
            TopKStrategy::Select => self.topk_drain(n, k),
            TopKStrategy::Systolic => self.query_latency(n, k),
        };
        self.lut_build.max(front).max(back)
    }

    /// Cycles of one Alveo kernel call (ap_start to the last header written) answering
    /// `jobs` queries of `n` tokens and `k` results each on `engines` engines, the
    /// codebooks resident (docs/design.md section 7.1): the front end reads each job's
    /// `job_words` words at one per cycle and hands job j to engine j % engines; an engine
    /// starts a query once its LUT is built and, after its first, one
    /// [`Self::query_interval`] after the previous start; its lane packs the engine's result
    /// beats into master beats as fast as they come, then writes the header. An estimate:
    /// memory latency beyond a few cycles is not counted.
    pub fn call_cycles(&self, n: u64, k: u64, jobs: u64, engines: u64, job_words: u64) -> u64 {
        let step = self.query_interval(n, k);
        let latency = self.query_latency(n, k) + CALL_RESULT_OVERHEAD;
        let mut end = 0;
        for e in 0..engines.min(jobs) {
            let mut start: Option<u64> = None;
            for j in (e..jobs).step_by(engines as usize) {
                let built = (j + 1) * job_words + self.lut_build;
                start = Some(start.map_or(built, |s| built.max(s + step)));
            }
            end = end.max(start.unwrap_or(0) + latency);
        }
        end + CALL_OVERHEAD
    }

    /// Share of lane-cycles of the scan that score a token: n / (lanes * scan cycles).
    pub fn scan_efficiency(&self, n: u64) -> f64 {
        if n == 0 {
            return 0.0;
        }
        n as f64 / (f64::from(self.lanes) * self.scan(n) as f64)
    }

    /// Share of lane-cycles of a whole query interval that score a token.
    pub fn engine_efficiency(&self, n: u64, k: u64) -> f64 {
        if n == 0 {
            return 0.0;
        }
        n as f64 / (f64::from(self.lanes) * self.query_interval(n, k) as f64)
    }

    /// Every count above for one `k`-query over `n` tokens, with the rates they give at
    /// `clock_mhz`: what `hwgen check`, `report` and `explore` print.
    pub fn project(&self, n: u64, k: u64, clock_mhz: f64) -> Projection {
        Projection {
            tokens: n,
            k,
            clock_mhz,
            scan: self.scan(n),
            drain: self.topk_drain(n, k),
            latency: self.query_latency(n, k),
            interval: self.query_interval(n, k),
            scan_efficiency: self.scan_efficiency(n),
            engine_efficiency: self.engine_efficiency(n, k),
        }
    }
}

/// The cycle model of one query at a clock (docs/design.md section 6.1). Throughput counts
/// the interval between back-to-back queries, top-k included: a rate from the scan alone
/// ignores the top-k drain, which for `select` lasts many times the scan.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Projection {
    /// Tokens N the engine scans.
    pub tokens: u64,
    /// Results asked for.
    pub k: u64,
    /// Core clock, MHz.
    pub clock_mhz: f64,
    /// Scan cycles: ceil(N / lanes).
    pub scan: u64,
    /// Cycles from the last scores to `done`.
    pub drain: u64,
    /// Cycles from `start` to `done`, LUT built.
    pub latency: u64,
    /// Cycles between back-to-back queries ([`CycleModel::query_interval`]).
    pub interval: u64,
    /// N / (lanes x scan cycles).
    pub scan_efficiency: f64,
    /// N / (lanes x interval).
    pub engine_efficiency: f64,
}

impl Projection {
    /// Tokens per second with queries back to back: N x clock / interval, which is
    /// lanes x clock x engine efficiency.
    pub fn tokens_per_s(&self) -> f64 {
        self.per_second(self.tokens, self.interval)
    }

    /// Tokens per second of the scan alone: N x clock / scan cycles, which is
    /// lanes x clock x scan efficiency; the engine never reaches it (LUT build, top-k).
    pub fn scan_tokens_per_s(&self) -> f64 {
        self.per_second(self.tokens, self.scan)
    }

    /// Latency of one query in microseconds (0 without a clock).
    pub fn latency_us(&self) -> f64 {
        self.microseconds(self.latency)
    }

    /// Interval between back-to-back queries in microseconds (0 without a clock).
    pub fn interval_us(&self) -> f64 {
        self.microseconds(self.interval)
    }

    // Zero rather than NaN or infinity for an empty projection (a skipped design point).
    fn per_second(&self, tokens: u64, cycles: u64) -> f64 {
        if cycles == 0 {
            return 0.0;
        }
        tokens as f64 * self.clock_mhz * 1e6 / cycles as f64
    }

    fn microseconds(&self, cycles: u64) -> f64 {
        if self.clock_mhz > 0.0 {
            cycles as f64 / self.clock_mhz
        } else {
            0.0
        }
    }
}

/// Radix width of the `select` strategy when the description gives none.
pub const DEFAULT_RADIX_BITS: u32 = 4;

/// Everything derived from a validated description.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Derived {
    /// Datapath widths.
    pub widths: Widths,
    /// Code packing.
    pub layout: CodeLayout,
    /// On-chip storage.
    pub storage: Storage,
    /// Cycle model.
    pub cycles: CycleModel,
}

impl Derived {
    /// Computes the derived view (call on validated descriptions only).
    pub(crate) fn of(cfg: &AcceleratorConfig) -> Self {
        let widths = Widths::of(cfg);
        Self {
            widths,
            layout: CodeLayout::new(cfg.pq.m, cfg.pq.code_bits, cfg.engine.beat_bits),
            storage: Storage::of(cfg, &widths),
            cycles: CycleModel::of(cfg, &widths),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_and_length_helpers() {
        assert_eq!(ceil_log2(0), 0);
        assert_eq!(ceil_log2(1), 0);
        assert_eq!(ceil_log2(2), 1);
        assert_eq!(ceil_log2(3), 2);
        assert_eq!(ceil_log2(64), 6);
        assert_eq!(ceil_log2(65), 7);
        assert_eq!(bit_length(0), 0);
        assert_eq!(bit_length(1), 1);
        assert_eq!(bit_length(127), 7);
        assert_eq!(bit_length(128), 8);
        assert_eq!(unsigned_bits(0), 1);
    }

    #[test]
    fn layout_of_pqcache_shape() {
        let l = CodeLayout::new(2, 6, 512);
        assert_eq!(l.tokens_per_beat, 42);
        assert_eq!(l.padding_bits, 512 - 42 * 12);
        assert_eq!(l.words_per_beat(), 8);
        assert_eq!(l.beats_for(43), 2);
    }

    #[test]
    fn projection_counts_the_top_k() {
        use crate::spec::{AcceleratorBuilder, EngineConfig, PqConfig, ScannerConfig, TopKConfig};
        let acc = AcceleratorBuilder::new("p", PqConfig::new(128, 2, 6))
            .scanner(ScannerConfig::new(42))
            .topk(TopKConfig::select(8192))
            .engine(EngineConfig::new(131072))
            .build()
            .unwrap();
        let c = &acc.derived().cycles;
        let p = c.project(131072, 6554, 250.0);
        assert_eq!(p.interval, c.query_interval(131072, 6554));
        // The `select` unit's threshold passes and emit pass take several scans (issue 13).
        assert!(p.interval > 4 * p.scan, "{p:?}");
        let rate = 131072.0 * 250e6 / p.interval as f64;
        assert!((p.tokens_per_s() - rate).abs() < 1e-6 * rate, "{p:?}");
        let lanes_rate = 42.0 * 250e6;
        assert!((p.tokens_per_s() - lanes_rate * p.engine_efficiency).abs() < 1e-6 * rate);
        assert!((p.scan_tokens_per_s() - lanes_rate * p.scan_efficiency).abs() < 1.0);
        assert!(p.tokens_per_s() < 0.25 * lanes_rate, "{p:?}");
        assert!((p.latency_us() - p.latency as f64 / 250.0).abs() < 1e-9);
    }
}
