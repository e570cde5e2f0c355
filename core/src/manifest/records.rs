//! What the flows record in a folder's manifest after generation: UltraScale+ estimates
//! (`hwgen estimate`) and the ECP5 build (`hwgen build`). Plain data, checked when read.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Resources of one module (or of the whole design) after `synth_xilinx -family xcup`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// LUTs, logic and memory (LUT1..LUT6, LUT-RAM and shift registers in LUT sites).
    pub lut: u64,
    /// Of `lut`: LUT sites used as distributed RAM or shift registers.
    pub lutram: u64,
    /// Flip-flops.
    pub ff: u64,
    /// Block RAM in 18 Kbit halves (a RAMB36 counts 2).
    pub bram18: u64,
    /// UltraRAM blocks (URAM288, 288 Kbit).
    #[serde(default)]
    pub uram: u64,
    /// DSP48E2 slices.
    pub dsp: u64,
    /// CARRY8/CARRY4 chains (not LUTs; listed for completeness).
    pub carry: u64,
}

impl std::ops::AddAssign for Resources {
    fn add_assign(&mut self, o: Self) {
        self.lut += o.lut;
        self.lutram += o.lutram;
        self.ff += o.ff;
        self.bram18 += o.bram18;
        self.uram += o.uram;
        self.dsp += o.dsp;
        self.carry += o.carry;
    }
}

/// The estimate of a design: per module (excluding submodules) and the total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Estimate {
    /// Yosys command that produced it.
    pub flow: String,
    /// Top module.
    pub top: String,
    /// Whole design.
    pub total: Resources,
    /// Each module's own cells, counted once per module definition.
    pub modules: BTreeMap<String, Resources>,
}

impl fmt::Display for Estimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "UltraScale+ estimate of {} ({})", self.top, self.flow)?;
        writeln!(
            f,
            "  {:<20} {:>9} {:>9} {:>9} {:>7} {:>5} {:>5}",
            "module", "LUT", "(LUTRAM)", "FF", "BRAM18", "URAM", "DSP"
        )?;
        let row = |f: &mut fmt::Formatter<'_>, name: &str, r: &Resources| {
            writeln!(
                f,
                "  {name:<20} {:>9} {:>9} {:>9} {:>7} {:>5} {:>5}",
                r.lut, r.lutram, r.ff, r.bram18, r.uram, r.dsp
            )
        };
        for (name, r) in &self.modules {
            row(f, name, r)?;
        }
        row(f, "total", &self.total)
    }
}

/// Estimates recorded in a manifest, per flow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Estimates {
    /// UltraScale+ (`synth_xilinx -family xcup`), per top module.
    #[serde(default)]
    pub xcup: BTreeMap<String, Estimate>,
}

impl Estimates {
    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.xcup.is_empty()
    }
}

/// Achieved and wanted frequency of one clock.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClockFmax {
    /// Fmax after routing, MHz.
    pub achieved: f64,
    /// Constraint, MHz.
    pub constraint: f64,
}

/// Used and available cells of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Used.
    pub used: u64,
    /// On the device.
    pub available: u64,
}

/// What `hwgen build --target ecp5` records under `ecp5`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ecp5Record {
    /// Board the constraints are for.
    pub board: String,
    /// nextpnr device arguments.
    pub device: String,
    /// Top module of the bitstream.
    pub top: String,
    /// Bitstream file in the folder.
    pub bitstream: String,
    /// The core clock: its net, achieved Fmax and the PLL frequency it was placed for (MHz).
    pub core_clock: String,
    /// Fmax and constraint of the core clock.
    pub fmax: ClockFmax,
    /// Cells used and available, per nextpnr cell type.
    pub utilization: BTreeMap<String, Usage>,
    /// Wall-clock seconds per step.
    pub seconds: Vec<(String, f64)>,
}

impl Ecp5Record {
    /// The first value that no place-and-route run can produce, as (field, what is wrong).
    pub fn implausible(&self) -> Option<(String, String)> {
        let clock = |v: f64| v.is_finite() && v > 0.0 && v <= 10_000.0;
        if !clock(self.fmax.achieved) {
            return Some((
                "ecp5.fmax.achieved".into(),
                format!("{} MHz is not a clock frequency", self.fmax.achieved),
            ));
        }
        if !clock(self.fmax.constraint) {
            return Some((
                "ecp5.fmax.constraint".into(),
                format!("{} MHz is not a clock frequency", self.fmax.constraint),
            ));
        }
        for (kind, u) in &self.utilization {
            if u.used > u.available {
                return Some((
                    format!("ecp5.utilization.{kind}"),
                    format!(
                        "{} used of {} available: a placed design cannot use more than the device has",
                        u.used, u.available
                    ),
                ));
            }
        }
        None
    }
}
