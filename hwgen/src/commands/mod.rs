//! What the `hwgen` subcommands compute and print; the binary only parses arguments.

pub mod build;
pub mod check;
pub mod estimate;
pub mod explore;
pub mod generate;
pub mod golden;
pub mod lint;
pub mod report;
