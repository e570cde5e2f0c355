//! `hwgen`: the command-line front end of kvpq.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use hwgen::flow::yosys::SynthMode;
use hwgen_cli::commands::{
    build, check, estimate, explore, generate, golden, lint, report, sim as simulate,
};
use hwgen_cli::output::{diagnostic, Output, OutputError};
use kvpq_core::spec::{Accelerator, Platform};

/// Generate, check and model FPGA accelerators for PQ-based KV-cache retrieval.
#[derive(Parser)]
#[command(name = "hwgen", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate accelerator descriptions and print their derived widths and cycle model.
    Check {
        /// TOML descriptions (e.g. examples/*.toml).
        #[arg(required = true)]
        configs: Vec<PathBuf>,
    },
    /// Generate the accelerator's Verilog (one module per file) into a folder.
    Generate {
        /// TOML description.
        config: PathBuf,
        /// Output folder.
        #[arg(short, long)]
        out: PathBuf,
        /// Also emit the Vitis HLS C++ kernel and its g++ C simulation harness (into OUT/hls).
        #[arg(long)]
        hls: bool,
        /// Target platform, overriding the config's `target.platform`. For u280 and u55c the
        /// RTL kernel, the HLS kernel (OUT/hls) and the Vitis project (OUT/vitis) are emitted;
        /// for ecp5 the ULX3S board files.
        #[arg(long, value_parser = parse_platform)]
        target: Option<Platform>,
        /// Generate into a folder that holds another design, or files of a previous
        /// generation this one does not write: first remove exactly the files its
        /// manifest.json accounts for (listed Verilog, manifest, README, hls/ and vitis/).
        /// Other files are never touched.
        #[arg(long)]
        force: bool,
    },
    /// Generate the RTL and check it: Verilator -Wall lint, Yosys synthesis with no latches,
    /// undriven nets or loops; print cells per module.
    Lint {
        /// TOML description.
        config: PathBuf,
        /// Output folder for the RTL and the tool logs.
        #[arg(short, long)]
        out: PathBuf,
        /// Keep memories as memory cells (fast for large buffers) instead of flip-flops.
        #[arg(long)]
        keep_memories: bool,
    },
    /// Simulate the generated engine with Verilator on synthetic data, check every result
    /// against the golden model, and print cycles per query and scan efficiency.
    Sim {
        /// TOML description.
        config: PathBuf,
        /// Tokens per query (capped by engine.max_tokens).
        #[arg(long, default_value_t = 4096)]
        tokens: u32,
        /// Queries, run back to back.
        #[arg(long, default_value_t = 4)]
        queries: usize,
        /// Results per query (default: the retrieval policy's k).
        #[arg(long)]
        k: Option<u32>,
        /// Seed of the data.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Generate a design with its target's files into OUT/<name>-<hash>/ and run the target's
    /// flow: for ecp5 a ULX3S (ECP5-85k) bitstream with the open flow (Yosys, nextpnr-ecp5,
    /// ecppack), recording Fmax and utilization; for u280/u55c the UltraScale+ estimate
    /// (xclbins are built with Vitis from the folder's vitis/ project).
    Build {
        /// TOML description.
        config: PathBuf,
        /// Target platform: ecp5, u280 or u55c.
        #[arg(long, value_parser = parse_platform)]
        target: Platform,
        /// Folder the build folder goes into.
        #[arg(short, long, default_value = "bitstreams")]
        out: PathBuf,
        /// nextpnr placement seed.
        #[arg(long, default_value_t = 1)]
        seed: u32,
    },
    /// Sweep a design space (SPACE.toml): ECP5 synthesis, golden-model recall and the cycle
    /// model per point (throughput from the interval between queries, top-k included);
    /// writes OUT/points.csv and SVG plots with the Pareto front, points labelled.
    Explore {
        /// Space description (see examples/spaces/).
        space: PathBuf,
        /// Output folder.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Estimate UltraScale+ (U280/U55C) resources of a generated folder with Yosys
    /// `synth_xilinx -family xcup`; the estimate is written into its manifest.json.
    Estimate {
        /// Folder written by `hwgen generate`.
        dir: PathBuf,
        /// Module to synthesize (default: the engine, `pq_topk_engine`; `kvpq_krnl` for the
        /// whole Alveo kernel).
        #[arg(long)]
        top: Option<String>,
    },
    /// Print what a generated folder's manifest records: the design, its cycle model with
    /// throughput and latency projected at the description's clock, its resource estimates
    /// (also per lane) and its ECP5 build (projected again at the achieved Fmax).
    Report {
        /// Folder written by `hwgen generate`.
        dir: PathBuf,
    },
    /// Run the bit-exact golden model on clustered synthetic keys and report recall@k.
    Golden {
        /// TOML description.
        config: PathBuf,
        /// Context length in tokens (capped by engine.max_tokens).
        #[arg(long, default_value_t = 16384)]
        tokens: u32,
        /// Decoding steps (queries).
        #[arg(long, default_value_t = 16)]
        queries: usize,
        /// Seed of the synthetic data and of k-means.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Lloyd iterations per subspace.
        #[arg(long, default_value_t = 25)]
        kmeans_iters: usize,
    },
}

fn parse_platform(s: &str) -> Result<Platform, String> {
    match s {
        "generic" => Ok(Platform::Generic),
        "ecp5" => Ok(Platform::Ecp5),
        "u280" => Ok(Platform::U280),
        "u55c" => Ok(Platform::U55c),
        other => Err(format!(
            "unknown platform `{other}` (expected generic, ecp5, u280 or u55c)"
        )),
    }
}

fn load(path: &Path) -> Result<Accelerator> {
    Accelerator::from_toml_file(path).with_context(|| format!("config {}", path.display()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = Output::new(io::stdout().lock());
    let result = run(cli, &mut out).and_then(|code| {
        out.flush()?;
        Ok(code)
    });
    match result {
        Ok(code) => code,
        // The reader went away (`| head`): what it did not read, it did not want.
        Err(e)
            if e.downcast_ref::<OutputError>()
                .is_some_and(OutputError::is_closed_pipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            diagnostic(format_args!("error: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, out: &mut Output<impl Write>) -> Result<ExitCode> {
    match cli.command {
        Command::Check { configs } => {
            let mut failed = false;
            for path in &configs {
                match load(path) {
                    Ok(acc) => writeln!(out, "{}: {}", path.display(), check::describe(&acc))?,
                    Err(e) => {
                        diagnostic(format_args!("{}: error: {e:#}", path.display()));
                        failed = true;
                    }
                }
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Generate {
            config,
            out: dir,
            hls,
            target,
            force,
        } => {
            let mut acc = load(&config)?;
            if let Some(platform) = target {
                acc = acc.retarget(platform).with_context(|| {
                    format!("config {} for --target {platform}", config.display())
                })?;
            }
            let done = generate::generate(&acc, &dir, hls, force)?;
            for path in &done.removed {
                writeln!(out, "removed {} (previous generation)", path.display())?;
            }
            for path in &done.written {
                writeln!(out, "wrote {}", path.display())?;
            }
            writeln!(out, "content hash {}", done.content_hash)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Build {
            config,
            target,
            out: root,
            seed,
        } => {
            let acc = load(&config)?;
            let (dir, _) = build::run(&acc, target, &root, seed, !std::io::stderr().is_terminal())?;
            out.text(&report::run(&dir)?)?;
            writeln!(out, "build folder: {}", dir.display())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Explore { space, out: dir } => {
            let points = explore::run(&space, &dir, std::io::stderr().is_terminal())?;
            let ok = points.iter().filter(|p| p.status == "ok").count();
            writeln!(
                out,
                "{} points ({ok} valid); Pareto front (recall, throughput, LUT4):",
                points.len()
            )?;
            writeln!(
                out,
                "  {:<44} {:>7} {:>12} {:>8} {:>8} {:>9} {:>8} {:>6}",
                "point", "recall", "M tokens/s", "eng eff", "scan eff", "interval", "LUT4", "BRAM"
            )?;
            for p in points.iter().filter(|p| p.pareto) {
                let q = &p.projection;
                writeln!(
                    out,
                    "  {:<44} {:>7.3} {:>12.1} {:>8.3} {:>8.3} {:>9} {:>8} {:>6}",
                    p.name,
                    p.recall,
                    q.tokens_per_s() / 1e6,
                    q.engine_efficiency,
                    q.scan_efficiency,
                    q.interval,
                    p.cells.lut4,
                    p.cells.bram
                )?;
            }
            writeln!(
                out,
                "wrote {}, recall_vs_throughput.svg, recall_vs_luts.svg",
                dir.join("points.csv").display()
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Estimate { dir, top } => {
            writeln!(out, "{}", estimate::run(&dir, top.as_deref())?)?;
            writeln!(out, "recorded in {}", dir.join("manifest.json").display())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Report { dir } => {
            out.text(&report::run(&dir)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Lint {
            config,
            out: dir,
            keep_memories,
        } => {
            let acc = load(&config)?;
            let mode = if keep_memories {
                SynthMode::KeepMemories
            } else {
                SynthMode::Full
            };
            writeln!(out, "{}", lint::run(&acc, &dir, mode)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim {
            config,
            tokens,
            queries,
            k,
            seed,
        } => {
            let acc = load(&config)?;
            golden::check_workload(&acc, tokens.min(acc.config().engine.max_tokens), queries)?;
            let opts = simulate::SimOptions {
                tokens,
                queries,
                k,
                seed,
                ..Default::default()
            };
            diagnostic(format_args!(
                "building the Verilator model (cached after the first run)..."
            ));
            let report = simulate::run(&acc, &opts, &sim::default_cache()).context("simulation")?;
            writeln!(out, "{report}")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Golden {
            config,
            tokens,
            queries,
            seed,
            kmeans_iters,
        } => {
            let acc = load(&config)?;
            let opts = golden::GoldenOptions {
                tokens,
                queries,
                seed,
                kmeans_iters,
                progress: std::io::stderr().is_terminal(),
            };
            let report = golden::run(&acc, &opts).context("golden model")?;
            writeln!(out, "{report}")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
