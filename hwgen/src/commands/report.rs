//! `hwgen report DIR`: what a generated folder's manifest knows, as tables: the design, its
//! cycle model, and every resource estimate recorded in it (per lane as well).

use std::fmt::Write;
use std::path::Path;

use anyhow::{Context, Result};

use super::estimate::read_manifest;
use crate::flow::xilinx::Estimate;

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
        None => {
            let _ = writeln!(
                o,
                "no UltraScale+ estimate yet: run `hwgen estimate {}`",
                dir.display()
            );
        }
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
    Ok(out)
}
