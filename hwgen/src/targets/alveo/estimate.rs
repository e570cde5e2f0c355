//! UltraScale+ resource estimates: Yosys `synth_xilinx -family xcup` (the U280/U55C fabric)
//! on generated RTL, with the mapped cells counted per module as Vivado's utilization report
//! would group them: LUTs (logic and LUT-RAM), flip-flops, BRAM18 equivalents, UltraRAMs
//! (`-uram`: large memories such as the codebooks of every head go to URAM288) and DSPs.

use std::collections::BTreeMap;
use std::path::Path;

pub use kvpq_core::manifest::{Estimate, Resources};

use crate::flow::tools::{Tool, ToolError};

/// Label of the estimate's only step, for progress reporting.
pub const STEP: &str = "yosys synth_xilinx -family xcup";

/// Adds `n` cells of Xilinx primitive `cell` to `r`.
fn add_cell(r: &mut Resources, cell: &str, n: u64) {
    // LUT sites per distributed-RAM primitive (UltraScale+ CLB: 8 LUTs per SLICEM).
    let lut_ram = match cell {
        "RAM32M16" | "RAM64M8" | "RAM512X1S" => 8,
        "RAM32M" | "RAM64M" | "RAM256X1S" | "RAM256X1D" | "RAM128X1D" => 4,
        "RAM32X1D" | "RAM64X1D" | "RAM128X1S" => 2,
        "RAM32X1S" | "RAM64X1S" | "SRL16E" | "SRLC16E" | "SRLC32E" => 1,
        _ => 0,
    };
    if lut_ram > 0 {
        r.lut += lut_ram * n;
        r.lutram += lut_ram * n;
    } else if cell.starts_with("LUT") {
        r.lut += n;
    } else if matches!(cell, "FDRE" | "FDSE" | "FDCE" | "FDPE") {
        r.ff += n;
    } else if cell == "RAMB18E2" {
        r.bram18 += n;
    } else if cell == "RAMB36E2" {
        r.bram18 += 2 * n;
    } else if cell == "URAM288" || cell == "URAM288_BASE" {
        r.uram += n;
    } else if cell.starts_with("DSP48") {
        r.dsp += n;
    } else if cell.starts_with("CARRY") {
        r.carry += n;
    }
}

/// The module a Yosys module name stands for: a parameterized copy is named
/// `$paramod\NAME\PARAM=...` (or `$paramod$<hash>\NAME`); its parameterizations are summed.
fn module_name(yosys: &str) -> &str {
    match yosys.strip_prefix("$paramod") {
        Some(rest) => rest.split('\\').nth(1).unwrap_or(yosys),
        None => yosys,
    }
}

/// Parses the output of `stat` after `synth_xilinx` without flattening: each module's local
/// cell list, and the design total (the `design hierarchy` section, or the only module).
pub fn parse_xilinx_stat(log: &str, top: &str, flow: &str) -> Estimate {
    let mut modules: BTreeMap<String, Resources> = BTreeMap::new();
    let mut hierarchy = Resources::default();
    let mut seen_hierarchy = false;
    let mut section: Option<String> = None;
    for line in log.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("=== ").and_then(|r| r.strip_suffix(" ===")) {
            section = Some(module_name(name).to_string());
            seen_hierarchy |= name == "design hierarchy";
            continue;
        }
        let Some(sec) = &section else { continue };
        let mut parts = t.split_whitespace();
        let (Some(n), Some(cell), None) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        if sec == "design hierarchy" {
            add_cell(&mut hierarchy, cell, n);
        } else {
            let r = modules.entry(sec.clone()).or_default();
            add_cell(r, cell, n);
        }
    }
    let total = if seen_hierarchy {
        hierarchy
    } else {
        modules.values().fold(Resources::default(), |mut a, r| {
            a += *r;
            a
        })
    };
    Estimate {
        flow: flow.to_string(),
        top: top.to_string(),
        total,
        modules,
    }
}

/// Runs `synth_xilinx -family xcup` on `files` (names inside `dir`) and returns the estimate.
/// The script and log are left in `dir` as `xcup_<top>.ys` and `xcup_<top>.log`.
pub fn estimate_xcup(dir: &Path, files: &[String], top: &str) -> Result<Estimate, ToolError> {
    let tool = Tool::yosys()?;
    let flow = format!("yosys synth_xilinx -family xcup -uram -top {top}");
    let script_name = format!("xcup_{top}.ys");
    let log_name = format!("xcup_{top}.log");
    let script = format!(
        "read_verilog -I. {}\nsynth_xilinx -family xcup -uram -top {top}\ntee -o xcup_{top}.stat stat\n",
        files.join(" ")
    );
    let io = |what: String| move |source| ToolError::Io { what, source };
    std::fs::write(dir.join(&script_name), script)
        .map_err(io(format!("writing {}", dir.join(&script_name).display())))?;
    let log = dir.join(&log_name);
    let _ = std::fs::remove_file(&log);
    tool.run(dir, &["-q", "-l", &log_name, &script_name], &log)?;
    let stat_path = dir.join(format!("xcup_{top}.stat"));
    let text = std::fs::read_to_string(&stat_path)
        .map_err(io(format!("reading {}", stat_path.display())))?;
    Ok(parse_xilinx_stat(&text, top, &flow))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "
=== leaf ===

     6381 cells
      347   CARRY4
     3298   FDRE
      707   LUT2
       60   LUT4
      504   RAM64M8

=== top ===

       61   FDRE
        2   FDSE
       31   LUT6
        3   RAMB36E2
        1   RAMB18E2
        2   DSP48E2
        1   leaf

=== design hierarchy ===

     3360   FDRE
        2   FDSE
      707   LUT2
       60   LUT4
       31   LUT6
     504    RAM64M8
        3   RAMB36E2
        1   RAMB18E2
        2   DSP48E2
      347   CARRY4
";

    #[test]
    fn counts_primitives_the_way_vivado_groups_them() {
        let e = parse_xilinx_stat(LOG, "top", "test");
        let leaf = e.modules["leaf"];
        assert_eq!(leaf.lut, 707 + 60 + 8 * 504);
        assert_eq!(leaf.lutram, 8 * 504);
        assert_eq!(leaf.ff, 3298);
        assert_eq!(leaf.carry, 347);
        let top = e.modules["top"];
        assert_eq!((top.ff, top.lut, top.bram18, top.dsp), (63, 31, 7, 2));
        assert_eq!(e.total.ff, 3362);
        assert_eq!(e.total.lut, 707 + 60 + 31 + 8 * 504);
        assert_eq!(e.total.bram18, 7);
        assert_eq!(e.total.dsp, 2);
    }

    #[test]
    fn parameterized_copies_count_as_their_module() {
        let log = "=== $paramod\\rd\\DATA_W=s32'00000000000000000000000000100000 ===\n 3 FDRE\n\
                   === $paramod$8a1b\\rd ===\n 4 FDRE\n=== rd2 ===\n 1 LUT1\n";
        let e = parse_xilinx_stat(log, "top", "test");
        assert_eq!(e.modules["rd"].ff, 7);
        assert_eq!(e.modules["rd2"].lut, 1);
    }

    #[test]
    fn a_flat_design_sums_its_only_module() {
        let e = parse_xilinx_stat("=== top ===\n 5 LUT3\n 4 FDRE\n", "top", "test");
        assert_eq!((e.total.lut, e.total.ff), (5, 4));
    }
}
