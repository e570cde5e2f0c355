//! `hwgen report DIR`: what a generated folder's manifest knows, as tables: the design, its
//! cycle model, every UltraScale+ estimate (per lane as well), and the ECP5 build: used and
//! available resources, Fmax, projected tokens/s and latency per query.

use std::fmt::Write;
use std::path::Path;

use anyhow::{Context, Result};

use super::estimate::read_manifest;
use kvpq_core::manifest::{Ecp5Record, Usage};
use kvpq_core::spec::Accelerator;

/// Renders the report of the folder `dir`.
pub fn run(dir: &Path) -> Result<String> {
    let m = read_manifest(dir)?;
    let acc = m.accelerator().context("manifest `config`")?;
    let c = &m.config;
    let lanes = c.scanner.lanes;
    let mut out = String::new();
    let o = &mut out;
    let _ = writeln!(
        o,
        "`{}` ({}): head_dim {} m {} code_bits {} lut_bits {} | {lanes} lanes | topk {} k_max {} | target {} @ {} MHz",
        c.name,
        m.generator,
        c.pq.head_dim,
        c.pq.m,
        c.pq.code_bits,
        c.quant.lut_bits,
        c.topk.strategy,
        c.topk.k_max,
        c.target.platform,
        c.target.clock_mhz,
    );
    let cycles = &m.derived.cycles;
    let _ = writeln!(
        o,
        "cycle model: LUT build {} cycles, scanner depth {} cycles; content hash {}",
        cycles.lut_build, cycles.scan_depth, m.content_hash
    );
    if m.estimates.is_empty() && m.ecp5.is_none() {
        let _ = writeln!(
            o,
            "no resource numbers yet: `hwgen estimate {}` (UltraScale+) or `hwgen build \
             CONFIG --target ecp5` (ECP5 bitstream)",
            dir.display()
        );
    }
    for e in m.estimates.xcup.values() {
        let _ = write!(o, "{e}");
        let t = e.total;
        let per = |v: u64| v as f64 / f64::from(lanes);
        let _ = writeln!(
            o,
            "  per lane (total / {lanes}): {:.0} LUT, {:.0} FF, {:.1} BRAM18, {:.2} DSP",
            per(t.lut),
            per(t.ff),
            per(t.bram18),
            per(t.dsp)
        );
        if let Some(s) = e.modules.get("lut_scanner") {
            let _ = writeln!(
                o,
                "  scanner per lane: {:.0} LUT ({:.0} as LUT-RAM), {:.0} FF, {:.1} BRAM18, {:.2} DSP",
                per(s.lut),
                per(s.lutram),
                per(s.ff),
                per(s.bram18),
                per(s.dsp)
            );
        }
    }
    if let Some(r) = &m.ecp5 {
        write_ecp5(o, &acc, r);
    }
    Ok(out)
}

/// Context lengths the latency projection is printed for.
const PROJECT_TOKENS: [u32; 2] = [32768, 131072];

fn write_ecp5(o: &mut String, acc: &Accelerator, r: &Ecp5Record) {
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
}
