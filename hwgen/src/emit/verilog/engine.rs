//! View of `pq_topk_engine.v`.

use askama::Template;

use super::header::header;
use crate::spec::{unsigned_bits, Accelerator};

/// Template data of the engine.
#[derive(Template)]
#[template(path = "verilog/pq_topk_engine.v")]
pub struct EngineV {
    header: String,
    strategy: String,
    cb_data_w: u32,
    q_data_w: u32,
    count_w: u32,
    k_w: u32,
    beat_bits: u32,
    index_w: u32,
    score_bits: u32,
    shift_w: u32,
    max_tokens: u32,
    k_max: u32,
    m_w: u32,
    code_bits: u32,
    lut_bits: u32,
    lanes: u32,
}

impl EngineV {
    /// Derives the template data from a validated accelerator.
    pub fn new(acc: &Accelerator) -> Self {
        let c = acc.config();
        let w = &acc.derived().widths;
        Self {
            header: header(acc, "pq_topk_engine"),
            strategy: c.topk.strategy.to_string(),
            cb_data_w: w.sub_dim * w.centroid_bits,
            q_data_w: c.pq.head_dim * w.query_bits,
            count_w: w.count_bits,
            k_w: w.k_bits,
            beat_bits: c.engine.beat_bits,
            index_w: w.index_bits,
            score_bits: w.score_bits,
            shift_w: w.shift_bits,
            max_tokens: c.engine.max_tokens,
            k_max: c.topk.k_max,
            m_w: unsigned_bits(u64::from(c.pq.m - 1)),
            code_bits: c.pq.code_bits,
            lut_bits: w.lut_bits,
            lanes: c.scanner.lanes,
        }
    }
}
