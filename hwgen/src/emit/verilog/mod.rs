//! Verilog emitters: one module per file, each rendered from a template under
//! `templates/verilog/` with the data its view derives from the accelerator.

mod board_top;
mod dist_unit;
mod engine;
pub(crate) mod header;
mod scanner;
mod topk;
pub mod tree;

use askama::Template;

use kvpq_core::interface::{Direction, Port};
use kvpq_core::spec::{Accelerator, TopKStrategy};

pub use board_top::BoardTopV;
pub use dist_unit::DistUnitV;
pub use engine::EngineV;
pub use kvpq_core::interface::BoardFormat;
pub use scanner::ScannerV;
pub use topk::{PopcountV, PrefixCountV, ResultUnpackV, TopKSelectV, TopKSystolicV};

pub use kvpq_core::manifest::SourceFile;

/// The ANSI declaration of `port`, e.g. `input  wire [511:0] code_data`, its range padded
/// to `pad` columns.
pub fn declaration(port: &Port, pad: usize) -> String {
    let kind = match (port.direction, port.registered) {
        (Direction::Input, _) => "input  wire",
        (Direction::Output, false) => "output wire",
        (Direction::Output, true) => "output reg ",
    };
    let range = if port.width > 1 {
        format!("[{}:0]", port.width - 1)
    } else {
        String::new()
    };
    format!("{kind} {range:<pad$} {}", port.name)
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
        TopKStrategy::Select => {
            files.push(file("popcount", PopcountV::new(acc).render())?);
            files.push(file("prefix_count", PrefixCountV::new(acc).render())?);
            files.push(file("topk_select", TopKSelectV::new(acc).render())?);
        }
    }
    files.push(file("pq_topk_engine", EngineV::new(acc).render())?);
    files.push(file("result_unpack", ResultUnpackV::new(acc).render())?);
    files.push(file("kvpq_board_top", BoardTopV::new(acc).render())?);
    Ok(files)
}
