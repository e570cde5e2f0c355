//! Verilog emitters: one module per file, each rendered from a template under
//! `templates/verilog/` with the data its view derives from the accelerator.

mod board_top;
mod dist_unit;
mod engine;
pub(crate) mod header;
pub mod ports;
mod scanner;
mod topk;
pub mod tree;

use askama::Template;

use crate::spec::{Accelerator, TopKStrategy};

pub use board_top::{BoardFormat, BoardTopV};
pub use dist_unit::DistUnitV;
pub use engine::EngineV;
pub use scanner::ScannerV;
pub use topk::{TopKSelectV, TopKSystolicV};

/// One generated source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Module defined by the file.
    pub module: String,
    /// File name, e.g. `lut_scanner.v`.
    pub file_name: String,
    /// File contents.
    pub text: String,
}

fn file(
    module: &str,
    rendered: Result<String, askama::Error>,
) -> Result<SourceFile, askama::Error> {
    Ok(SourceFile {
        module: module.to_string(),
        file_name: format!("{module}.v"),
        // Templates drop their final newline; POSIX text files end with one.
        text: rendered? + "\n",
    })
}

/// Renders every Verilog module of the accelerator, leaves first, then the engine and the
/// byte-stream board top.
pub fn render(acc: &Accelerator) -> Result<Vec<SourceFile>, askama::Error> {
    let mut files = vec![
        file("pq_dist_unit", DistUnitV::new(acc).render())?,
        file("lut_scanner", ScannerV::new(acc).render())?,
    ];
    match acc.config().topk.strategy {
        TopKStrategy::Systolic => {
            files.push(file("topk_systolic", TopKSystolicV::new(acc).render())?)
        }
        TopKStrategy::Select => files.push(file("topk_select", TopKSelectV::new(acc).render())?),
    }
    files.push(file("pq_topk_engine", EngineV::new(acc).render())?);
    files.push(file("kvpq_board_top", BoardTopV::new(acc).render())?);
    Ok(files)
}
