//! Lattice ECP5 with the open flow: the ULX3S board files (a top with a UART and LEDs around
//! `kvpq_board_top`, its pin constraints, the PLL that makes the core clock), Yosys ->
//! nextpnr-ecp5 -> ecppack, and synthesis-only cell counts for design-space exploration.

pub mod flow;
pub mod pll;
pub mod report;
pub mod synth;
pub mod ulx3s;

use super::{BuildError, BuildOptions, Folder, Target};
use crate::emit::{Design, EmitError};
use kvpq_core::manifest::{Ecp5Record, Manifest};
use kvpq_core::spec::Accelerator;

/// Verilog files of the board build, in the order Yosys reads them: the design's (`design`,
/// names inside the folder), then the board's.
pub fn files(design: &[String]) -> Vec<String> {
    design
        .iter()
        .cloned()
        .chain(ulx3s::MODULES.iter().map(|m| format!("{m}.v")))
        .collect()
}

/// The ECP5 target (the ULX3S board).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ecp5;

impl Target for Ecp5 {
    fn name(&self) -> &'static str {
        "ecp5"
    }

    /// The ULX3S top, the UART modules and the pin constraints.
    fn render(
        &self,
        acc: &Accelerator,
        _design: &Design,
    ) -> Result<Vec<(String, String)>, EmitError> {
        ulx3s::render(acc)
    }

    /// The bitstream of the board top (`opts.top` is ignored: the board fixes it), with Fmax
    /// and utilization recorded under `ecp5`.
    fn build(&self, folder: &mut Folder, opts: &mut BuildOptions) -> Result<(), BuildError> {
        let files = files(&folder.verilog);
        let job = ulx3s::job(folder.dir, &files, opts.seed);
        let built = flow::build(&job, |step, done| opts.step(step.label(), done))?;
        // The core clock is the PLL output; the 25 MHz input pin is listed too.
        let (core_clock, fmax) = built
            .report
            .worst_clock("clk_25mhz")
            .map(|(n, f)| (n.to_string(), f))
            .ok_or_else(|| BuildError::Flow("nextpnr's report lists no core clock".into()))?;
        if built.report.usage("TRELLIS_COMB").used == 0 {
            return Err(BuildError::Flow(format!(
                "nextpnr placed no logic; see {}",
                folder.dir.join("pnr.log").display()
            )));
        }
        folder.manifest.ecp5 = Some(Ecp5Record {
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
        });
        Ok(())
    }

    fn report(&self, acc: &Accelerator, manifest: &Manifest) -> Option<String> {
        manifest.ecp5.as_ref().map(|r| report::bitstream(acc, r))
    }
}
