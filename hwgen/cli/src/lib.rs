//! What the `hwgen` subcommands compute and print; `main.rs` only parses arguments.
//!
//! Every command lives here, the ones that need the generator (`generate`, `lint`,
//! `estimate`, `build`, `explore`) and the simulator (`sim`) included, so that no library
//! below depends on a command.

#![warn(missing_docs)]

pub mod commands;
pub mod output;
