//! `hwgen lint`: generates the RTL and checks it with Verilator (-Wall) and Yosys (synthesis,
//! no latches, `check -assert`); reports the cell count of every module.

use std::fmt;
use std::path::Path;

use anyhow::{Context, Result};

use hwgen::emit::Design;
use hwgen::flow::lint::verilator_lint;
use hwgen::flow::yosys::{synth_check, CellCounts, SynthMode};
use kvpq_core::spec::Accelerator;

/// Top module the checks start from: it instantiates every other module.
pub const CHECK_TOP: &str = "kvpq_board_top";

/// Tops to check in a design: the board top, and the Alveo kernel when there is one (both
/// instantiate the engine).
pub fn check_tops(design: &Design) -> Vec<&'static str> {
    let mut tops = vec![CHECK_TOP];
    if design.manifest.interface.kernel.is_some() {
        tops.push(hwgen::targets::alveo::RTL_KERNEL);
    }
    tops
}

/// Result of a clean check.
#[derive(Debug, Clone, PartialEq)]
pub struct LintReport {
    /// Accelerator name.
    pub name: String,
    /// Cells per module (excluding submodules).
    pub cells: CellCounts,
    /// How Yosys synthesized.
    pub mode: SynthMode,
}

impl fmt::Display for LintReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match self.mode {
            SynthMode::Full => "generic gates, memories as flip-flops",
            SynthMode::KeepMemories => "generic gates, memories kept as one cell each",
        };
        writeln!(
            f,
            "`{}`: verilator -Wall clean, yosys synth + check -assert clean ({how})",
            self.name
        )?;
        writeln!(f, "  {:<16} {:>10}", "module", "cells")?;
        for (module, n) in &self.cells {
            writeln!(f, "  {module:<16} {n:>10}")?;
        }
        write!(
            f,
            "  {:<16} {:>10}",
            "total",
            self.cells.values().sum::<u64>()
        )
    }
}

/// Generates `acc` into `dir` and runs both checks.
pub fn run(acc: &Accelerator, dir: &Path, mode: SynthMode) -> Result<LintReport> {
    let design = Design::render(acc).context("rendering RTL")?;
    design.write(dir).context("writing RTL")?;
    let files = design.verilog_files();
    let mut cells = CellCounts::new();
    for top in check_tops(&design) {
        verilator_lint(dir, &files, top).with_context(|| format!("verilator lint of {top}"))?;
        let counts = synth_check(dir, &files, top, mode)
            .with_context(|| format!("yosys synthesis check of {top}"))?;
        for (module, n) in counts {
            cells.entry(module).or_insert(n);
        }
    }
    Ok(LintReport {
        name: acc.config().name.clone(),
        cells,
        mode,
    })
}
