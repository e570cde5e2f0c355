//! Views of the top-k units.

use askama::Template;

use super::header::header;
use super::tree::{reduction_tree, TreeLevel};
use kvpq_core::spec::{unsigned_bits, Accelerator};

/// Template data of the systolic top-k unit.
#[derive(Template)]
#[template(path = "verilog/topk_systolic.v")]
pub struct TopKSystolicV {
    header: String,
    lanes: u32,
    k_max: u32,
    score_bits: u32,
    index_w: u32,
    k_w: u32,
    lane_w: u32,
    res_lanes: u32,
    res_n_w: u32,
    lane_ids: Vec<u32>,
    tree: Vec<TreeLevel>,
    tree_levels: usize,
}

impl TopKSystolicV {
    /// Derives the template data from a validated accelerator.
    pub fn new(acc: &Accelerator) -> Self {
        let c = acc.config();
        let w = &acc.derived().widths;
        let tree = reduction_tree("m", c.scanner.lanes as usize, 0);
        Self {
            header: header(acc, "topk_systolic"),
            lanes: c.scanner.lanes,
            k_max: c.topk.k_max,
            score_bits: w.score_bits,
            index_w: w.index_bits,
            k_w: w.k_bits,
            lane_w: unsigned_bits(u64::from(c.scanner.lanes - 1)),
            res_lanes: w.result_lanes,
            res_n_w: unsigned_bits(u64::from(w.result_lanes)),
            lane_ids: (0..c.scanner.lanes).collect(),
            tree_levels: tree.len(),
            tree,
        }
    }
}

/// The constant whose bit `b * lanes + l` is bit b of the number l, as a Verilog hex literal:
/// the picker reads a slot's lane number out of its one-hot row with it.
fn lane_bits(lanes: u32, lane_w: u32) -> String {
    let width = (lanes * lane_w) as usize;
    let bit = |i: usize| (i % lanes as usize) >> (i / lanes as usize) & 1;
    let digits: String = (0..width.div_ceil(4))
        .rev()
        .map(|d| {
            let nibble = (0..4)
                .filter(|j| 4 * d + j < width)
                .map(|j| bit(4 * d + j) << j)
                .sum::<usize>();
            char::from_digit(nibble as u32, 16).unwrap_or('0')
        })
        .collect();
    format!("{width}'h{digits}")
}

/// `{ pad'd0, expr }`: zero-extends `expr` of `from` bits to `to` bits.
pub(super) fn zext(expr: &str, from: u32, to: u32) -> String {
    if to > from {
        format!("{{ {}'d0, {expr} }}", to - from)
    } else {
        expr.to_string()
    }
}

/// `expr` of `from` bits as `to` bits: zero-extended, or cut when the value is known to fit.
fn resize(expr: &str, from: u32, to: u32) -> String {
    if from > to {
        format!("{expr}[{}:0]", to - 1)
    } else {
        zext(expr, from, to)
    }
}

/// Template data of the threshold-selection top-k unit.
#[derive(Template)]
#[template(path = "verilog/topk_select.v")]
pub struct TopKSelectV {
    header: String,
    lanes: u32,
    tl: u32,
    read_beats: u32,
    beat_w: u32,
    k_max: u32,
    score_bits: u32,
    index_w: u32,
    k_w: u32,
    count_w: u32,
    ctr_w: u32,
    radix_bits: u32,
    digits: u32,
    bins: u32,
    words: u32,
    word_w: u32,
    digit_w: u32,
    lane_w: u32,
    key_of_expr: String,
    digit0_expr: String,
    slot_lane_ext: String,
    take_n_k: String,
    n_q_ext: String,
    count_ext_expr: String,
    lw: u32,
    flw: u32,
    rank_w: u32,
    res_lanes: u32,
    res_n_w: u32,
    ties_left_ext: String,
    hits_ext: String,
    fhits_ext: String,
    lane_bits: String,
}

impl TopKSelectV {
    /// Derives the template data from a validated accelerator.
    pub fn new(acc: &Accelerator) -> Self {
        let c = acc.config();
        let d = acc.derived();
        let w = &d.widths;
        // The unit's own lanes: a buffer word holds `read_beats` beats of the scanner's lanes.
        let lanes = w.topk_lanes;
        let read_beats = lanes / c.scanner.lanes;
        let r = d.cycles.radix_bits;
        let digits = d.cycles.radix_digits;
        let key_bits = digits * r;
        let key_pad = key_bits - w.score_bits;
        let words = c.engine.max_tokens.div_ceil(lanes);
        let digit_w = unsigned_bits(u64::from(digits - 1));
        let lane_w = unsigned_bits(u64::from(lanes - 1));
        let ctr_w = unsigned_bits(u64::from(c.engine.max_tokens) + u64::from(lanes))
            .max(w.index_bits + 1)
            .max(w.count_bits);
        // Lanes at or above a candidate in one word: at most min(lanes, max_tokens), so the
        // count's width suffices when the engine holds fewer tokens than a word has lanes.
        let lw = unsigned_bits(u64::from(lanes)).min(w.count_bits);
        let flw = unsigned_bits(u64::from(c.scanner.lanes)).min(w.count_bits);
        let res_n_w = unsigned_bits(u64::from(w.result_lanes));
        // Ties in one word are ranked up to the lane count, and compared with up to k_max.
        let rank_w = w.k_bits.max(unsigned_bits(u64::from(lanes)));
        let key_of_expr = if key_pad > 0 {
            format!("{{ ~s[SW-1], s[SW-2:0], {key_pad}'d0 }}")
        } else {
            "{ ~s[SW-1], s[SW-2:0] }".to_string()
        };
        // The key's top r bits, straight from the score (the key pads at the bottom).
        let sw = w.score_bits;
        let digit0_expr = match r {
            1 => "~s[SW-1]".to_string(),
            r if r <= sw => format!("{{ ~s[SW-1], s[SW-2:SW-{r}] }}"),
            r => format!("{{ ~s[SW-1], s[SW-2:0], {}'d0 }}", r - sw),
        };
        Self {
            header: header(acc, "topk_select"),
            lanes: c.scanner.lanes,
            tl: lanes,
            read_beats,
            beat_w: unsigned_bits(u64::from(read_beats - 1)),
            k_max: c.topk.k_max,
            score_bits: w.score_bits,
            index_w: w.index_bits,
            k_w: w.k_bits,
            count_w: w.count_bits,
            ctr_w,
            radix_bits: r,
            digits,
            bins: 1 << r,
            words,
            word_w: unsigned_bits(u64::from(words - 1)),
            digit_w,
            lane_w,
            lane_bits: lane_bits(lanes, lane_w),
            key_of_expr,
            digit0_expr,
            slot_lane_ext: zext("slot_lane[st*LANEW +: LANEW]", lane_w, ctr_w),
            take_n_k: resize("take_n", res_n_w, w.k_bits),
            n_q_ext: zext("sel_n_q", w.count_bits, ctr_w),
            count_ext_expr: zext("count_q", w.k_bits, w.count_bits),
            lw,
            flw,
            rank_w,
            res_lanes: w.result_lanes,
            res_n_w,
            ties_left_ext: zext("ties_left_q", w.k_bits, rank_w),
            hits_ext: zext("hits_q[vh*LW +: LW]", lw, w.count_bits),
            fhits_ext: zext("fhits_q[fh*FLW +: FLW]", flw, w.count_bits),
        }
    }
}

/// Template data of the popcount module (the select unit's counts across a word); its widths
/// are parameters.
#[derive(Template)]
#[template(path = "verilog/popcount.v")]
pub struct PopcountV {
    header: String,
}

impl PopcountV {
    /// Derives the template data from a validated accelerator.
    pub fn new(acc: &Accelerator) -> Self {
        Self {
            header: header(acc, "popcount"),
        }
    }
}

/// Template data of the prefix_count module (the select unit's tie ranks and picker ranks);
/// its widths are parameters.
#[derive(Template)]
#[template(path = "verilog/prefix_count.v")]
pub struct PrefixCountV {
    header: String,
}

impl PrefixCountV {
    /// Derives the template data from a validated accelerator.
    pub fn new(acc: &Accelerator) -> Self {
        Self {
            header: header(acc, "prefix_count"),
        }
    }
}

/// Template data of the result unpacker (result beats to one result per cycle).
#[derive(Template)]
#[template(path = "verilog/result_unpack.v")]
pub struct ResultUnpackV {
    header: String,
    res_lanes: u32,
    res_n_w: u32,
    index_w: u32,
    score_bits: u32,
}

impl ResultUnpackV {
    /// Derives the template data from a validated accelerator.
    pub fn new(acc: &Accelerator) -> Self {
        let w = &acc.derived().widths;
        Self {
            header: header(acc, "result_unpack"),
            res_lanes: w.result_lanes,
            res_n_w: unsigned_bits(u64::from(w.result_lanes)),
            index_w: w.index_bits,
            score_bits: w.score_bits,
        }
    }
}
