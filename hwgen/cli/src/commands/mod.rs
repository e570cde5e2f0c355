//! One module per `hwgen` subcommand.

pub mod build;
pub mod check;
pub mod estimate;
pub mod explore;
pub mod generate;
pub mod golden;
pub mod lint;
pub mod report;
pub mod sim;
