//! `hwgen build CONFIG --target ecp5`: generate the RTL and the ULX3S board files, run the
//! open flow (Yosys, nextpnr-ecp5, ecppack) with a progress bar per step, and record Fmax and
//! utilization in the folder's manifest: `bitstreams/<name>-<hash>/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use hwgen::emit::boards::ulx3s;
use hwgen::emit::{write_files, Design};
use hwgen::flow::ecp5::{self, Ecp5Job, Step};
use kvpq_core::manifest::Ecp5Record;
use kvpq_core::spec::{Accelerator, Platform};

/// Where `hwgen build` puts the folder of `design`: `<root>/<name>-<first 12 hash digits>`.
pub fn build_dir(root: &Path, design: &Design) -> PathBuf {
    let m = &design.manifest;
    root.join(format!("{}-{}", m.config.name, &m.content_hash[..12]))
}

fn progress_bar(step: Step, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message(step.label());
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// Builds the ULX3S bitstream of `acc` under `root`; returns the folder and the record.
/// `quiet` hides the progress bars (tests, logs).
pub fn run(
    acc: &Accelerator,
    root: &Path,
    seed: u32,
    quiet: bool,
) -> Result<(PathBuf, Ecp5Record)> {
    let acc = if acc.config().target.platform == Platform::Ecp5 {
        acc.clone()
    } else {
        acc.retarget(Platform::Ecp5)
            .context("retargeting the description to ecp5")?
    };
    let design = Design::render(&acc).context("rendering RTL")?;
    let dir = build_dir(root, &design);
    design.write(&dir).context("writing RTL")?;
    let board = ulx3s::render(&acc).context("rendering the ULX3S board files")?;
    write_files(&dir, &board).context("writing the ULX3S board files")?;
    let mut files = design.verilog_files();
    files.extend(
        board
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| n.ends_with(".v")),
    );

    let job = Ecp5Job {
        dir: &dir,
        files: &files,
        top: ulx3s::TOP,
        lpf: ulx3s::LPF,
        device: &ulx3s::NEXTPNR_DEVICE,
        seed,
        capacity: ulx3s::CAPACITY,
    };
    let mut bar: Option<ProgressBar> = None;
    let built = ecp5::build(&job, |step, done| {
        if done {
            if let Some(pb) = bar.take() {
                pb.finish_with_message(format!("{} done", step.label()));
            }
        } else {
            bar = Some(progress_bar(step, quiet));
        }
    });
    if let Some(pb) = bar.take() {
        pb.abandon_with_message("failed");
    }
    let built = built.with_context(|| format!("ECP5 flow in {}", dir.display()))?;

    // The core clock is the PLL output; the 25 MHz input pin is listed too.
    let (core_clock, fmax) = built
        .report
        .worst_clock("clk_25mhz")
        .map(|(n, f)| (n.to_string(), f))
        .context("nextpnr's report lists no core clock")?;
    if built.report.usage("TRELLIS_COMB").used == 0 {
        bail!(
            "nextpnr placed no logic; see {}",
            dir.join("pnr.log").display()
        );
    }
    let record = Ecp5Record {
        board: "ulx3s".into(),
        device: ulx3s::NEXTPNR_DEVICE.join(" "),
        top: ulx3s::TOP.into(),
        bitstream: built
            .bitstream
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        core_clock,
        fmax,
        utilization: built.report.utilization.clone(),
        seconds: built
            .seconds
            .iter()
            .map(|(s, t)| (s.label().to_string(), *t))
            .collect(),
    };
    let mut manifest = design.manifest.clone();
    manifest.ecp5 = Some(record.clone());
    manifest.write(&dir)?;
    Ok((dir, record))
}
