//! Yosys synthesis checks and cell counts.

use std::collections::BTreeMap;
use std::path::Path;

use super::tools::{Tool, ToolError};

/// Cells per module after synthesis, excluding submodules.
pub type CellCounts = BTreeMap<String, u64>;

/// What to run after reading the design.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynthMode {
    /// `synth -top TOP`: generic gates, memories mapped to flip-flops.
    Full,
    /// `synth` up to the gate level but with memories kept as memory cells (fast for designs
    /// with large buffers; cell counts then count a memory as one cell).
    KeepMemories,
}

/// Synthesizes `files` (names inside `dir`) with Yosys and asserts the result is clean: no
/// latches after `proc`, and `check -assert` (no undriven nets, multiple drivers or logic
/// loops). Returns the cell count of every module.
pub fn synth_check(
    dir: &Path,
    files: &[String],
    top: &str,
    mode: SynthMode,
) -> Result<CellCounts, ToolError> {
    let tool = Tool::yosys()?;
    let script_name = format!("synth_{top}.ys");
    let log_name = format!("synth_{top}.log");
    let body = match mode {
        SynthMode::Full => format!("synth -top {top}\n"),
        SynthMode::KeepMemories => format!(
            "synth -top {top} -run begin:fine\nopt -fast -full\ntechmap\nopt -fast\nabc\nopt -fast\n"
        ),
    };
    let script = format!(
        "read_verilog {files}\nhierarchy -check -top {top}\nproc\n\
         select -assert-none t:$dlatch t:$adlatch t:$dlatchsr t:$sr\n{body}check -assert\nstat\n",
        files = files.join(" "),
    );
    std::fs::write(dir.join(&script_name), script).map_err(|source| ToolError::Io {
        what: format!("writing {}", dir.join(&script_name).display()),
        source,
    })?;
    let log = dir.join(&log_name);
    let _ = std::fs::remove_file(&log);
    tool.run(dir, &["-q", "-l", &log_name, &script_name], &log)?;
    let text = std::fs::read_to_string(&log).map_err(|source| ToolError::Io {
        what: format!("reading {}", log.display()),
        source,
    })?;
    Ok(parse_stat(&text))
}

/// Cell counts per module from the output of `stat`.
pub fn parse_stat(log: &str) -> CellCounts {
    let mut counts = CellCounts::new();
    let mut module: Option<String> = None;
    for line in log.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("=== ").and_then(|r| r.strip_suffix(" ===")) {
            module = (name != "design hierarchy").then(|| name.to_string());
            continue;
        }
        if let Some(m) = &module {
            let mut parts = t.split_whitespace();
            if let (Some(n), Some("cells"), None) = (parts.next(), parts.next(), parts.next()) {
                if let Ok(n) = n.parse() {
                    counts.entry(m.clone()).or_insert(n);
                }
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_yosys_070_stat() {
        let log = "=== lut_scanner ===\n\n        +----------Local Count, excluding submodules.\n        | \n      163 wires\n     3086 cells\n       14   $_ANDNOT_\n\n=== design hierarchy ===\n    18305 cells\n";
        let c = parse_stat(log);
        assert_eq!(c.get("lut_scanner"), Some(&3086));
        assert_eq!(c.len(), 1);
    }
}
