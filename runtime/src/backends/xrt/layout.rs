//! How the searches of a layer call are laid out for the kernel (docs/design.md 7.1): which
//! searches share a run, the words of a job, where each job's codes and results sit in its
//! engine's buffers (`lane<e>`, and `lane<e>_<s>` for the code stripes after the first),
//! and how a result area is read back. No XRT here, so all of it is
//! unit tested.

use std::ops::Range;

use kvpq_core::golden::{Hit, QueryResult};
use kvpq_core::interface::alveo::{job, out_flags, JOB_HEADER_WORDS};

/// Header the host writes into every result area before a run. Its count (all ones) is one
/// no answered job reports (count <= k_max < 2^32 - 1), so a job the kernel skipped is a
/// fault instead of a silent return of an earlier call's results.
pub(crate) const UNANSWERED: u64 = u32::MAX as u64;

/// Splits a call's searches, given by slot, into runs. One run loads the codebooks once,
/// before its jobs, so the searches of a run must not need two slots in one engine head
/// (slot `s` lives in head `s % heads`); a new run starts at the first search that would.
/// A layer call whose slots fit the heads (the usual `engine.heads` = layers x KV heads) is
/// one run.
pub(crate) fn split_runs(slots: &[usize], heads: usize) -> Vec<Range<usize>> {
    let heads = heads.max(1);
    let mut runs = Vec::new();
    // The slot each head serves in the current run, and the heads set, to clear them.
    let mut serves: Vec<Option<usize>> = vec![None; heads];
    let mut used = Vec::new();
    let mut start = 0;
    for (i, &slot) in slots.iter().enumerate() {
        let head = slot % heads;
        if serves[head].is_some_and(|s| s != slot) {
            runs.push(start..i);
            start = i;
            for h in used.drain(..) {
                serves[h] = None;
            }
        }
        if serves[head].is_none() {
            serves[head] = Some(slot);
            used.push(head);
        }
    }
    if start < slots.len() {
        runs.push(start..slots.len());
    }
    runs
}

/// How a lane's code beats are spread over its stripe buffers: beat b of a job lies in
/// stripe b % `count`, at the job's codes offset + (b / `count`) * `beat_bytes`
/// (`alveo::code_stripes`, docs/design.md 7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Striping {
    /// Stripe buffers per engine (a power of two, at least 1).
    pub(crate) count: usize,
    /// Bytes of one beat in memory: `words_per_beat` 64-bit words.
    pub(crate) beat_bytes: usize,
}

impl Striping {
    /// Beats of a job of `beats` beats that lie in stripe `s`.
    pub(crate) fn beats_in(&self, beats: usize, s: usize) -> usize {
        beats.saturating_sub(s).div_ceil(self.count)
    }

    /// Bytes from a job's codes offset to the end of its beats in stripe 0, the stripe
    /// that holds the most.
    pub(crate) fn span(&self, beats: usize) -> usize {
        self.beats_in(beats, 0) * self.beat_bytes
    }

    /// Stripe and byte offset of beat `b` of a job whose codes offset is `codes`.
    pub(crate) fn beat_at(&self, codes: usize, b: usize) -> (usize, usize) {
        (b % self.count, codes + (b / self.count) * self.beat_bytes)
    }
}

/// Where one job's data sits in its engine's buffers (byte offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Place {
    /// Engine (lane) the job runs on.
    pub(crate) lane: usize,
    /// Offset of its code beats in every stripe buffer of the lane (aligned to the lane
    /// masters' data width).
    pub(crate) codes: usize,
    /// Beats of its codes: ceil(n_tokens / tokens_per_beat).
    pub(crate) beats: usize,
    /// Offset of its result area in stripe 0's buffer (8-byte aligned): the header, then
    /// `count` words.
    pub(crate) out: usize,
    /// Results the kernel writes: min(n_tokens, k).
    pub(crate) count: usize,
}

/// The bytes of one lane's buffers a run uses: the result areas fill `[0, out_end)` of
/// stripe 0's, the code beats lie in `[code_start, end)` of every stripe's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LaneUse {
    /// End of the last result area.
    pub(crate) out_end: usize,
    /// Where the first code beats start: `out_end` rounded up to a beat.
    pub(crate) code_start: usize,
    /// End of the last code beats in stripe 0 (at least `code_start`), rounded up to a
    /// beat: every stripe buffer of the lane holds at least this many bytes. The kernel
    /// writes results as whole beats (byte strobes at the ends), so the beats around a
    /// result area must lie inside stripe 0's buffer too.
    pub(crate) end: usize,
}

fn align_up(x: usize, to: usize) -> usize {
    x.div_ceil(to) * to
}

/// Places the jobs of a run, each given as (code beats, result count): job `j` runs on
/// engine `j % align.len()`, whose masters are `align[e]` bytes wide. In a lane the result
/// areas come first in stripe 0's buffer, back to back, then the jobs' code beats, each
/// job's at one offset (on a beat boundary) in every stripe buffer, striped as `striping`
/// says: one download of stripe 0 then brings every result of the lane back, and one
/// upload per stripe sends the codes (with the result headers cleared to [`UNANSWERED`]).
pub(crate) fn place(
    jobs: &[(usize, usize)],
    align: &[usize],
    striping: Striping,
) -> (Vec<Place>, Vec<LaneUse>) {
    let engines = align.len().max(1);
    let mut lanes = vec![LaneUse::default(); engines];
    let mut places: Vec<Place> = jobs
        .iter()
        .enumerate()
        .map(|(j, &(beats, count))| {
            let lane = j % engines;
            let out = lanes[lane].out_end;
            lanes[lane].out_end += 8 * (1 + count);
            Place {
                lane,
                codes: 0,
                beats,
                out,
                count,
            }
        })
        .collect();
    for (e, l) in lanes.iter_mut().enumerate() {
        // A lane with no jobs stays empty; otherwise the codes start on a beat.
        l.code_start = align_up(l.out_end, align[e]);
        l.end = l.code_start;
    }
    for p in &mut places {
        let l = &mut lanes[p.lane];
        p.codes = align_up(l.end, align[p.lane]);
        l.end = p.codes + striping.span(p.beats);
    }
    for (e, l) in lanes.iter_mut().enumerate() {
        l.end = align_up(l.end, align[e]);
    }
    (places, lanes)
}

/// Copies the beats of job `p` that lie in stripe `stripe` into `image`, which holds that
/// stripe buffer's bytes from offset `base` on. `words` are the job's beats in order,
/// `striping.beat_bytes / 8` little-endian 64-bit words each.
pub(crate) fn stage_codes(
    image: &mut [u8],
    base: usize,
    stripe: usize,
    striping: Striping,
    p: &Place,
    words: &[u64],
) {
    let beat_words = striping.beat_bytes / 8;
    for (b, beat) in words
        .chunks_exact(beat_words)
        .enumerate()
        .skip(stripe)
        .step_by(striping.count)
    {
        let (s, at) = striping.beat_at(p.codes, b);
        debug_assert_eq!(s, stripe);
        let at = at - base;
        for (dst, w) in image[at..at + striping.beat_bytes]
            .chunks_exact_mut(8)
            .zip(beat)
        {
            dst.copy_from_slice(&w.to_le_bytes());
        }
    }
}

/// Appends the int32 words of one job (`alveo::job`) to `out` as little-endian bytes:
/// n_tokens, k, head, 0, the codes offset, the out offset (64 bits each, low word first),
/// then the query.
pub(crate) fn push_job(
    out: &mut Vec<u8>,
    n_tokens: u32,
    k: u32,
    head: u32,
    place: &Place,
    query: &[i32],
) {
    let mut header = [0u32; JOB_HEADER_WORDS as usize];
    header[job::N_TOKENS] = n_tokens;
    header[job::K] = k;
    header[job::HEAD] = head;
    header[job::RESERVED] = 0;
    let codes = place.codes as u64;
    let outo = place.out as u64;
    header[job::CODES] = codes as u32;
    header[job::CODES + 1] = (codes >> 32) as u32;
    header[job::OUT] = outo as u32;
    header[job::OUT + 1] = (outo >> 32) as u32;
    out.extend(header.iter().flat_map(|w| w.to_le_bytes()));
    out.extend(query.iter().flat_map(|v| v.to_le_bytes()));
}

/// Decodes a job's result area `area` (`out[0] = count | shift << 32 | flags`, `out[1 + i]
/// = index | (u32)score << 32`) for a search of `n` tokens and `k` results; `Err` says what
/// is wrong. A header the kernel never wrote, a flag (bit 63: a read answered SLVERR/DECERR,
/// no results; bit 62: a result write did, the results cannot be trusted; bit 61: the
/// kernel refused the head, no results), a count other than min(n, k) or an index past `n`
/// are all errors: the kernel always returns min(n, k) hits of scanned tokens.
pub(crate) fn decode(area: &[u8], n: usize, k: usize) -> Result<QueryResult, String> {
    let word = |i: usize| {
        area.get(8 * i..8 * i + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| format!("result word {i} missing ({} bytes read)", area.len()))
    };
    let header = word(0)?;
    if header == UNANSWERED {
        return Err(
            "the kernel did not answer the job (its result header still holds what \
                    the host wrote before the run)"
                .into(),
        );
    }
    if header & out_flags::READ_ERROR != 0 {
        return Err(
            "memory error: a read of the codebooks, the job or its codes answered \
                    SLVERR or DECERR (result header bit 63); the kernel returned no results"
                .into(),
        );
    }
    if header & out_flags::WRITE_ERROR != 0 {
        return Err(
            "memory error: a write of the results answered SLVERR or DECERR (result \
                    header bit 62); the results in device memory cannot be trusted"
                .into(),
        );
    }
    if header & out_flags::REQUEST_ERROR != 0 {
        return Err(
            "request error: the kernel refused the job's codebook head (result \
                    header bit 61: head not below its engine.heads), so the xclbin holds \
                    fewer heads than the folder describes; no results"
                .into(),
        );
    }
    let count = header as u32 as usize;
    let shift = (header >> 32) as u32;
    if count != n.min(k) {
        return Err(format!(
            "the kernel reported {count} results for n_tokens {n} and k {k} (expected {})",
            n.min(k)
        ));
    }
    let hits = (1..=count)
        .map(|i| {
            let w = word(i)?;
            let index = w as u32;
            if index as usize >= n {
                return Err(format!(
                    "result {} names token {index} of a search of {n} tokens",
                    i - 1
                ));
            }
            Ok(Hit {
                index,
                score: (w >> 32) as u32 as i32,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(QueryResult { hits, shift })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(words: &[u64]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn runs_split_only_where_a_head_would_serve_two_slots() {
        // Layer calls over slots that fit the heads: one run each.
        assert_eq!(split_runs(&[0, 1, 2, 3], 8), vec![0..4]);
        assert_eq!(split_runs(&[3, 3, 1, 3], 4), vec![0..4]);
        assert_eq!(split_runs(&[8, 9, 10], 8), vec![0..3]);
        // Slot 4 needs head 0, which slot 0 serves in the run: a second run; then slot 0 again.
        assert_eq!(split_runs(&[0, 1, 4, 2, 0], 4), vec![0..2, 2..4, 4..5]);
        assert_eq!(split_runs(&[0, 1, 2], 1), vec![0..1, 1..2, 2..3]);
        assert_eq!(split_runs(&[5, 5, 5], 1), vec![0..3]);
        assert!(split_runs(&[], 3).is_empty());
    }

    #[test]
    fn jobs_are_dealt_to_lanes_with_aligned_areas_that_do_not_overlap() {
        // (beats, count) on two engines of 16-byte beats, codes in one stripe.
        let jobs = [(8, 3), (3, 1), (0, 0), (4, 2), (1, 0)];
        let one = Striping {
            count: 1,
            beat_bytes: 16,
        };
        let (places, lanes) = place(&jobs, &[16, 16], one);
        let lane_of: Vec<usize> = places.iter().map(|p| p.lane).collect();
        assert_eq!(lane_of, vec![0, 1, 0, 1, 0]);
        // Lane 0: outs of jobs 0, 2, 4 (32 + 8 + 8 bytes), codes from 48.
        assert_eq!((places[0].out, places[2].out, places[4].out), (0, 32, 40));
        assert_eq!(
            (places[0].codes, places[2].codes, places[4].codes),
            (48, 176, 176)
        );
        assert_eq!(
            lanes[0],
            LaneUse {
                out_end: 48,
                code_start: 48,
                end: 192
            }
        );
        // Lane 1: outs of jobs 1, 3 (16 + 24 bytes), codes from 48 (the next beat).
        assert_eq!((places[1].out, places[3].out), (0, 16));
        assert_eq!((places[1].codes, places[3].codes), (48, 96));
        assert_eq!(
            lanes[1],
            LaneUse {
                out_end: 40,
                code_start: 48,
                end: 160
            }
        );
        // A third engine with no job uses no bytes.
        let (_, lanes) = place(&jobs[..1], &[8, 8, 8], one);
        assert_eq!(lanes[1], LaneUse::default());
        // Results alone: the buffer still ends on the beat after them.
        let (_, lanes) = place(&[(0, 2)], &[64], one);
        assert_eq!(
            lanes[0],
            LaneUse {
                out_end: 24,
                code_start: 64,
                end: 64
            }
        );
    }

    #[test]
    fn striped_codes_take_the_beats_of_stripe_zero_at_one_offset_in_every_stripe() {
        let two = Striping {
            count: 2,
            beat_bytes: 16,
        };
        let jobs = [(8, 3), (3, 1), (0, 0), (4, 2), (1, 0)];
        let (places, lanes) = place(&jobs, &[16, 16], two);
        // Lane 0: 8 beats are 4 in each stripe, then none, then 1 in stripe 0.
        assert_eq!(
            (places[0].codes, places[2].codes, places[4].codes),
            (48, 112, 112)
        );
        assert_eq!((lanes[0].code_start, lanes[0].end), (48, 128));
        // Lane 1: 3 beats are 2 in stripe 0 and 1 in stripe 1; 4 are 2 and 2.
        assert_eq!((places[1].codes, places[3].codes), (48, 80));
        assert_eq!((lanes[1].code_start, lanes[1].end), (48, 112));
        assert_eq!((two.beats_in(3, 0), two.beats_in(3, 1)), (2, 1));
        let four = Striping {
            count: 4,
            beat_bytes: 16,
        };
        let per_stripe: Vec<usize> = (0..4).map(|s| four.beats_in(5, s)).collect();
        assert_eq!(per_stripe, vec![2, 1, 1, 1]);
        assert_eq!((four.beats_in(2, 3), four.beats_in(0, 0)), (0, 0));
        assert_eq!(four.beat_at(64, 6), (2, 80));
    }

    #[test]
    fn a_stripe_image_holds_exactly_its_beats() {
        let two = Striping {
            count: 2,
            beat_bytes: 16,
        };
        let p = Place {
            lane: 0,
            codes: 32,
            beats: 5,
            out: 0,
            count: 1,
        };
        let words: Vec<u64> = (0..10).collect();
        let words_of = |image: &[u8]| -> Vec<u64> {
            image
                .chunks_exact(8)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
                .collect()
        };
        // Stripe 0's buffer from offset 32: beats 0, 2, 4.
        let mut image = vec![0xff; 48];
        stage_codes(&mut image, 32, 0, two, &p, &words);
        assert_eq!(words_of(&image), vec![0, 1, 4, 5, 8, 9]);
        // Stripe 1's buffer from offset 16: beats 1 and 3 at 32 and 48, the rest untouched.
        let mut image = vec![0; 64];
        stage_codes(&mut image, 16, 1, two, &p, &words);
        assert_eq!(words_of(&image), vec![0, 0, 2, 3, 6, 7, 0, 0]);
    }

    #[test]
    fn a_job_is_its_header_then_its_query() {
        let p = Place {
            lane: 0,
            codes: 0x1_0000_0040,
            beats: 1,
            out: 24,
            count: 2,
        };
        let mut out = Vec::new();
        push_job(&mut out, 100, 7, 3, &p, &[-1, 2]);
        let words: Vec<u32> = out
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(words, vec![100, 7, 3, 0, 0x40, 1, 24, 0, u32::MAX, 2]);
    }

    #[test]
    fn results_decode_as_the_kernel_lays_them_out() {
        let out = bytes(&[
            2 | 5 << 32,
            7 | u64::from(-3i32 as u32) << 32,
            1 | 9 << 32,
            0,
        ]);
        let r = decode(&out, 10, 2).unwrap();
        assert_eq!(r.shift, 5);
        assert_eq!(
            r.hits,
            vec![
                Hit {
                    index: 7,
                    score: -3
                },
                Hit { index: 1, score: 9 }
            ]
        );
        assert_eq!(decode(&bytes(&[0]), 0, 4).unwrap().hits, vec![]);
    }

    #[test]
    fn impossible_results_are_errors() {
        for (out, n, k, says) in [
            (bytes(&[3, 0, 0, 0]), 10, 2, "reported 3"), // count above k
            (bytes(&[1, 0]), 10, 2, "reported 1"),       // count below min(n, k)
            (bytes(&[1, 12]), 10, 1, "token 12"),        // index past n
            (bytes(&[2, 0]), 10, 2, "missing"),          // words missing
            (bytes(&[UNANSWERED, 0]), 10, 1, "not answer"), // never written
            (bytes(&[1 << 63, 0]), 10, 1, "bit 63"),     // read error: no results
            (bytes(&[1 | 1 << 62, 0]), 10, 1, "bit 62"), // write error
            (bytes(&[1 << 61 | 4 << 32]), 10, 1, "bit 61"), // request error
        ] {
            match decode(&out, n, k) {
                Err(e) => assert!(e.contains(says), "{out:?}: `{says}` not in {e}"),
                Ok(r) => panic!("{out:?}: expected an error, got {r:?}"),
            }
        }
    }
}
