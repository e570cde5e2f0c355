//! The byte protocol of `kvpq_board_top`, which bitstreams for open boards wrap behind a
//! UART: one command byte, then a fixed payload, least significant byte first; each result
//! comes back as a `{last, shift, score, index}` record in whole bytes.

use serde::{Deserialize, Serialize};

use super::bits::sign_extend;
use super::ports::{Direction, Port};
use super::Streams;

/// Name of the board top module that bitstreams for open boards wrap.
pub const BOARD_TOP: &str = "kvpq_board_top";

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
        let bytes = self.payload_bits(cmd)?.div_ceil(8) as usize;
        let mut out = Vec::with_capacity(1 + bytes);
        out.push(cmd);
        out.extend(words.iter().flat_map(|w| w.to_le_bytes()).take(bytes));
        out.resize(1 + bytes, 0);
        Some(out)
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
        p("led_busy", O, 1, "a query is in flight"),
    ]
}
