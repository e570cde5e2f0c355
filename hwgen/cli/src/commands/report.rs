//! `hwgen report DIR`: what a generated folder's manifest knows, as tables: the design, its
//! cycle model projected at the description's clock (throughput from the interval between
//! queries, top-k included), then each target's section (`Target::report`): every
//! UltraScale+ estimate (per lane as well), and the ECP5 build: used and available
//! resources, Fmax, the same projection at the achieved clock.

use std::fmt::Write;
use std::path::Path;

use anyhow::{Context, Result};

use super::estimate::read_manifest;
use hwgen::{projection, targets};

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
    let _ = writeln!(
        o,
        "projected at the description's {:.1} MHz (k from the retrieval policy, at most k_max; \
         interval = max(LUT build, scan, top-k per query)):",
        c.target.clock_mhz
    );
    o.push_str(&projection::table(&acc, c.target.clock_mhz, "  "));
    // Each target prints what the manifest records of it: estimates, then the bitstream.
    let sections: Vec<String> = targets::all()
        .iter()
        .filter_map(|t| t.report(&acc, &m))
        .collect();
    if sections.is_empty() {
        let _ = writeln!(
            o,
            "no resource numbers yet: `hwgen estimate {}` (UltraScale+) or `hwgen build \
             CONFIG --target ecp5` (ECP5 bitstream)",
            dir.display()
        );
    }
    for s in sections {
        o.push_str(&s);
    }
    Ok(out)
}
