//! Printing the ECP5 build a manifest records (parsing nextpnr's report is
//! [`super::flow`]'s job): Fmax against the constraint, used and available resources, and
//! the scan rate and latency projected at the achieved clock.

use std::fmt::Write;

use kvpq_core::manifest::{Ecp5Record, Usage};
use kvpq_core::spec::Accelerator;

/// Context lengths the latency projection is printed for.
const PROJECT_TOKENS: [u32; 2] = [32768, 131072];

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
    // matches: scan efficiency within 0.1 %, latency within 2.3 %).
    let c = acc.config();
    let cycles = &acc.derived().cycles;
    let hz = f.achieved * 1e6;
    let max_n = c.engine.max_tokens;
    let eff = cycles.scan_efficiency(u64::from(max_n));
    let _ = writeln!(
        o,
        "  projected scan rate: {} lanes x {:.1} MHz x {eff:.4} efficiency = {:.1} M tokens/s",
        c.scanner.lanes,
        f.achieved,
        f64::from(c.scanner.lanes) * hz * eff / 1e6
    );
    let mut lengths: Vec<u32> = PROJECT_TOKENS
        .iter()
        .copied()
        .filter(|&n| n <= max_n)
        .collect();
    if lengths.len() < PROJECT_TOKENS.len() {
        lengths.push(max_n); // the longest context the engine takes
    }
    for n in lengths {
        let k = acc.policy_k(n).min(c.topk.k_max);
        let lat = cycles.query_latency(u64::from(n), u64::from(k));
        let _ = writeln!(
            o,
            "  latency at N = {n}, k = {k}: {lat} cycles = {:.1} us per query (LUT build {} cycles, hidden when queries stream)",
            lat as f64 / hz * 1e6,
            cycles.lut_build
        );
    }
    out
}
