//! `hwgen build CONFIG --target T`: generate the RTL and the target's files, run the
//! target's flow with a progress bar per step, and record its result in the folder's
//! manifest: `bitstreams/<name>-<hash>/`. For ecp5 the flow is the open one (Yosys,
//! nextpnr-ecp5, ecppack) and records Fmax and utilization; for an Alveo card it is the
//! UltraScale+ estimate (Vitis itself is not run here).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use hwgen::emit::{write_files, Design};
use hwgen::targets::{self, build_dir, BuildOptions, Folder};
use kvpq_core::manifest::Manifest;
use kvpq_core::spec::{Accelerator, Platform};

fn progress_bar(label: &'static str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message(label);
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// Builds `acc` for `platform` under `root`; returns the folder and its manifest, which holds
/// the flow's record. `quiet` hides the progress bars (tests, logs).
pub fn run(
    acc: &Accelerator,
    platform: Platform,
    root: &Path,
    seed: u32,
    quiet: bool,
) -> Result<(PathBuf, Manifest)> {
    let target = targets::for_platform(platform)
        .ok_or_else(|| anyhow!("--target {platform}: a generic design has nothing to build"))?;
    let acc = if acc.config().target.platform == platform {
        acc.clone()
    } else {
        acc.retarget(platform)
            .with_context(|| format!("retargeting the description to {platform}"))?
    };
    let design = Design::render(&acc).context("rendering RTL")?;
    let dir = build_dir(root, &design);
    design.write(&dir).context("writing RTL")?;
    let files = target
        .render(&acc, &design)
        .with_context(|| format!("rendering the {} files", target.name()))?;
    write_files(&dir, &files).with_context(|| format!("writing the {} files", target.name()))?;

    let mut folder = Folder::of_design(&dir, &design);
    let mut bar: Option<ProgressBar> = None;
    let mut on_step = |label: &'static str, done: bool| {
        if done {
            if let Some(pb) = bar.take() {
                pb.finish_with_message(format!("{label} done"));
            }
        } else {
            bar = Some(progress_bar(label, quiet));
        }
    };
    let built = target.build(
        &mut folder,
        &mut BuildOptions {
            seed,
            on_step: Some(&mut on_step),
            ..BuildOptions::default()
        },
    );
    if let Some(pb) = bar.take() {
        pb.abandon_with_message("failed");
    }
    built.with_context(|| format!("{} flow in {}", target.name(), dir.display()))?;
    let manifest = folder.manifest;
    manifest.write(&dir)?;
    Ok((dir, manifest))
}
