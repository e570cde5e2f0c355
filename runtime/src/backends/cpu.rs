//! The CPU device: the integer path on the host, bit-exact with the golden model, and the
//! fallback where no FPGA is present.
//!
//! Two paths, chosen by the width of a token's code field (M*b bits):
//!
//! - Joint path (M*b <= [`JOINT_TABLE_BITS`], the PQCache shape M = 2, b = 6): a token's
//!   score depends only on its whole code field x, so the search never scores tokens. One
//!   pass counts the tokens of each x (a 4,096-bin histogram in L1); the k-th score T and
//!   how many tokens equal to it are taken come from the codes alone (a radix select
//!   weighted by the counts); a second pass in index order collects the tokens whose code
//!   scores at or above T, and a last one over those writes every token above T and the
//!   first of those at T (the tie rule) into the output. The output is then in ascending
//!   token index without a sort.
//! - General path: the M codes are scored a group at a time (several codes of b <= 4 bits
//!   share one table of their summed entries, so M = 32, b = 4 is 16 lookups; on x86-64
//!   with AVX2, 4-bit codes are looked up 32 tokens at a time by byte shuffles instead,
//!   [`nibbles`]), the score's
//!   high-digit histogram is filled in the same pass, a radix select finds the k-th score,
//!   and one pass in index order over the tokens that can reach it keeps the same hits, in
//!   ascending token index.
//!
//! Token fields are read by an unrolled reader for the common 512-bit beats (constant
//! shifts, no generic bit reader in the loop). Heads of a layer call run in parallel
//! (rayon).

use rayon::prelude::*;

use kvpq_core::golden::fixed::{lut_shift, shift_right_floor};
use kvpq_core::golden::packing::get_bits;
use kvpq_core::golden::topk::{top_k, Hit};
use kvpq_core::golden::{QuantCodebook, QueryResult};
use kvpq_core::spec::{Accelerator, CodeLayout};

use std::sync::Arc;

use crate::checks::Slots;
use crate::{Device, HeadQuery, RuntimeError};

#[cfg(target_arch = "x86_64")]
mod nibbles;

/// Widest token code field scored through a joint table (2^12 codes: the count, bucket and
/// score tables of the joint path stay in L1).
pub const JOINT_TABLE_BITS: u32 = 12;

/// Entries of the joint tables.
const JOINT: usize = 1 << JOINT_TABLE_BITS;

/// The CPU device of one accelerator description.
#[derive(Debug, Clone)]
pub struct CpuDevice {
    acc: Accelerator,
    slots: Slots,
    /// Its own threads, or `None` for the rayon pool of the calling thread.
    pool: Option<Arc<rayon::ThreadPool>>,
}

impl CpuDevice {
    /// A device for `acc` with no codebooks loaded; the heads of a call run on the rayon
    /// pool of the calling thread (the global pool unless the caller installed another).
    pub fn new(acc: Accelerator) -> Self {
        Self {
            acc,
            slots: Slots::default(),
            pool: None,
        }
    }

    /// A device that runs the heads of a call on `threads` threads of its own, so that an
    /// inference process bounds the cores retrieval takes.
    pub fn with_threads(acc: Accelerator, threads: usize) -> Result<Self, RuntimeError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("kvpq-cpu-{i}"))
            .build()
            .map_err(|e| RuntimeError::Unavailable {
                backend: "cpu",
                reason: format!("cannot start {threads} threads: {e}"),
            })?;
        Ok(Self {
            pool: Some(Arc::new(pool)),
            ..Self::new(acc)
        })
    }

    /// The description it serves.
    pub fn accelerator(&self) -> &Accelerator {
        &self.acc
    }
}

impl Device for CpuDevice {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn load_codebook(&mut self, slot: usize, codebook: QuantCodebook) -> Result<(), RuntimeError> {
        self.slots.load(&self.acc, slot, codebook)
    }

    fn search(&mut self, queries: &[HeadQuery<'_>]) -> Result<Vec<QueryResult>, RuntimeError> {
        let checked = self.slots.check(&self.acc, queries)?;
        let layout = self.acc.derived().layout;
        let widths = self.acc.derived().widths;
        let digits = Digits::new(widths.score_bits);
        let one = |(q, codebook): (&HeadQuery, &QuantCodebook)| {
            let (table, shift) = lut(q.query, codebook, widths.lut_bits, widths.acc_bits);
            QueryResult {
                hits: search_one(&table, &layout, q.beats, q.n_tokens, q.k, &digits),
                shift,
            }
        };
        // One search, or one thread to run on: the calling thread does the work itself
        // (handing it to a pool thread and waking up again would cost more than a short
        // search), still on one core.
        if queries.len() == 1
            || self
                .pool
                .as_ref()
                .is_some_and(|p| p.current_num_threads() == 1)
        {
            return Ok(queries.iter().zip(checked).map(one).collect());
        }
        let work = || queries.par_iter().zip(checked).map(one).collect();
        Ok(match &self.pool {
            Some(pool) => pool.install(work),
            None => work(),
        })
    }
}

/// The golden model's normalized LUT (`kvpq_core::golden::lut::build_lut`), entries in
/// (m, c) order, and its shift: the same exact integer dot products over plain slices, in
/// i32 when `acc_bits` (the accumulator width) allows it, then the golden normalization.
fn lut(q: &[i32], codebook: &QuantCodebook, lut_bits: u32, acc_bits: u32) -> (Vec<i32>, u32) {
    let (m, k, sub) = codebook.values.dim();
    let values = codebook.values.as_standard_layout();
    let values = values.as_slice().unwrap_or(&[]);
    let acc: Vec<i64> = values
        .chunks_exact(sub)
        .take(m * k)
        .enumerate()
        .map(|(row, cent)| {
            let q = &q[(row / k) * sub..][..sub];
            if acc_bits <= 31 {
                // Every partial sum fits the accumulator width, so i32 is exact.
                i64::from(q.iter().zip(cent).map(|(&a, &b)| a * b).sum::<i32>())
            } else {
                q.iter()
                    .zip(cent)
                    .map(|(&a, &b)| i64::from(a) * i64::from(b))
                    .sum()
            }
        })
        .collect();
    let shift = lut_shift(
        acc.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0),
        lut_bits,
    );
    let table = acc
        .iter()
        .map(|&v| shift_right_floor(v, shift) as i32)
        .collect();
    (table, shift)
}

/// Runs `$body` with `$rd` bound to the fastest [`Fields`] reader for `$layout`: an unrolled
/// one for 512-bit beats of 8-, 10- or 12-bit tokens, else the generic bit reader.
macro_rules! with_reader {
    ($layout:expr, |$rd:ident| $body:expr) => {{
        let layout: &CodeLayout = $layout;
        match (layout.token_bits(), layout.beat_bits) {
            (12, 512) => {
                let $rd = Fixed::<12, 8>;
                $body
            }
            (10, 512) => {
                let $rd = Fixed::<10, 8>;
                $body
            }
            (8, 512) => {
                let $rd = Fixed::<8, 8>;
                $body
            }
            _ => {
                let $rd = Generic::new(layout);
                $body
            }
        }
    }};
}

/// The top-k of one checked search, in ascending token index.
fn search_one(
    tables: &[i32],
    layout: &CodeLayout,
    beats: &[u64],
    n: usize,
    k: usize,
    digits: &Digits,
) -> Vec<Hit> {
    let k = k.min(n);
    if k == 0 {
        return Vec::new();
    }
    if layout.token_bits() <= JOINT_TABLE_BITS {
        let joint = joint_table(tables, layout.m as usize, layout.code_bits as usize);
        with_reader!(layout, |rd| joint_top_k(rd, &joint, beats, n, k, digits))
    } else {
        general_top_k(tables, layout, beats, n, k, digits)
    }
}

/// joint[x] = sum over m of LUT[m][code m of x], built one subspace at a time (each step
/// extends the table of the first codes by the next code's entries).
fn joint_table(lut: &[i32], m: usize, b: usize) -> Box<[i32; JOINT]> {
    let mut joint = Box::new([0i32; JOINT]);
    let mut filled = 1;
    for row in lut.chunks_exact(1 << b).take(m) {
        for (c, &v) in row.iter().enumerate().rev() {
            for x in 0..filled {
                joint[c * filled + x] = joint[x] + v;
            }
        }
        filled <<= b;
    }
    joint
}

/// Reads the code fields of the tokens of one beat.
trait Fields: Copy {
    /// Tokens per beat.
    fn tokens_per_beat(&self) -> usize;
    /// 64-bit words per beat.
    fn words_per_beat(&self) -> usize;
    /// Calls `f(i, field)` for tokens `0..take` of `beat`, in order.
    fn each(&self, beat: &[u64], take: usize, f: impl FnMut(usize, usize));
    /// The field of token `i` of `beat`.
    fn get(&self, beat: &[u64], i: usize) -> usize;
    /// Writes at `out[len..]` `(first + i, field)` for the tokens `i` in `0..take` of
    /// `beat` whose field has `selected[field] != 0`, in order; returns the new length.
    /// `out` has room for a whole beat past `len`, and more slots may be overwritten than
    /// are kept.
    fn compact(
        &self,
        beat: &[u64],
        take: usize,
        first: u32,
        selected: &[u8; JOINT],
        out: &mut [(u32, u16)],
        mut len: usize,
    ) -> usize {
        self.each(beat, take, |i, x| {
            if selected[x & (JOINT - 1)] != 0 {
                out[len] = (first + i as u32, x as u16);
                len += 1;
            }
        });
        len
    }
}

/// Tokens of `BITS` bits in beats of `WORDS` whole words: the field positions are constants
/// of an unrolled loop. At most 64 tokens per beat (one selection mask).
#[derive(Debug, Clone, Copy)]
struct Fixed<const BITS: usize, const WORDS: usize>;

impl<const BITS: usize, const WORDS: usize> Fixed<BITS, WORDS> {
    const TPB: usize = WORDS * 64 / BITS;
    const MASK: u64 = (1 << BITS) - 1;

    /// Field `I` of a full beat, with the word and shift constants.
    #[inline(always)]
    fn field<const I: usize>(beat: &[u64; WORDS]) -> usize {
        let (w, off) = (I * BITS / 64, I * BITS % 64);
        let mut v = beat[w] >> off;
        if off + BITS > 64 {
            // The field ends inside the beat, so word w + 1 exists.
            v |= beat[w + 1] << (64 - off);
        }
        (v & Self::MASK) as usize
    }

    /// Every field of a full beat, unrolled by hand (the compiler keeps a 42-step loop
    /// rolled, with shifts by a register).
    #[inline(always)]
    fn full(beat: &[u64; WORDS], mut f: impl FnMut(usize, usize)) {
        const { assert!(Self::TPB <= 64, "one selection mask per beat") };
        macro_rules! steps {
            ($($i:literal)*) => {$(
                if $i < Self::TPB {
                    f($i, Self::field::<$i>(beat));
                }
            )*};
        }
        steps!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29
            30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57
            58 59 60 61 62 63);
    }
}

impl<const BITS: usize, const WORDS: usize> Fields for Fixed<BITS, WORDS> {
    fn tokens_per_beat(&self) -> usize {
        Self::TPB
    }

    fn words_per_beat(&self) -> usize {
        WORDS
    }

    #[inline(always)]
    fn each(&self, beat: &[u64], take: usize, mut f: impl FnMut(usize, usize)) {
        match <&[u64; WORDS]>::try_from(beat) {
            Ok(full) if take == Self::TPB => Self::full(full, f),
            _ => (0..take).for_each(|i| f(i, self.get(beat, i))),
        }
    }

    /// Without a branch on whether the field crosses a word (random for scattered
    /// tokens): the next word is always read, or the same word again at the end of the
    /// beat, where the field ends inside its word and the extra bits fall above the mask.
    #[inline(always)]
    fn get(&self, beat: &[u64], i: usize) -> usize {
        let (w, off) = (i * BITS / 64, i * BITS % 64);
        let high = beat[(w + 1).min(WORDS - 1)] << 1 << (63 - off);
        (((beat[w] >> off) | high) & Self::MASK) as usize
    }

    #[inline(always)]
    fn compact(
        &self,
        beat: &[u64],
        take: usize,
        first: u32,
        selected: &[u8; JOINT],
        out: &mut [(u32, u16)],
        mut len: usize,
    ) -> usize {
        // One bit per token (four partial masks: no chain of 42 dependent ORs), then the
        // set bits: the first four written whether or not they exist, since a beat holds
        // about two selected tokens and a loop would mispredict its exit every beat. The
        // fields are kept on the way (cheaper than reading the selected ones again).
        let mut masks = [0u64; 4];
        let mut fields = [0u16; 64];
        self.each(beat, take, |i, x| {
            fields[i % 64] = x as u16;
            masks[i % 4] |= u64::from(selected[x & (JOINT - 1)]) << (i % 64);
        });
        let mut mask = (masks[0] | masks[1]) | (masks[2] | masks[3]);
        let emit = |mask: u64| {
            let i = mask.trailing_zeros();
            (first + i, fields[i as usize % 64])
        };
        for _ in 0..4 {
            out[len] = emit(mask);
            len += usize::from(mask != 0);
            mask &= mask.wrapping_sub(1);
        }
        while mask != 0 {
            out[len] = emit(mask);
            len += 1;
            mask &= mask - 1;
        }
        len
    }
}

/// Any layout: fields through the golden model's bit reader.
#[derive(Debug, Clone, Copy)]
struct Generic {
    bits: usize,
    tpb: usize,
    wpb: usize,
}

impl Generic {
    fn new(layout: &CodeLayout) -> Self {
        Self {
            bits: layout.token_bits() as usize,
            tpb: layout.tokens_per_beat as usize,
            wpb: layout.words_per_beat(),
        }
    }
}

impl Fields for Generic {
    fn tokens_per_beat(&self) -> usize {
        self.tpb
    }

    fn words_per_beat(&self) -> usize {
        self.wpb
    }

    #[inline(always)]
    fn each(&self, beat: &[u64], take: usize, mut f: impl FnMut(usize, usize)) {
        (0..take).for_each(|i| f(i, self.get(beat, i)));
    }

    #[inline(always)]
    fn get(&self, beat: &[u64], i: usize) -> usize {
        get_bits(beat, i * self.bits, self.bits as u32) as usize
    }
}

/// The beats holding the first `n` tokens (the caller checked that `beats` holds them),
/// every `step`-th one, as (first token index, beat, tokens of the beat to read).
fn beats_of(
    rd: impl Fields,
    beats: &[u64],
    n: usize,
    step: usize,
) -> impl Iterator<Item = (usize, &[u64], usize)> {
    let tpb = rd.tokens_per_beat();
    beats
        .chunks_exact(rd.words_per_beat())
        .take(n.div_ceil(tpb))
        .enumerate()
        .step_by(step)
        .map(move |(b, beat)| (b * tpb, beat, tpb.min(n - b * tpb)))
}

/// Tokens per code of the beats of `beats_of(rd, beats, n, step)`, and their total.
fn count_codes(rd: impl Fields, beats: &[u64], n: usize, step: usize) -> ([u32; JOINT], usize) {
    // Four 16-bit histograms taken in turn (L1 holds them): a run of equal codes then
    // increments four counters, not one, so it does not wait on its own stores. Each
    // takes at most a quarter of a beat (rounded up) per beat, and is flushed into the
    // totals before it can overflow.
    let (mut totals, mut total) = ([0u32; JOINT], 0);
    let mut parts = [[0u16; JOINT]; 4];
    let block = usize::from(u16::MAX) / rd.tokens_per_beat().div_ceil(4);
    let mut flush = |parts: &mut [[u16; JOINT]; 4]| {
        for (x, t) in totals.iter_mut().enumerate() {
            *t += parts.iter().map(|p| u32::from(p[x])).sum::<u32>();
        }
        *parts = [[0; JOINT]; 4];
    };
    for (b, (_, beat, take)) in beats_of(rd, beats, n, step).enumerate() {
        rd.each(beat, take, |i, x| parts[i % 4][x & (JOINT - 1)] += 1);
        total += take;
        if (b + 1) % block == 0 {
            flush(&mut parts);
        }
    }
    flush(&mut parts);
    (totals, total)
}

/// Tokens in both halves of the joint path: below this many, or with k above 1/8 of the
/// tokens, the search counts every token (a sample would save little).
const SAMPLED_MIN_TOKENS: usize = 16384;

/// The sample takes every `SAMPLE_STEP`-th beat.
const SAMPLE_STEP: usize = 8;

/// The joint path (module doc): the top `k` (1 <= k <= n) of the first `n` tokens.
///
/// For long contexts and small k a sample of the beats first gives a score that at least k
/// tokens reach, with a wide margin; the one pass over the tokens then keeps only those at
/// or above it, and the exact top-k is found among them. If the sample was wrong (fewer
/// than k tokens kept), or for short contexts, the exact counts of every code come first.
fn joint_top_k(
    rd: impl Fields,
    joint: &[i32; JOINT],
    beats: &[u64],
    n: usize,
    k: usize,
    digits: &Digits,
) -> Vec<Hit> {
    if n >= SAMPLED_MIN_TOKENS && k <= n / 8 {
        let (counts, sampled) = count_codes(rd, beats, n, SAMPLE_STEP);
        // The sample's expected count at or above the true threshold, raised by ten
        // percent and four standard deviations.
        let mean = (k * sampled) as f64 / n as f64;
        let want = ((mean * 1.1 + 4.0 * mean.sqrt()) as usize + 8).min(sampled);
        let guess = weighted_threshold(joint, &counts, want, digits);
        let kept = compact(rd, beats, n, &at_or_above(joint, guess.key, digits), n / 8);
        if kept.len() >= k {
            // Every token at or above the guess is kept, and at least k are: the top k
            // are among them.
            let mut counts = [0u32; JOINT];
            for &(_, x) in &kept {
                counts[usize::from(x) & (JOINT - 1)] += 1;
            }
            let threshold = weighted_threshold(joint, &counts, k, digits);
            return take(joint, &kept, k, threshold, digits);
        }
    }
    let (counts, _) = count_codes(rd, beats, n, 1);
    let threshold = weighted_threshold(joint, &counts, k, digits);
    let selected = at_or_above(joint, threshold.key, digits);
    let expected = (0..JOINT)
        .filter(|&x| selected[x] != 0)
        .map(|x| counts[x] as usize)
        .sum();
    let kept = compact(rd, beats, n, &selected, expected);
    take(joint, &kept, k, threshold, digits)
}

/// 1 for the codes whose score's key is at or above `floor`, 0 for the others.
fn at_or_above(joint: &[i32; JOINT], floor: u32, digits: &Digits) -> [u8; JOINT] {
    let mut selected = [0u8; JOINT];
    for (s, &score) in selected.iter_mut().zip(joint.iter()) {
        *s = u8::from(digits.key(score) >= floor);
    }
    selected
}

/// The top `k` in ascending token index, from `kept`: (index, code) in index order of
/// every token at or above the k-th score `threshold` (tokens below it may be among them),
/// which holds at least k tokens. Every token above the threshold is taken, and the first
/// `threshold.take_equal` at it (the tie rule).
fn take(
    joint: &[i32; JOINT],
    kept: &[(u32, u16)],
    k: usize,
    threshold: Threshold,
    digits: &Digits,
) -> Vec<Hit> {
    // Per code: 2 above the threshold, 1 at it, 0 below.
    let mut class = [0u8; JOINT];
    for (c, &score) in class.iter_mut().zip(joint.iter()) {
        let key = digits.key(score);
        *c = u8::from(key >= threshold.key) + u8::from(key > threshold.key);
    }
    // Without a branch: every token is written at the next position, which only a taken
    // one advances; exactly k are taken, so the last write goes to the slot past the k hits.
    let mut hits = vec![Hit { index: 0, score: 0 }; k + 1];
    let (mut len, mut ties) = (0, threshold.take_equal);
    for &(index, x) in kept {
        let x = usize::from(x) & (JOINT - 1);
        let c = class[x];
        let tie = (c == 1) & (ties != 0);
        hits[len.min(k)] = Hit {
            index,
            score: joint[x],
        };
        len += usize::from((c == 2) | tie);
        ties -= usize::from(tie);
    }
    debug_assert_eq!(len, k, "the threshold takes exactly k tokens");
    hits.truncate(k);
    hits
}

/// The k-th largest score (as a key) of the tokens counted per code in `counts`
/// (1 <= k <= their total).
fn weighted_threshold(
    joint: &[i32; JOINT],
    counts: &[u32; JOINT],
    k: usize,
    digits: &Digits,
) -> Threshold {
    // No test of the counts: a branch per code would mispredict on random ones, and a
    // count of zero adds nothing. The high digit's test is rarely true: predicted.
    let mut high = vec![0u32; digits.high_bins()];
    for (&score, &count) in joint.iter().zip(counts) {
        high[digits.high(digits.key(score))] += count;
    }
    digits.threshold(&high, k, |bin, low| {
        for (&score, &count) in joint.iter().zip(counts) {
            let key = digits.key(score);
            if digits.high(key) == bin {
                low[digits.low(key)] += count;
            }
        }
    })
}

/// (index, code), in index order, of the first `n` tokens whose code is selected
/// (`capacity`: the expected count).
fn compact(
    rd: impl Fields,
    beats: &[u64],
    n: usize,
    selected: &[u8; JOINT],
    capacity: usize,
) -> Vec<(u32, u16)> {
    let room = rd.tokens_per_beat().max(64);
    let mut out = vec![(0, 0); capacity + room];
    let mut len = 0;
    for (first, beat, take) in beats_of(rd, beats, n, 1) {
        if out.len() < len + room {
            out.resize(2 * out.len(), (0, 0));
        }
        len = rd.compact(beat, take, first as u32, selected, &mut out, len);
    }
    out.truncate(len);
    out
}

/// Codes of `b` bits summed per lookup in the general path: as many as fit a byte (tables
/// of 256 entries at most).
fn codes_per_group(b: u32) -> usize {
    (8 / b.max(1)).max(1) as usize
}

/// The general path (module doc): the top `k` (1 <= k <= n) of the first `n` tokens.
fn general_top_k(
    lut: &[i32],
    layout: &CodeLayout,
    beats: &[u64],
    n: usize,
    k: usize,
    digits: &Digits,
) -> Vec<Hit> {
    // The scores and the histogram of their high digit, in a buffer each thread keeps
    // (a fresh one per search would be mapped and faulted in page by page).
    SCORES.with_borrow_mut(|scores| {
        scores.clear();
        scores.resize(n, 0);
        // The histogram only where a select needs it: the sampled one does not.
        let bins = || vec![0u32; digits.high_bins()];
        #[cfg(target_arch = "x86_64")]
        if nibbles::score(lut, layout, beats, scores) {
            return select_sampled(scores, k).unwrap_or_else(|| {
                let mut high = bins();
                histogram(scores, digits, &mut high);
                select(scores, k, digits, &high)
            });
        }
        let mut high = bins();
        let mut out = Scores {
            scores,
            high: &mut high,
            digits,
        };
        score_tables(lut, layout, beats, &mut out);
        select(scores, k, digits, &high)
    })
}

thread_local! {
    /// The general path's score buffer of this thread.
    static SCORES: std::cell::RefCell<Vec<i32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The general path's scalar scoring: codes summed a group at a time through tables of
/// their summed entries, the high-digit histogram filled in the same pass.
fn score_tables(lut: &[i32], layout: &CodeLayout, beats: &[u64], out: &mut Scores) {
    let (m, b) = (layout.m as usize, layout.code_bits as usize);
    let g = codes_per_group(layout.code_bits);
    // tables[j][x]: sum of the LUT entries of the codes packed in x (group j).
    let tables: Vec<[i32; 256]> = (0..m.div_ceil(g))
        .map(|j| {
            let mut t = [0i32; 256];
            let codes = g.min(m - j * g);
            for (x, s) in t.iter_mut().enumerate().take(1 << (codes * b)) {
                *s = (0..codes)
                    .map(|c| lut[((j * g + c) << b) + ((x >> (c * b)) & ((1 << b) - 1))])
                    .sum();
            }
            t
        })
        .collect();
    let token_bits = layout.token_bits() as usize;
    if g * b == 8 && token_bits.is_multiple_of(64) {
        match token_bits / 64 {
            1 => score_bytes::<1>(&tables, layout, beats, out),
            2 => score_bytes::<2>(&tables, layout, beats, out),
            4 => score_bytes::<4>(&tables, layout, beats, out),
            _ => score_groups(&tables, g * b, layout, beats, out),
        }
    } else {
        score_groups(&tables, g * b, layout, beats, out);
    }
}

/// Where the general path's scoring writes: one score per token, and the histogram of
/// their high digits.
struct Scores<'a> {
    scores: &'a mut [i32],
    high: &'a mut [u32],
    digits: &'a Digits,
}

impl Scores<'_> {
    /// Scores of beat `b` (`tpb` tokens a beat) are computed by `f(i)` for token `i`.
    #[inline(always)]
    fn beat(&mut self, b: usize, tpb: usize, mut f: impl FnMut(usize) -> i32) {
        let first = b * tpb;
        let Some(out) = self
            .scores
            .get_mut(first..self.scores.len().min(first + tpb))
        else {
            return;
        };
        for (i, s) in out.iter_mut().enumerate() {
            *s = f(i);
            self.high[self.digits.high(self.digits.key(*s))] += 1;
        }
    }
}

/// Scores of tokens of `W` whole words whose byte j is the code group of table j (8 * W
/// tables), unrolled; one score per slot of `scores`.
fn score_bytes<const W: usize>(
    tables: &[[i32; 256]],
    layout: &CodeLayout,
    beats: &[u64],
    out: &mut Scores,
) {
    let Some(tables) = tables.get(..8 * W) else {
        return;
    };
    let (tpb, wpb) = (layout.tokens_per_beat as usize, layout.words_per_beat());
    for (b, beat) in beats.chunks_exact(wpb).enumerate() {
        out.beat(b, tpb, |i| {
            let Some(token) = beat.get(i * W..(i + 1) * W) else {
                return 0;
            };
            // Two sums: half the chain of dependent adds.
            let mut sum = [0i32; 2];
            for (w, &word) in token.iter().enumerate() {
                for (j, byte) in word.to_le_bytes().into_iter().enumerate() {
                    sum[j % 2] += tables[w * 8 + j][usize::from(byte)];
                }
            }
            sum[0] + sum[1]
        });
    }
}

/// Scores of tokens in any layout: group j is the `group_bits` bits (fewer for the last) at
/// `j * group_bits` of the token, through the golden model's bit reader.
fn score_groups(
    tables: &[[i32; 256]],
    group_bits: usize,
    layout: &CodeLayout,
    beats: &[u64],
    out: &mut Scores,
) {
    let (tpb, wpb) = (layout.tokens_per_beat as usize, layout.words_per_beat());
    let token_bits = layout.token_bits() as usize;
    for (b, beat) in beats.chunks_exact(wpb).enumerate() {
        out.beat(b, tpb, |i| {
            let pos = i * token_bits;
            tables
                .iter()
                .enumerate()
                .map(|(j, t)| {
                    let width = group_bits.min(token_bits - j * group_bits);
                    t[get_bits(beat, pos + j * group_bits, width as u32) as usize & 255]
                })
                .sum()
        });
    }
}

/// The exact top-k of `scores`, each a `score_bits`-bit signed integer (<= 32), in
/// ascending token index: the same hits as `kvpq_core::golden::topk::top_k`. A radix select
/// over two digits of the score (small histograms: 512 and 256 bins for 17-bit scores)
/// finds the k-th score and how many equal to it are taken; one pass in index order over
/// the tokens that can reach it then keeps every score above it and the first of those
/// equal to it.
pub fn top_k_radix(scores: &[i32], k: usize, score_bits: u32) -> Vec<Hit> {
    if !(2..=32).contains(&score_bits) {
        return top_k(scores, k);
    }
    let k = k.min(scores.len());
    if k == 0 {
        return Vec::new();
    }
    let digits = Digits::new(score_bits);
    let mut high = vec![0u32; digits.high_bins()];
    for &s in scores {
        high[digits.high(digits.key(s))] += 1;
    }
    select(scores, k, &digits, &high)
}

/// Adds the high digits of `scores` to `high`. Neighbouring scores often share a digit:
/// four histograms, one per token of a group of four, keep those increments from waiting on
/// each other.
fn histogram(scores: &[i32], digits: &Digits, high: &mut [u32]) {
    let bins = high.len();
    let mut four = vec![0u32; 4 * bins];
    let (groups, rest) = scores.as_chunks::<4>();
    for g in groups {
        for (h, &s) in g.iter().enumerate() {
            four[h * bins + digits.high(digits.key(s))] += 1;
        }
    }
    for &s in rest {
        four[digits.high(digits.key(s))] += 1;
    }
    for (b, count) in high.iter_mut().enumerate() {
        *count += four[b] + four[bins + b] + four[2 * bins + b] + four[3 * bins + b];
    }
}

/// Scores in a run tested at once for one that can reach the k-th.
const RUN: usize = 16;

/// Keeps, in index order, every index whose score is at or above `floor`. Most runs of
/// scores hold none: a run is tested at once (a branch-free fold the compiler vectorizes),
/// and only then are its indices appended, branch-free.
fn at_least(scores: &[i32], floor: i32, capacity: usize) -> Vec<u32> {
    let mut kept = vec![0u32; capacity + RUN];
    let mut len = 0;
    for (r, run) in scores.chunks(RUN).enumerate() {
        if !run.iter().fold(false, |a, &s| a | (s >= floor)) {
            continue;
        }
        if kept.len() < len + RUN {
            kept.resize(2 * kept.len() + RUN, 0);
        }
        for (i, &s) in run.iter().enumerate() {
            kept[len] = (r * RUN + i) as u32;
            len += usize::from(s >= floor);
        }
    }
    kept.truncate(len);
    kept
}

/// The exact top-k of `scores` (1 <= k <= scores.len()) in ascending index, through a
/// floor estimated from every 16th score: one pass keeps every score at or above it, and
/// the k-th largest is found among those alone. Exact whenever at least k scores reach the
/// floor (then the k-th largest of all is among them); `None` otherwise, or when k is too
/// close to N for a sample to help, and the caller selects by histogram.
fn select_sampled(scores: &[i32], k: usize) -> Option<Vec<Hit>> {
    const STRIDE: usize = 16;
    let mut sample: Vec<i32> = scores.iter().step_by(STRIDE).copied().collect();
    // The sample's rank of the floor, from the top: k's share and a margin of about three
    // standard deviations, so the floor is rarely too high.
    let share = k.div_ceil(STRIDE);
    let rank = share + 3 * (share as f64).sqrt().ceil() as usize + 4;
    if rank >= sample.len() / 2 {
        return None;
    }
    let (_, &mut floor, _) = sample.select_nth_unstable_by(rank, |a, b| b.cmp(a));
    let kept = at_least(scores, floor, (rank + 1) * STRIDE * 5 / 4);
    if kept.len() < k {
        return None;
    }
    let mut top: Vec<i32> = kept.iter().map(|&i| scores[i as usize]).collect();
    let (above, &mut kth, _) = top.select_nth_unstable_by(k - 1, |a, b| b.cmp(a));
    let mut equal_left = k - above.iter().filter(|&&s| s > kth).count();
    let mut hits = Vec::with_capacity(k);
    for &i in &kept {
        let score = scores[i as usize];
        if score > kth || (score == kth && equal_left > 0) {
            equal_left -= usize::from(score == kth);
            hits.push(Hit { index: i, score });
        }
    }
    Some(hits)
}

/// [`top_k_radix`] once the high-digit histogram `high` of `scores` is known
/// (1 <= k <= scores.len()).
fn select(scores: &[i32], k: usize, digits: &Digits, high: &[u32]) -> Vec<Hit> {
    // One pass keeps every index whose high digit is at or above the k-th's (their count is
    // known; no branch per score); the low digit is resolved among those alone.
    let (bin, above_high) = kth_bin(high, k);
    // The lowest score of the k-th's high digit (keys are scores + bias, in order).
    let floor = ((i64::from(bin as u32) << digits.lo_bits) - digits.bias) as i32;
    let kept = at_least(scores, floor, above_high + high[bin] as usize);
    let threshold = digits.threshold(high, k, |bin, low| {
        for &i in &kept {
            let key = digits.key(scores[i as usize]);
            if digits.high(key) == bin {
                low[digits.low(key)] += 1;
            }
        }
    });
    let mut equal_left = threshold.take_equal;
    let mut hits = Vec::with_capacity(k);
    for &i in &kept {
        let score = scores[i as usize];
        let key = digits.key(score);
        if key > threshold.key || (key == threshold.key && equal_left > 0) {
            equal_left -= usize::from(key == threshold.key);
            hits.push(Hit { index: i, score });
        }
    }
    hits
}

/// A score as an unsigned key in score order, split into a high and a low digit of about
/// half the score's bits each.
#[derive(Debug, Clone, Copy)]
struct Digits {
    bias: i64,
    lo_bits: u32,
    hi_bits: u32,
}

/// Where the k-th largest key lies.
#[derive(Debug, Clone, Copy)]
struct Threshold {
    /// The k-th largest key.
    key: u32,
    /// How many keys equal to it are taken (the smallest indices among them).
    take_equal: usize,
}

impl Digits {
    /// Digits of `score_bits`-bit signed scores (outside 2..=32: 32, which holds any i32).
    fn new(score_bits: u32) -> Self {
        let bits = if (2..=32).contains(&score_bits) {
            score_bits
        } else {
            32
        };
        Self {
            bias: 1 << (bits - 1),
            lo_bits: bits / 2,
            hi_bits: bits - bits / 2,
        }
    }

    #[inline(always)]
    fn key(&self, s: i32) -> u32 {
        (i64::from(s) + self.bias) as u32
    }

    #[inline(always)]
    fn high(&self, key: u32) -> usize {
        (key >> self.lo_bits) as usize
    }

    #[inline(always)]
    fn low(&self, key: u32) -> usize {
        (key & ((1 << self.lo_bits) - 1)) as usize
    }

    fn high_bins(&self) -> usize {
        1 << self.hi_bits
    }

    /// The k-th largest key (1 <= k <= the histogram's total): `high` counts the keys per
    /// high digit, `low_pass(bin, low)` adds to `low` the keys of high digit `bin` per low
    /// digit.
    fn threshold(
        &self,
        high: &[u32],
        k: usize,
        low_pass: impl FnOnce(usize, &mut [u32]),
    ) -> Threshold {
        let (bin, above_high) = kth_bin(high, k);
        let mut low = vec![0u32; 1 << self.lo_bits];
        low_pass(bin, &mut low);
        let (low_bin, above_low) = kth_bin(&low, k - above_high);
        Threshold {
            key: ((bin as u32) << self.lo_bits) | low_bin as u32,
            take_equal: k - above_high - above_low,
        }
    }
}

/// In a histogram, the bin holding the `k`-th largest key (1-based) and how many keys lie
/// in higher bins.
fn kth_bin(hist: &[u32], k: usize) -> (usize, usize) {
    let mut above = 0usize;
    for bin in (0..hist.len()).rev() {
        let here = hist[bin] as usize;
        if above + here >= k {
            return (bin, above);
        }
        above += here;
    }
    (0, above)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), enough to draw scores without a
    /// dependency.
    fn draw(seed: u64, n: usize, spread: i32) -> Vec<i32> {
        let mut x = seed.max(1);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ((x % (2 * spread as u64 + 1)) as i64 - i64::from(spread)) as i32
            })
            .collect()
    }

    #[test]
    fn radix_select_is_the_golden_top_k() {
        for (seed, n, bits) in [
            (1, 5000, 3),
            (2, 20000, 17),
            (3, 70000, 32),
            (4, 10000, 2),
            (5, 4096, 21),
            (6, 100, 17),
            (7, 1, 5),
        ] {
            let (lo, hi) = (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1);
            let mut scores = draw(seed, n, hi as i32);
            // The extremes of the width, and ties at them.
            for (i, v) in [(7, lo), (9, hi), (11, hi)] {
                if i < n {
                    scores[i] = v as i32;
                }
            }
            for k in [0, 1, 2, 17, n / 20, n / 5, n - 1, n, n + 3] {
                assert_eq!(
                    top_k_radix(&scores, k, bits),
                    top_k(&scores, k),
                    "seed {seed} n {n} bits {bits} k {k}"
                );
                if (1..=n).contains(&k) {
                    if let Some(hits) = select_sampled(&scores, k) {
                        assert_eq!(
                            hits,
                            top_k(&scores, k),
                            "sampled: seed {seed} n {n} bits {bits} k {k}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn sampled_select_is_exact_or_declines() {
        // Spread and ties: the floor lands inside long runs of equal scores.
        let scores = draw(11, 50_000, 40);
        for k in [1, 100, 2500, 5000] {
            let hits = select_sampled(&scores, k).expect("a sample this large finds a floor");
            assert_eq!(hits, top_k(&scores, k), "k {k}");
        }
        let equal = vec![5; 40_000];
        assert_eq!(select_sampled(&equal, 2000), Some(top_k(&equal, 2000)));
        // Every 16th score high, the rest low: the sample puts the floor above all but
        // N/16 scores, too few for k = N/10, and the caller's histogram select takes over.
        let skewed: Vec<i32> = (0..32_768)
            .map(|i| if i % 16 == 0 { 1000 } else { i % 7 })
            .collect();
        assert_eq!(select_sampled(&skewed, 3276), None);
        // k close to N: no sample helps.
        assert_eq!(select_sampled(&scores, 49_000), None);
    }
}
