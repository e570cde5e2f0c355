//! View of `pq_dist_unit.v`.

use askama::Template;

use super::header::header;
use super::topk::zext;
use kvpq_core::interface::Streams;
use kvpq_core::spec::{unsigned_bits, Accelerator};

/// Template data of the PQ distance unit.
#[derive(Template)]
#[template(path = "verilog/pq_dist_unit.v")]
pub struct DistUnitV {
    header: String,
    m: u32,
    k: u32,
    sub: u32,
    query_bits: u32,
    centroid_bits: u32,
    lut_bits: u32,
    acc_bits: u32,
    prod_bits: u32,
    macs: u32,
    groups: u32,
    code_bits: u32,
    cb_data_w: u32,
    q_data_w: u32,
    m_w: u32,
    shift_w: u32,
    len_w: u32,
    group_w: u32,
    sub_w: u32,
    addr_w: u32,
    macs_log2: u32,
    macs_w: u32,
    group_m_expr: String,
    group_c_expr: String,
    heads: u32,
    head_w: u32,
    full_addr_w: u32,
    cb_head_ext: String,
    q_head_ext: String,
    wr_addr_ext: String,
    rd_addr_ext: String,
}

impl DistUnitV {
    /// Derives the template data from a validated accelerator.
    pub fn new(acc: &Accelerator) -> Self {
        let c = acc.config();
        let w = &acc.derived().widths;
        let (m, k, macs) = (c.pq.m, w.codebook_size, c.dist_unit.macs);
        let groups = m * k / macs;
        let group_w = unsigned_bits(u64::from(groups - 1));
        let m_w = unsigned_bits(u64::from(m - 1));
        // A group is `k / macs` groups into its subspace: split the group counter into
        // (subspace, first centroid) without a divider.
        let per_m_bits = (k / macs).trailing_zeros();
        let macs_bits = macs.trailing_zeros();
        let group_m_expr = match (m, per_m_bits) {
            (1, _) => "1'b0".to_string(),
            (_, 0) => format!("group_q[{}:0]", m_w - 1),
            (_, s) => format!("group_q[{}:{s}]", group_w - 1),
        };
        let group_c_expr = match (per_m_bits, macs_bits) {
            (0, _) => format!("{}'d0", c.pq.code_bits),
            (s, 0) => format!("group_q[{}:0]", s - 1),
            (s, t) => format!("{{ group_q[{}:0], {t}'d0 }}", s - 1),
        };
        let streams = Streams::of(acc);
        let heads = c.engine.heads();
        let addr_w = unsigned_bits(u64::from(groups * w.sub_dim - 1))
            .max(unsigned_bits(u64::from(w.sub_dim - 1)));
        // Address bits of every slot's GROUPS*SUB elements (at least the one-slot width).
        let full_addr_w =
            unsigned_bits(u64::from(heads) * u64::from(groups * w.sub_dim) - 1).max(addr_w);
        Self {
            header: header(acc, "pq_dist_unit"),
            m,
            k,
            sub: w.sub_dim,
            query_bits: w.query_bits,
            centroid_bits: w.centroid_bits,
            lut_bits: w.lut_bits,
            acc_bits: w.acc_bits,
            prod_bits: w.query_bits + w.centroid_bits,
            macs,
            groups,
            code_bits: c.pq.code_bits,
            cb_data_w: streams.cb_data,
            q_data_w: streams.q_data,
            m_w,
            shift_w: w.shift_bits,
            len_w: unsigned_bits(u64::from(w.acc_bits)),
            group_w,
            sub_w: unsigned_bits(u64::from(w.sub_dim - 1)),
            macs_log2: macs.trailing_zeros(),
            addr_w,
            macs_w: unsigned_bits(u64::from(macs - 1)),
            group_m_expr,
            group_c_expr,
            heads,
            head_w: streams.head,
            full_addr_w,
            cb_head_ext: zext("cb_head", streams.head, full_addr_w),
            q_head_ext: zext("q_head", streams.head, full_addr_w),
            wr_addr_ext: zext("cb_wr_addr", addr_w, full_addr_w),
            rd_addr_ext: zext("rd_addr", addr_w, full_addr_w),
        }
    }
}
