//! `verilator --lint-only -Wall` over generated RTL.

use std::path::Path;

use super::tools::{Tool, ToolError};

/// Lints the Verilog `files` (names inside `dir`) with `top` as the top module. Any warning
/// fails: -Wall output is an error.
pub fn verilator_lint(dir: &Path, files: &[String], top: &str) -> Result<(), ToolError> {
    let tool = Tool::verilator()?;
    let mut args = vec!["--lint-only", "-Wall", "--top-module", top];
    args.extend(files.iter().map(String::as_str));
    tool.run(dir, &args, &dir.join(format!("lint_{top}.log")))
}
