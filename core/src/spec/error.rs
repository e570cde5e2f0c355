//! Errors of reading and validating an accelerator description.

use std::fmt;
use std::path::PathBuf;
use thiserror::Error;

/// One broken rule: the field it concerns, the value found and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleViolation {
    /// Dotted TOML path of the field, e.g. `scanner.lanes`.
    pub field: &'static str,
    /// The offending value as written.
    pub value: String,
    /// The rule, in words, with the numbers that make it fail.
    pub rule: String,
}

impl fmt::Display for RuleViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` = {}: {}", self.field, self.value, self.rule)
    }
}

/// Why a description could not be turned into an accelerator.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read config {path}: {error}")]
    Io {
        /// File that was read.
        path: PathBuf,
        /// The OS error: part of the message, not a chained source, so it prints once.
        error: std::io::Error,
    },
    /// TOML text that does not describe an accelerator.
    #[error("invalid TOML: {0}")]
    Parse(String),
    /// TOML file that does not describe an accelerator.
    #[error("invalid TOML in {path}: {msg}")]
    ParseFile {
        /// File that was parsed.
        path: PathBuf,
        /// Parser message (names the key, line and column).
        msg: String,
    },
    /// Well-formed description that breaks one or more rules.
    #[error("invalid accelerator description:\n{}", list(.0))]
    Invalid(Vec<RuleViolation>),
}

fn list(violations: &[RuleViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("  - {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfigError {
    /// The broken rules, if this is a validation error.
    pub fn violations(&self) -> &[RuleViolation] {
        match self {
            Self::Invalid(v) => v,
            _ => &[],
        }
    }
}
