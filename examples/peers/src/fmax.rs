//! `peers fmax`: the ECP5 Fmax recorded for a description, read from the manifest of the
//! folder `hwgen build CONFIG --target ecp5` writes for the current RTL
//! (`<bitstreams>/<name>-<first 12 hash digits>/`). Fails, naming the folder, when there is
//! no such build, so that a script builds it rather than quoting a stale clock.

use std::path::PathBuf;

use anyhow::{Context, Result};
use hwgen::emit::Design;
use hwgen::targets::build_dir;
use kvpq_core::manifest::Manifest;
use kvpq_core::spec::{Accelerator, AcceleratorConfig};

/// Arguments of `peers fmax`.
#[derive(clap::Args)]
pub struct FmaxArgs {
    /// The description built for the ECP5 board.
    #[arg(long)]
    pub config: PathBuf,
    /// Where `hwgen build` puts its folders.
    #[arg(long, default_value = "bitstreams")]
    pub bitstreams: PathBuf,
}

/// Prints the achieved Fmax in MHz.
pub fn run(args: &FmaxArgs) -> Result<()> {
    let cfg = AcceleratorConfig::from_toml_file(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let design = Design::render(&Accelerator::new(cfg)?).context("rendering the RTL")?;
    let dir = build_dir(&args.bitstreams, &design);
    let built = Manifest::read(&dir).with_context(|| {
        format!(
            "no ECP5 build of the current RTL in {} (hwgen build {} --target ecp5)",
            dir.display(),
            args.config.display()
        )
    })?;
    let ecp5 = built
        .ecp5
        .with_context(|| format!("{} holds no ECP5 record", dir.display()))?;
    println!("{}", ecp5.fmax.achieved);
    Ok(())
}
