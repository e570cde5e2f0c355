//! The byte protocol of `kvpq_board_top`, which bitstreams for open boards wrap behind a
//! UART: one command byte, then a fixed payload, least significant byte first; each result
//! comes back as a `{last, shift, score, index}` record in whole bytes.

use serde::{Deserialize, Serialize};

use super::bits::{beat_words, pack_fields, sign_extend};
use super::ports::{Direction, Port};
use super::Streams;
use crate::golden::packing::words_for;
use crate::golden::{GoldenError, QuantCodebook};
use crate::spec::CodeLayout;

/// Name of the board top module that bitstreams for open boards wrap.
pub const BOARD_TOP: &str = "kvpq_board_top";

/// The UART that bitstreams for open boards put in front of the protocol (the ULX3S's FT231X
/// link): 8 data bits, no parity, one stop bit, no flow control. The board's UART modules and
/// the runtime's board device both take the rate from here.
pub mod uart {
    /// Bits per second.
    pub const BAUD: u32 = 1_000_000;
    /// Bits on the wire per byte: a start bit, 8 data bits, a stop bit.
    pub const BITS_PER_BYTE: u32 = 10;
}

/// Command bytes of the board protocol.
pub mod cmd {
    /// One centroid follows (`cb_data` bits).
    pub const CENTROID: u8 = 0x01;
    /// One quantized query follows (`q_data` bits).
    pub const QUERY: u8 = 0x02;
    /// `{k, n_tokens}` follows: start a query.
    pub const START: u8 = 0x03;
    /// One code beat follows (`code_data` bits).
    pub const BEAT: u8 = 0x04;
}

/// Field widths of the byte protocol for one accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardFormat {
    /// Bits of one centroid (sub_dim x centroid_bits).
    pub centroid_bits: u32,
    /// Bits of one query (head_dim x query_bits).
    pub query_bits: u32,
    /// Bits of n_tokens in the start payload.
    pub count_bits: u32,
    /// Bits of k in the start payload.
    pub k_bits: u32,
    /// Bits of one code beat.
    pub beat_bits: u32,
    /// Bits of a result's token index.
    pub index_bits: u32,
    /// Bits of a result's score.
    pub score_bits: u32,
    /// Bits of a result's shift.
    pub shift_bits: u32,
}

/// One decoded result record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Token index.
    pub index: u32,
    /// Integer score.
    pub score: i32,
    /// LUT shift of the query.
    pub shift: u32,
    /// Last result of the query.
    pub last: bool,
}

impl BoardFormat {
    /// The protocol of an engine with stream widths `s`.
    pub fn of(s: &Streams) -> Self {
        Self {
            centroid_bits: s.cb_data,
            query_bits: s.q_data,
            count_bits: s.n_tokens,
            k_bits: s.k,
            beat_bits: s.code_data,
            index_bits: s.res_index,
            score_bits: s.res_score,
            shift_bits: s.res_shift,
        }
    }

    /// Bits of the start payload `{k, n_tokens}` (n_tokens in the low bits).
    pub fn start_bits(&self) -> u32 {
        self.count_bits + self.k_bits
    }

    /// Payload bits that follow command byte `cmd`; `None` for an unknown command.
    pub fn payload_bits(&self, cmd: u8) -> Option<u32> {
        match cmd {
            cmd::CENTROID => Some(self.centroid_bits),
            cmd::QUERY => Some(self.query_bits),
            cmd::START => Some(self.start_bits()),
            cmd::BEAT => Some(self.beat_bits),
            _ => None,
        }
    }

    /// Bytes of the board's payload register: the longest payload.
    pub fn payload_bytes(&self) -> u32 {
        [cmd::CENTROID, cmd::QUERY, cmd::START, cmd::BEAT]
            .into_iter()
            .filter_map(|c| self.payload_bits(c))
            .map(|b| b.div_ceil(8))
            .max()
            .unwrap_or(1)
    }

    /// Bits of one result record `{last, shift, score, index}`.
    pub fn record_bits(&self) -> u32 {
        1 + self.shift_bits + self.score_bits + self.index_bits
    }

    /// Bytes of one result record.
    pub fn record_bytes(&self) -> usize {
        self.record_bits().div_ceil(8) as usize
    }

    /// The start payload of a query over `n_tokens` tokens for `k` results, as 32-bit words.
    pub fn start_words(&self, n_tokens: u64, k: u64) -> [u32; 2] {
        let v = n_tokens | (k << self.count_bits);
        [v as u32, (v >> 32) as u32]
    }

    /// Command byte `cmd` followed by the bytes of `words` (32-bit, little-endian), cut to
    /// the command's payload; `None` for an unknown command.
    pub fn frame(&self, cmd: u8, words: &[u32]) -> Option<Vec<u8>> {
        self.payload_bits(cmd)
            .map(|bits| frame_bits(cmd, bits, words))
    }

    /// The CENTROID frames of a whole codebook, entries `m * K + c` in order (the order the
    /// distance unit stores them; it wraps after the last), elements `element_bits` wide
    /// (`quant.centroid_bits`).
    pub fn codebook_frames(&self, codebook: &QuantCodebook, element_bits: u32) -> Vec<u8> {
        let mut out = Vec::new();
        for subspace in codebook.values.outer_iter() {
            for centroid in subspace.outer_iter() {
                let values = centroid.iter().map(|&v| i64::from(v));
                let words = pack_fields(values, element_bits, self.centroid_bits);
                out.extend(frame_bits(cmd::CENTROID, self.centroid_bits, &words));
            }
        }
        out
    }

    /// The frames of one query: QUERY (elements `element_bits` wide, `quant.query_bits`),
    /// START `{k, n_tokens}`, then the `ceil(n_tokens / tokens_per_beat)` BEAT frames of
    /// `beats`, packed as `layout` says. `Err` when `beats` holds fewer than `n_tokens` tokens.
    pub fn query_frames(
        &self,
        query: &[i32],
        element_bits: u32,
        layout: &CodeLayout,
        beats: &[u64],
        n_tokens: usize,
        k: usize,
    ) -> Result<Vec<u8>, GoldenError> {
        words_for(layout, beats, n_tokens)?;
        let values = query.iter().map(|&v| i64::from(v));
        let q = pack_fields(values, element_bits, self.query_bits);
        let mut out = frame_bits(cmd::QUERY, self.query_bits, &q);
        let start = self.start_words(n_tokens as u64, k as u64);
        out.extend(frame_bits(cmd::START, self.start_bits(), &start));
        for b in 0..layout.beats_for(n_tokens) {
            let words = beat_words(beats, layout.words_per_beat(), b, self.beat_bits);
            out.extend(frame_bits(cmd::BEAT, self.beat_bits, &words));
        }
        Ok(out)
    }

    /// Decodes one result record of [`Self::record_bytes`] bytes.
    pub fn decode(&self, record: &[u8]) -> Record {
        let v = record
            .iter()
            .rev()
            .fold(0u128, |acc, &b| (acc << 8) | u128::from(b));
        let field = |lo: u32, bits: u32| ((v >> lo) & ((1u128 << bits) - 1)) as u64;
        let (iw, sw, hw) = (self.index_bits, self.score_bits, self.shift_bits);
        Record {
            index: field(0, iw) as u32,
            score: sign_extend(field(iw, sw), sw) as i32,
            shift: field(iw + sw, hw) as u32,
            last: field(iw + sw + hw, 1) == 1,
        }
    }
}

/// Command byte `cmd` followed by the bytes of `words` cut (or zero-padded) to `bits` bits.
fn frame_bits(cmd: u8, bits: u32, words: &[u32]) -> Vec<u8> {
    let bytes = bits.div_ceil(8) as usize;
    let mut out = Vec::with_capacity(1 + bytes);
    out.push(cmd);
    out.extend(words.iter().flat_map(|w| w.to_le_bytes()).take(bytes));
    out.resize(1 + bytes, 0);
    out
}

/// Every port of [`BOARD_TOP`], in declaration order: the byte streams a UART (or the
/// simulated host) drives and the busy LED. Unlike the engine's, they do not depend on the
/// accelerator.
pub fn board_ports() -> Vec<Port> {
    use Direction::{Input as I, Output as O};
    let p = |name: &str, direction, width, doc: &str| Port {
        name: name.into(),
        direction,
        width,
        registered: false,
        doc: doc.into(),
    };
    vec![
        p("clk", I, 1, "clock"),
        p("rst", I, 1, "synchronous reset, active high"),
        p("rx_valid", I, 1, "host to board bytes: valid"),
        p("rx_ready", O, 1, "host to board bytes: ready"),
        p(
            "rx_data",
            I,
            8,
            "host to board bytes: one byte of a command frame",
        ),
        p("tx_valid", O, 1, "board to host bytes: valid"),
        p("tx_ready", I, 1, "board to host bytes: ready"),
        p(
            "tx_data",
            O,
            8,
            "board to host bytes: one byte of a result record",
        ),
        p(
            "led_busy",
            O,
            1,
            "a query is in flight or its results are still leaving",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interface::Streams;
    use crate::spec::{AcceleratorBuilder, EngineConfig, PqConfig, QuantConfig, ScannerConfig};
    use ndarray::Array3;

    #[test]
    fn frames_carry_every_centroid_and_the_beats_of_n_tokens() {
        let acc = AcceleratorBuilder::new("t", PqConfig::new(8, 2, 2))
            .quant(QuantConfig::new(4, 4, 6))
            .scanner(ScannerConfig::new(2))
            .engine(EngineConfig::new(64).with_beat_bits(32))
            .build()
            .unwrap();
        let f = BoardFormat::of(&Streams::of(&acc));
        let layout = acc.derived().layout;
        // 4 elements of 4 bits: 2 bytes per centroid, -1 packs to all ones.
        let cb = QuantCodebook {
            values: Array3::from_elem((2, 4, 4), -1),
            scale: 1.0,
        };
        let bytes = f.codebook_frames(&cb, 4);
        assert_eq!(bytes.len(), 8 * 3);
        assert_eq!(&bytes[..3], &[cmd::CENTROID, 0xff, 0xff]);
        // 8 tokens of 4 bits per 32-bit beat: 9 tokens take two beats.
        let beats = vec![0u64; 2 * layout.words_per_beat()];
        let q = [1i32; 8];
        let bytes = f.query_frames(&q, 4, &layout, &beats, 9, 3).unwrap();
        let start = 1 + f.start_bits().div_ceil(8) as usize;
        assert_eq!(bytes.len(), (1 + 4) + start + 2 * (1 + 4));
        assert_eq!(&bytes[..5], &[cmd::QUERY, 0x11, 0x11, 0x11, 0x11]);
        assert_eq!(bytes[5], cmd::START);
        assert!(f.query_frames(&q, 4, &layout, &beats, 17, 3).is_err());
    }
}
