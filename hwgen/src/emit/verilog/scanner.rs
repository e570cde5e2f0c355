//! View of `lut_scanner.v`.

use askama::Template;

use super::header::header;
use super::tree::{reduction_tree, TreeLevel};
use kvpq_core::spec::{unsigned_bits, Accelerator};

/// Template data of the LUT scanner.
#[derive(Template)]
#[template(path = "verilog/lut_scanner.v")]
pub struct ScannerV {
    header: String,
    m: u32,
    k: u32,
    code_bits: u32,
    lut_bits: u32,
    score_bits: u32,
    lanes: u32,
    tokens_per_beat: u32,
    groups: u32,
    group_w: u32,
    group_bits: u32,
    beat_bits: u32,
    index_w: u32,
    count_w: u32,
    ctr_w: u32,
    m_w: u32,
    subspaces: Vec<u32>,
    tree: Vec<TreeLevel>,
    tree_levels: usize,
    stages: Vec<usize>,
    last_stage: usize,
}

impl ScannerV {
    /// Derives the template data from a validated accelerator.
    pub fn new(acc: &Accelerator) -> Self {
        let c = acc.config();
        let d = acc.derived();
        let w = &d.widths;
        let lanes = c.scanner.lanes;
        let tpb = d.layout.tokens_per_beat;
        let groups = tpb / lanes;
        // Stage 1 reads the LUT, stage 2 registers the entries (a block RAM output feeds a
        // register, not an adder); the adder tree levels follow.
        let tree = reduction_tree("t", c.pq.m as usize, 3);
        let last_stage = 2 + tree.len();
        let ctr_w =
            unsigned_bits(u64::from(c.engine.max_tokens) + u64::from(tpb)).max(w.index_bits + 1);
        Self {
            header: header(acc, "lut_scanner"),
            m: c.pq.m,
            k: w.codebook_size,
            code_bits: c.pq.code_bits,
            lut_bits: w.lut_bits,
            score_bits: w.score_bits,
            lanes,
            tokens_per_beat: tpb,
            groups,
            group_w: unsigned_bits(u64::from(groups - 1)),
            group_bits: lanes * w.token_bits,
            beat_bits: c.engine.beat_bits,
            index_w: w.index_bits,
            count_w: w.count_bits,
            ctr_w,
            m_w: unsigned_bits(u64::from(c.pq.m - 1)),
            subspaces: (0..c.pq.m).collect(),
            tree_levels: tree.len(),
            tree,
            stages: (1..=last_stage).collect(),
            last_stage,
        }
    }
}
