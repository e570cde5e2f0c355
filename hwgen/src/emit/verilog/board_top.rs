//! View of `kvpq_board_top.v`.

use askama::Template;

use super::header::header;
use kvpq_core::interface::{board::cmd, BoardFormat, Streams};
use kvpq_core::spec::{unsigned_bits, Accelerator};

/// Template data of the byte-stream board top.
#[derive(Template)]
#[template(path = "verilog/kvpq_board_top.v")]
pub struct BoardTopV {
    header: String,
    head_w: u32,
    cb_w: u32,
    q_w: u32,
    beat_w: u32,
    count_w: u32,
    k_w: u32,
    index_w: u32,
    score_bits: u32,
    res_lanes: u32,
    res_n_w: u32,
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
    cmd_cb: u8,
    cmd_query: u8,
    cmd_start: u8,
    cmd_beat: u8,
}

impl BoardTopV {
    /// Derives the template data from a validated accelerator.
    pub fn new(acc: &Accelerator) -> Self {
        let streams = Streams::of(acc);
        let f = BoardFormat::of(&streams);
        let (cb_w, q_w, beat_w) = (f.centroid_bits, f.query_bits, f.beat_bits);
        let start_w = f.start_bits();
        let bytes = |bits: u32| bits.div_ceil(8);
        let payload_bytes = f.payload_bytes();
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
            head_w: streams.head,
            cb_w,
            q_w,
            beat_w,
            count_w: f.count_bits,
            k_w: f.k_bits,
            index_w: f.index_bits,
            score_bits: f.score_bits,
            res_lanes: acc.derived().widths.result_lanes,
            res_n_w: kvpq_core::spec::unsigned_bits(u64::from(acc.derived().widths.result_lanes)),
            shift_w: f.shift_bits,
            cmd_cb: cmd::CENTROID,
            cmd_query: cmd::QUERY,
            cmd_start: cmd::START,
            cmd_beat: cmd::BEAT,
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
