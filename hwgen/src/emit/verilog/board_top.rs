//! View of `kvpq_board_top.v`.

use askama::Template;

use super::header::header;
use crate::spec::{unsigned_bits, Accelerator};

/// Field widths of the byte protocol for one accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

impl BoardFormat {
    /// The format of `acc`'s board top.
    pub fn of(acc: &Accelerator) -> Self {
        let c = acc.config();
        let w = &acc.derived().widths;
        Self {
            centroid_bits: w.sub_dim * w.centroid_bits,
            query_bits: c.pq.head_dim * w.query_bits,
            count_bits: w.count_bits,
            k_bits: w.k_bits,
            beat_bits: c.engine.beat_bits,
            index_bits: w.index_bits,
            score_bits: w.score_bits,
            shift_bits: w.shift_bits,
        }
    }

    /// Bits of one result record `{last, shift, score, index}`.
    pub fn record_bits(&self) -> u32 {
        1 + self.shift_bits + self.score_bits + self.index_bits
    }

    /// Bytes of one result record.
    pub fn record_bytes(&self) -> usize {
        self.record_bits().div_ceil(8) as usize
    }
}

/// Template data of the byte-stream board top.
#[derive(Template)]
#[template(path = "verilog/kvpq_board_top.v")]
pub struct BoardTopV {
    header: String,
    cb_w: u32,
    q_w: u32,
    beat_w: u32,
    count_w: u32,
    k_w: u32,
    index_w: u32,
    score_bits: u32,
    shift_w: u32,
    cb_bytes: u32,
    q_bytes: u32,
    start_bytes: u32,
    beat_bytes: u32,
    res_bytes: u32,
    payload_bits: u32,
    cb_base: u32,
    q_base: u32,
    start_base: u32,
    beat_base: u32,
    res_bits: u32,
    byte_w: u32,
    record_expr: String,
}

impl BoardTopV {
    /// Derives the template data from a validated accelerator.
    pub fn new(acc: &Accelerator) -> Self {
        let f = BoardFormat::of(acc);
        let w = &acc.derived().widths;
        let (cb_w, q_w, beat_w) = (f.centroid_bits, f.query_bits, f.beat_bits);
        let start_w = f.count_bits + f.k_bits;
        let bytes = |bits: u32| bits.div_ceil(8);
        let payload_bytes = [cb_w, q_w, beat_w, start_w]
            .into_iter()
            .map(bytes)
            .max()
            .unwrap_or(1);
        let record = f.record_bits();
        let res_bytes = bytes(record);
        let pad = res_bytes * 8 - record;
        let fields = "res_last, res_shift, res_score, res_index";
        let record_expr = if pad > 0 {
            format!("{{ {pad}'d0, {fields} }}")
        } else {
            format!("{{ {fields} }}")
        };
        Self {
            header: header(acc, "kvpq_board_top"),
            cb_w,
            q_w,
            beat_w,
            count_w: w.count_bits,
            k_w: w.k_bits,
            index_w: w.index_bits,
            score_bits: w.score_bits,
            shift_w: w.shift_bits,
            cb_bytes: bytes(cb_w),
            q_bytes: bytes(q_w),
            start_bytes: bytes(start_w),
            beat_bytes: bytes(beat_w),
            res_bytes,
            payload_bits: payload_bytes * 8,
            // Where each payload starts once its bytes have shifted in from the top.
            cb_base: (payload_bytes - bytes(cb_w)) * 8,
            q_base: (payload_bytes - bytes(q_w)) * 8,
            start_base: (payload_bytes - bytes(start_w)) * 8,
            beat_base: (payload_bytes - bytes(beat_w)) * 8,
            res_bits: res_bytes * 8,
            byte_w: unsigned_bits(u64::from(payload_bytes.max(res_bytes))),
            record_expr,
        }
    }
}
