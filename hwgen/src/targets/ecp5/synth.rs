//! ECP5 resource counts from Yosys `synth_ecp5` alone (no place and route): what design-space
//! exploration needs per point, in seconds to minutes rather than the full flow's time.

use std::path::Path;

use serde::Serialize;

use crate::flow::tools::{Tool, ToolError};

/// Cells of a synthesized ECP5 design.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Ecp5Cells {
    /// LUT4 sites: LUT4 cells, two per CCU2C carry cell, two per distributed RAM cell.
    pub lut4: u64,
    /// Flip-flops.
    pub ff: u64,
    /// 18 Kbit block RAMs.
    pub bram: u64,
    /// 18x18 multipliers.
    pub dsp: u64,
}

/// Counts the cells of `stat` output after `synth_ecp5` (flattened: one module).
pub fn parse_ecp5_stat(log: &str) -> Ecp5Cells {
    let mut c = Ecp5Cells::default();
    for line in log.lines() {
        let mut parts = line.split_whitespace();
        let (Some(n), Some(cell), None) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        match cell {
            "LUT4" => c.lut4 += n,
            "CCU2C" | "TRELLIS_DPR16X4" => c.lut4 += 2 * n,
            "TRELLIS_FF" => c.ff += n,
            "DP16KD" | "PDPW16KD" => c.bram += n,
            "MULT18X18D" => c.dsp += n,
            _ => {}
        }
    }
    c
}

/// Synthesizes `top` of `files` (in `dir`) for ECP5 and counts its cells.
pub fn synth_ecp5_cells(dir: &Path, files: &[String], top: &str) -> Result<Ecp5Cells, ToolError> {
    let tool = Tool::yosys()?;
    let script = format!(
        "read_verilog -I. {}\nsynth_ecp5 -top {top}\ntee -o ecp5_{top}.stat stat\n",
        files.join(" ")
    );
    let io = |what: String| move |source| ToolError::Io { what, source };
    let ys = dir.join(format!("ecp5_{top}.ys"));
    std::fs::write(&ys, script).map_err(io(format!("writing {}", ys.display())))?;
    let log_name = format!("ecp5_{top}.log");
    let log = dir.join(&log_name);
    let _ = std::fs::remove_file(&log);
    tool.run(
        dir,
        &["-q", "-l", &log_name, &format!("ecp5_{top}.ys")],
        &log,
    )?;
    let stat = dir.join(format!("ecp5_{top}.stat"));
    let text = std::fs::read_to_string(&stat).map_err(io(format!("reading {}", stat.display())))?;
    Ok(parse_ecp5_stat(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lut_sites_like_nextpnr() {
        let c = parse_ecp5_stat(
            "=== top ===\n   120 LUT4\n    10 CCU2C\n     4 TRELLIS_DPR16X4\n    77 TRELLIS_FF\n     2 DP16KD\n     1 MULT18X18D\n   300 cells\n",
        );
        assert_eq!(
            c,
            Ecp5Cells {
                lut4: 120 + 20 + 8,
                ff: 77,
                bram: 2,
                dsp: 1
            }
        );
    }
}
