//! `hwgen report DIR`: what a generated folder's manifest knows, as tables: the design, its
//! cycle model, every UltraScale+ estimate (per lane as well), and the ECP5 build: used and
//! available resources, Fmax, projected tokens/s and latency per query.

use std::fmt::Write;
use std::path::Path;

use anyhow::{Context, Result};

use super::build::Ecp5Record;
use super::estimate::read_manifest;
use crate::flow::ecp5::Usage;
use crate::flow::xilinx::Estimate;
use crate::spec::{Accelerator, AcceleratorConfig};

/// Renders the report of the folder `dir`.
pub fn run(dir: &Path) -> Result<String> {
    let m = read_manifest(dir)?;
    let cfg = &m["config"];
    let name = cfg["name"]
        .as_str()
        .context("manifest has no config.name")?;
    let lanes = cfg["scanner"]["lanes"]
        .as_u64()
        .context("manifest has no scanner.lanes")?;
    let clock = cfg["target"]["clock_mhz"].as_f64().unwrap_or(0.0);
    let mut out = String::new();
    let o = &mut out;
    let _ = writeln!(
        o,
        "`{name}` ({}): head_dim {} m {} code_bits {} lut_bits {} | {lanes} lanes | topk {} k_max {} | target {} @ {clock} MHz",
        m["generator"].as_str().unwrap_or("?"),
        cfg["pq"]["head_dim"],
        cfg["pq"]["m"],
        cfg["pq"]["code_bits"],
        cfg["quant"]["lut_bits"],
        cfg["topk"]["strategy"].as_str().unwrap_or("?"),
        cfg["topk"]["k_max"],
        cfg["target"]["platform"].as_str().unwrap_or("?"),
    );
    let cycles = &m["derived"]["cycles"];
    let _ = writeln!(
        o,
        "cycle model: LUT build {} cycles, scanner depth {} cycles; content hash {}",
        cycles["lut_build"],
        cycles["scan_depth"],
        m["content_hash"].as_str().unwrap_or("?")
    );
    let xcup = m["estimates"]["xcup"].as_object();
    match xcup {
        None if m.get("ecp5").is_none() => {
            let _ = writeln!(
                o,
                "no resource numbers yet: `hwgen estimate {}` (UltraScale+) or `hwgen build \
                 CONFIG --target ecp5` (ECP5 bitstream)",
                dir.display()
            );
        }
        None => {}
        Some(tops) => {
            for (top, value) in tops {
                let e: Estimate = serde_json::from_value(value.clone())
                    .with_context(|| format!("manifest estimates.xcup.{top}"))?;
                let _ = write!(o, "{e}");
                let t = e.total;
                let per = |v: u64| v as f64 / lanes as f64;
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
        }
    }
    if let Some(ecp5) = m.get("ecp5") {
        let r: Ecp5Record =
            serde_json::from_value(ecp5.clone()).context("manifest `ecp5` record")?;
        let config: AcceleratorConfig = serde_json::from_value(cfg.clone())
            .context("manifest `config` is not a valid description")?;
        let acc = Accelerator::new(config).context("manifest `config` does not validate")?;
        write_ecp5(o, &acc, &r);
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
