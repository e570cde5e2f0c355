//! The Vitis project beside the RTL: `Makefile`, `kernel.xml`, `package_kernel.tcl`, one
//! connectivity config per kernel flavour and a README, all rendered from the interface table.

use askama::Template;

use super::{KernelInterface, CONTROL_RANGE};
use kvpq_core::spec::Accelerator;

#[derive(Template)]
#[template(path = "alveo/vitis/kernel.xml", escape = "none")]
struct KernelXml<'a> {
    name: &'a str,
    version: &'static str,
    k: &'a KernelInterface,
    control_range: u32,
}

#[derive(Template)]
#[template(path = "alveo/vitis/connectivity.cfg", escape = "none")]
struct Connectivity<'a> {
    name: &'a str,
    version: &'static str,
    kernel: &'a str,
    /// (argument, HBM pseudo-channel) for every buffer argument.
    sp: Vec<(&'a str, u32)>,
}

#[derive(Template)]
#[template(path = "alveo/vitis/package_kernel.tcl", escape = "none")]
struct PackageTcl<'a> {
    name: &'a str,
    version: &'static str,
    k: &'a KernelInterface,
    sources: &'a [String],
    busifs: Vec<&'a str>,
}

#[derive(Template)]
#[template(path = "alveo/vitis/Makefile", escape = "none")]
struct Makefile<'a> {
    name: &'a str,
    version: &'static str,
    platform: &'a str,
    clock_mhz: f64,
    k: &'a KernelInterface,
    sources: &'a [String],
}

#[derive(Template)]
#[template(path = "alveo/vitis/README.md", escape = "none")]
struct Readme<'a> {
    name: &'a str,
    version: &'static str,
    platform: &'a str,
    clock_mhz: f64,
    k: &'a KernelInterface,
    tokens_per_beat: u32,
    words_per_beat: usize,
}

impl Readme<'_> {
    fn hbm(&self, master: &str) -> String {
        self.k
            .master(master)
            .map_or_else(|| "?".into(), |m| format!("HBM[{}]", m.hbm_channel))
    }
}

/// Buffer arguments with the HBM pseudo-channel of their master.
fn hbm_map(k: &KernelInterface) -> Vec<(&str, u32)> {
    k.args
        .iter()
        .filter_map(|a| {
            let master = k.master(a.master.as_deref()?)?;
            Some((a.name.as_str(), master.hbm_channel))
        })
        .collect()
}

/// Renders the project's files as `(name, text)`; `sources` are the RTL kernel's Verilog
/// files (leaves first) in the folder above the project.
pub fn render(
    acc: &Accelerator,
    k: &KernelInterface,
    sources: &[String],
) -> Result<Vec<(String, String)>, askama::Error> {
    let c = acc.config();
    let (name, version) = (c.name.as_str(), env!("CARGO_PKG_VERSION"));
    let platform = k.platform.to_string().to_uppercase();
    let clock_mhz = c.target.clock_mhz;
    let nl = |s: String| s + "\n";
    let mut files = vec![
        (
            "kernel.xml".to_string(),
            nl(KernelXml {
                name,
                version,
                k,
                control_range: CONTROL_RANGE,
            }
            .render()?),
        ),
        (
            "package_kernel.tcl".to_string(),
            nl(PackageTcl {
                name,
                version,
                k,
                sources,
                busifs: std::iter::once(k.control.as_str())
                    .chain(k.masters.iter().map(|m| m.name.as_str()))
                    .collect(),
            }
            .render()?),
        ),
        (
            "Makefile".to_string(),
            nl(Makefile {
                name,
                version,
                platform: &platform,
                clock_mhz,
                k,
                sources,
            }
            .render()?),
        ),
        (
            "README.md".to_string(),
            nl(Readme {
                name,
                version,
                platform: &platform,
                clock_mhz,
                k,
                tokens_per_beat: acc.derived().layout.tokens_per_beat,
                words_per_beat: acc.derived().layout.words_per_beat(),
            }
            .render()?),
        ),
    ];
    for (flavour, kernel) in [("rtl", &k.rtl_kernel), ("hls", &k.hls_kernel)] {
        files.push((
            format!("connectivity_{flavour}.cfg"),
            nl(Connectivity {
                name,
                version,
                kernel,
                sp: hbm_map(k),
            }
            .render()?),
        ));
    }
    Ok(files)
}
