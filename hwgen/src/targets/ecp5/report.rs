//! Printing the ECP5 build a manifest records (parsing nextpnr's report is
//! [`super::flow`]'s job): Fmax against the constraint, used and available resources, and
//! the throughput and latency projected at the achieved clock ([`crate::projection`]).

use std::fmt::Write;

use crate::projection;
use kvpq_core::manifest::{Ecp5Record, Usage};
use kvpq_core::spec::Accelerator;

/// The table of the bitstream build `r` of `acc`, with projections.
pub fn bitstream(acc: &Accelerator, r: &Ecp5Record) -> String {
    let mut out = String::new();
    let o = &mut out;
    let f = r.fmax;
    let verdict = if f.achieved >= f.constraint {
        "met"
    } else {
        "missed"
    };
    let _ = writeln!(
        o,
        "ECP5 bitstream ({}, {}; {}): core clock {:.1} MHz achieved, {:.1} MHz wanted ({verdict})",
        r.board, r.device, r.bitstream, f.achieved, f.constraint
    );
    let _ = writeln!(
        o,
        "  {:<24} {:>8} {:>10} {:>6}",
        "resource", "used", "available", "%"
    );
    for (label, kind) in [
        ("LUT4 (TRELLIS_COMB)", "TRELLIS_COMB"),
        ("FF (TRELLIS_FF)", "TRELLIS_FF"),
        ("BRAM (DP16KD)", "DP16KD"),
        ("DSP (MULT18X18D)", "MULT18X18D"),
    ] {
        let u = r.utilization.get(kind).copied().unwrap_or(Usage {
            used: 0,
            available: 0,
        });
        let pct = if u.available > 0 {
            100.0 * u.used as f64 / u.available as f64
        } else {
            0.0
        };
        let _ = writeln!(
            o,
            "  {label:<24} {:>8} {:>10} {pct:>5.1}%",
            u.used, u.available
        );
    }
    // Projections at the achieved clock, from the cycle model (which the co-simulation
    // matches: scan within 0.1 %, latency within 2.3 %); throughput from the interval
    // between queries, so the top-k drain counts.
    let _ = writeln!(
        o,
        "  projected at the achieved {:.1} MHz (cycle model; k from the retrieval policy, at most \
         k_max; interval = max(LUT build {} cycles, scan, top-k per query)):",
        f.achieved,
        acc.derived().cycles.lut_build
    );
    o.push_str(&projection::table(acc, f.achieved, "  "));
    out
}
