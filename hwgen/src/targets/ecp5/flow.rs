//! The open ECP5 flow: Yosys `synth_ecp5` -> nextpnr-ecp5 (place and route, timing report)
//! -> ecppack (bitstream). Each step logs into the build folder; a failing step names the
//! tool, its log and the log's last lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::synth::{parse_ecp5_stat, Ecp5Cells};
use crate::flow::tools::{Tool, ToolError};

/// A step of the flow, for progress reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Yosys synthesis to ECP5 cells.
    Synth,
    /// nextpnr placement and routing.
    PlaceRoute,
    /// ecppack bitstream.
    Pack,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 3] = [Step::Synth, Step::PlaceRoute, Step::Pack];

    /// What the step does, for progress bars.
    pub fn label(self) -> &'static str {
        match self {
            Step::Synth => "yosys synth_ecp5",
            Step::PlaceRoute => "nextpnr-ecp5 place & route",
            Step::Pack => "ecppack bitstream",
        }
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct Ecp5Job<'a> {
    /// Folder holding the sources; every output goes there too.
    pub dir: &'a Path,
    /// Verilog files (names inside `dir`).
    pub files: &'a [String],
    /// Top module.
    pub top: &'a str,
    /// Pin constraints (name inside `dir`).
    pub lpf: &'a str,
    /// nextpnr device arguments, e.g. `--85k --package=CABGA381`.
    pub device: &'a [&'a str],
    /// nextpnr placement seed.
    pub seed: u32,
    /// Cells the device has; a synthesized design that needs more stops before nextpnr.
    pub capacity: Ecp5Cells,
}

pub use kvpq_core::manifest::{ClockFmax, Usage};

/// What nextpnr's JSON report says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PnrReport {
    /// Per clock net.
    pub fmax: BTreeMap<String, ClockFmax>,
    /// Per cell type (TRELLIS_COMB = LUT4 sites, TRELLIS_FF, DP16KD, MULT18X18D, ...).
    pub utilization: BTreeMap<String, Usage>,
}

impl PnrReport {
    /// Parses nextpnr's `--report` JSON.
    pub fn parse(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// The slowest clock whose net name does not contain `skip` (e.g. an input pin's clock),
    /// with its achieved Fmax and constraint; `None` without such a clock.
    pub fn worst_clock(&self, skip: &str) -> Option<(&str, ClockFmax)> {
        self.fmax
            .iter()
            .filter(|(name, _)| skip.is_empty() || !name.contains(skip))
            .min_by(|a, b| a.1.achieved.total_cmp(&b.1.achieved))
            .map(|(n, f)| (n.as_str(), *f))
    }

    /// Usage of cell type `kind`, zero if the report does not list it.
    pub fn usage(&self, kind: &str) -> Usage {
        self.utilization.get(kind).copied().unwrap_or(Usage {
            used: 0,
            available: 0,
        })
    }
}

/// A finished build.
#[derive(Debug, Clone)]
pub struct Ecp5Build {
    /// The bitstream.
    pub bitstream: PathBuf,
    /// nextpnr's report.
    pub report: PnrReport,
    /// Seconds per step.
    pub seconds: Vec<(Step, f64)>,
}

/// Runs the flow; `on_step(step, done)` is called before (`false`) and after (`true`) each
/// step so a caller can show progress.
pub fn build(job: &Ecp5Job, mut on_step: impl FnMut(Step, bool)) -> Result<Ecp5Build, ToolError> {
    let io = |what: String| move |source| ToolError::Io { what, source };
    // Find every tool first, so a missing one fails before an hour of place and route.
    let (yosys, nextpnr, ecppack) = (Tool::yosys()?, Tool::nextpnr_ecp5()?, Tool::ecppack()?);
    let mut seconds = Vec::new();

    on_step(Step::Synth, false);
    let t = Instant::now();
    let script = format!(
        "read_verilog -I. {}\nsynth_ecp5 -top {} -json {}.json\ntee -o synth_ecp5.stat stat\n",
        job.files.join(" "),
        job.top,
        job.top
    );
    let ys = job.dir.join("synth_ecp5.ys");
    std::fs::write(&ys, script).map_err(io(format!("writing {}", ys.display())))?;
    let synth_log = job.dir.join("synth_ecp5.log");
    let _ = std::fs::remove_file(&synth_log);
    yosys.run(
        job.dir,
        &["-q", "-l", "synth_ecp5.log", "synth_ecp5.ys"],
        &synth_log,
    )?;
    seconds.push((Step::Synth, t.elapsed().as_secs_f64()));
    on_step(Step::Synth, true);
    // Place and route of an over-full device runs for an hour before failing: stop here.
    let stat_path = job.dir.join("synth_ecp5.stat");
    let stat = std::fs::read_to_string(&stat_path)
        .map_err(io(format!("reading {}", stat_path.display())))?;
    let need = parse_ecp5_stat(&stat);
    let cap = job.capacity;
    let over: Vec<String> = [
        ("LUT4 sites", need.lut4, cap.lut4),
        ("flip-flops", need.ff, cap.ff),
        ("DP16KD block RAMs", need.bram, cap.bram),
        ("MULT18X18D multipliers", need.dsp, cap.dsp),
    ]
    .iter()
    .filter(|(_, n, c)| n > c)
    .map(|(what, n, c)| format!("{what}: needs {n}, the device has {c}"))
    .collect();
    if !over.is_empty() {
        return Err(ToolError::DoesNotFit {
            needs: over.join("; "),
            stat: stat_path.display().to_string(),
        });
    }

    on_step(Step::PlaceRoute, false);
    let t = Instant::now();
    let json = format!("{}.json", job.top);
    let seed = job.seed.to_string();
    let mut args: Vec<&str> = job.device.to_vec();
    args.extend([
        "--json",
        &json,
        "--lpf",
        job.lpf,
        "--textcfg",
        "design.config",
        "--report",
        "report.json",
        "--seed",
        &seed,
        // A build that misses its clock still gets a report and a bitstream; the report says so.
        "--timing-allow-fail",
        "--log",
        "pnr.log",
    ]);
    let pnr_log = job.dir.join("pnr.log");
    let _ = std::fs::remove_file(&pnr_log);
    nextpnr.run(job.dir, &args, &pnr_log)?;
    seconds.push((Step::PlaceRoute, t.elapsed().as_secs_f64()));
    on_step(Step::PlaceRoute, true);

    on_step(Step::Pack, false);
    let t = Instant::now();
    let bit_name = format!("{}.bit", job.top);
    let pack_log = job.dir.join("ecppack.log");
    ecppack.run(
        job.dir,
        &["--compress", "design.config", &bit_name],
        &pack_log,
    )?;
    seconds.push((Step::Pack, t.elapsed().as_secs_f64()));
    on_step(Step::Pack, true);

    let report_path = job.dir.join("report.json");
    let text = std::fs::read_to_string(&report_path)
        .map_err(io(format!("reading {}", report_path.display())))?;
    let report = PnrReport::parse(&text).map_err(|e| ToolError::Io {
        what: format!("parsing {}", report_path.display()),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    Ok(Ecp5Build {
        bitstream: job.dir.join(bit_name),
        report,
        seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_nextpnr_report() {
        let json = r#"{
          "fmax": { "$glbnet$clk": { "achieved": 212.5, "constraint": 200.0 },
                    "$glbnet$clk_25mhz": { "achieved": 380.1, "constraint": 25.0 } },
          "utilization": { "TRELLIS_COMB": { "available": 83640, "used": 1234 },
                           "DP16KD": { "available": 208, "used": 4 } },
          "detailed_net_timings": []
        }"#;
        let r = PnrReport::parse(json).unwrap();
        let (name, f) = r.worst_clock("").unwrap();
        assert_eq!(name, "$glbnet$clk");
        assert_eq!(r.worst_clock("clk_25mhz").unwrap().0, "$glbnet$clk");
        assert!(r.worst_clock("$glbnet").is_none());
        assert_eq!(f.achieved, 212.5);
        assert_eq!(r.usage("DP16KD").used, 4);
        assert_eq!(r.usage("MULT18X18D").available, 0);
    }
}
