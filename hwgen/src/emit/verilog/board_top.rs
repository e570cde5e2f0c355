//! View of `kvpq_board_top.v`.

use askama::Template;

use super::header::header;
use crate::spec::{unsigned_bits, Accelerator};

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
        let c = acc.config();
        let w = &acc.derived().widths;
        let cb_w = w.sub_dim * w.centroid_bits;
        let q_w = c.pq.head_dim * w.query_bits;
        let beat_w = c.engine.beat_bits;
        let start_w = w.count_bits + w.k_bits;
        let bytes = |bits: u32| bits.div_ceil(8);
        let payload_bytes = [cb_w, q_w, beat_w, start_w]
            .into_iter()
            .map(bytes)
            .max()
            .unwrap_or(1);
        let record = 1 + w.shift_bits + w.score_bits + w.index_bits;
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
