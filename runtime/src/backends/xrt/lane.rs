//! One search of a layer call on the card: a run handle and the query, codes and result
//! buffers it uses, kept between calls so a decoding step allocates nothing. Search `i` of
//! every call uses lane `i`, so all searches of a call are in flight at once.

use kvpq_core::golden::{Hit, QueryResult};
use kvpq_core::interface::alveo::out_flags;
use kvpq_core::spec::Accelerator;

use super::args::KernelArgs;
use super::handles::{fault, Bo, Kernel, Run, XrtHandle};
use crate::{HeadQuery, RuntimeError};

/// Smallest buffer allocated: XRT rounds every buffer up to a 4 KiB page anyway, and a
/// search of zero tokens still needs a `codes` buffer to pass.
const MIN_BUFFER_BYTES: usize = 4096;

/// A run and its buffers. Field order is drop order: the run closes before its buffers.
#[derive(Debug)]
pub(crate) struct Lane {
    run: Run,
    query: Bo,
    out: Bo,
    /// Grown (doubling) when a search needs more code beats than it holds.
    codes: Bo,
}

impl Lane {
    /// Opens a run of `kernel` and allocates the lane's buffers for `acc`.
    pub(crate) fn open(
        device: &XrtHandle,
        kernel: &Kernel,
        args: &KernelArgs,
        acc: &Accelerator,
    ) -> Result<Self, RuntimeError> {
        let c = acc.config();
        let query_bytes = 4 * c.pq.head_dim as usize;
        // The kernel's result buffer is 1 + k_max words whatever k is (docs/design.md 7.1).
        let out_bytes = 8 * (1 + c.topk.k_max as usize);
        Ok(Self {
            run: Run::open(kernel)?,
            query: Bo::alloc(device, query_bytes.max(MIN_BUFFER_BYTES), args.query.group)?,
            out: Bo::alloc(device, out_bytes.max(MIN_BUFFER_BYTES), args.out.group)?,
            codes: Bo::alloc(device, MIN_BUFFER_BYTES, args.codes.group)?,
        })
    }

    /// Sends the query and the beats the kernel reads for `q` (ceil(n_tokens /
    /// tokens_per_beat) beats) to the card. `scratch` is reused for the byte images.
    pub(crate) fn stage(
        &mut self,
        device: &XrtHandle,
        args: &KernelArgs,
        acc: &Accelerator,
        q: &HeadQuery<'_>,
        scratch: &mut Vec<u8>,
    ) -> Result<(), RuntimeError> {
        scratch.clear();
        scratch.extend(q.query.iter().flat_map(|v| v.to_le_bytes()));
        self.query.upload(scratch)?;

        let layout = acc.derived().layout;
        let words = layout.beats_for(q.n_tokens) * layout.words_per_beat();
        let beats = q.beats.get(..words).ok_or_else(|| {
            fault(format!(
                "search of slot {} holds {} code words, {words} needed",
                q.slot,
                q.beats.len()
            ))
        })?;
        let bytes = 8 * words;
        if bytes > self.codes.size {
            // Contexts grow a token per step: doubling keeps reallocations rare.
            let size = bytes.max(2 * self.codes.size);
            self.codes = Bo::alloc(device, size, args.codes.group)?;
        }
        scratch.clear();
        scratch.extend(beats.iter().flat_map(|w| w.to_le_bytes()));
        self.codes.upload(scratch)
    }

    /// Sets every argument of the run and starts it; `load` makes the kernel read
    /// `codebook` before the query.
    pub(crate) fn start(
        &self,
        args: &KernelArgs,
        codebook: &Bo,
        q: &HeadQuery<'_>,
        load: bool,
    ) -> Result<(), RuntimeError> {
        let r = &self.run;
        r.set_buffer(args.codebook.id, args.codebook.name, codebook)?;
        r.set_buffer(args.query.id, args.query.name, &self.query)?;
        r.set_buffer(args.codes.id, args.codes.name, &self.codes)?;
        r.set_buffer(args.out.id, args.out.name, &self.out)?;
        // The checks bound n_tokens by max_tokens and k by k_max, both u32.
        let scalar = |v: usize, name: &str| {
            u32::try_from(v).map_err(|_| fault(format!("{name} = {v} does not fit 32 bits")))
        };
        r.set_scalar(
            args.n_tokens.id,
            args.n_tokens.name,
            scalar(q.n_tokens, "n_tokens")?,
        )?;
        r.set_scalar(args.k.id, args.k.name, scalar(q.k, "k")?)?;
        r.set_scalar(
            args.load_codebook.id,
            args.load_codebook.name,
            u32::from(load),
        )?;
        r.start()
    }

    /// Waits for the started run; returns its `ert_cmd_state`.
    pub(crate) fn wait(&self) -> std::ffi::c_int {
        self.run.wait()
    }

    /// Reads the results of the ended run for `q` (header and `k` words) and checks them
    /// against what the kernel can return.
    pub(crate) fn result(
        &self,
        q: &HeadQuery<'_>,
        scratch: &mut Vec<u8>,
    ) -> Result<QueryResult, RuntimeError> {
        scratch.clear();
        scratch.resize(8 * (1 + q.k), 0);
        self.out.download(scratch)?;
        decode(scratch, q.n_tokens, q.k)
    }
}

/// Decodes `out` (`out[0] = count | shift << 32`, `out[1 + i] = index | (u32)score << 32`)
/// of a search of `n` tokens for `k` results. A count other than min(n, k) or an index past
/// `n` is a fault: the kernel always returns min(n, k) hits of scanned tokens. So is a memory
/// error the kernel flags in the header (bit 63: a read answered SLVERR/DECERR and no results
/// came back; bit 62: a result write did, so the results in memory cannot be trusted).
pub(crate) fn decode(out: &[u8], n: usize, k: usize) -> Result<QueryResult, RuntimeError> {
    let word = |i: usize| {
        out.get(8 * i..8 * i + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| {
                fault(format!(
                    "result word {i} missing ({} bytes read)",
                    out.len()
                ))
            })
    };
    let header = word(0)?;
    if header & out_flags::READ_ERROR != 0 {
        return Err(fault(
            "memory error: a read of the codebook, the query or the codes answered SLVERR or \
             DECERR (result header bit 63); the kernel returned no results"
                .into(),
        ));
    }
    if header & out_flags::WRITE_ERROR != 0 {
        return Err(fault(
            "memory error: a write of the results answered SLVERR or DECERR (result header \
             bit 62); the results in device memory cannot be trusted"
                .into(),
        ));
    }
    let count = header as u32 as usize;
    let shift = (header >> 32) as u32;
    if count != n.min(k) {
        return Err(fault(format!(
            "the kernel reported {count} results for n_tokens {n} and k {k} (expected {})",
            n.min(k)
        )));
    }
    let hits = (1..=count)
        .map(|i| {
            let w = word(i)?;
            let index = w as u32;
            if index as usize >= n {
                return Err(fault(format!(
                    "result {} names token {index} of a search of {n} tokens",
                    i - 1
                )));
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
    fn impossible_results_are_faults() {
        for (out, n, k) in [
            (bytes(&[3, 0, 0, 0]), 10, 2),     // count above k
            (bytes(&[1, 0]), 10, 2),           // count below min(n, k)
            (bytes(&[1, 12]), 10, 1),          // index past n
            (bytes(&[2, 0]), 10, 2),           // words missing
            (bytes(&[1 << 63, 0]), 10, 1),     // read error: no results
            (bytes(&[1 | 1 << 62, 0]), 10, 1), // write error
        ] {
            match decode(&out, n, k) {
                Err(RuntimeError::Fault { backend: "xrt", .. }) => {}
                other => panic!("{out:?}: expected a fault, got {other:?}"),
            }
        }
    }
}
