//! The ULX3S (Lattice LFE5U-85F, CABGA381): `kvpq_ulx3s_top` (PLL, UART at 1 Mbaud, LEDs)
//! around `kvpq_board_top`, the UART modules and `ulx3s.lpf`.

use std::path::Path;

use askama::Template;

use super::flow::Ecp5Job;
use super::pll::{solve, Ecp5Pll};
use super::synth::Ecp5Cells;
use crate::emit::verilog::header::header;
use crate::emit::EmitError;
use kvpq_core::spec::{Accelerator, LFE5U_85F_DP16KD, LFE5U_85F_FF};

/// Top module of the board build.
pub const TOP: &str = "kvpq_ulx3s_top";
/// UART receiver module.
pub const UART_RX: &str = "kvpq_uart_rx";
/// UART transmitter module.
pub const UART_TX: &str = "kvpq_uart_tx";
/// The board's Verilog modules, one `<module>.v` each, leaves first.
pub const MODULES: [&str; 3] = [UART_RX, UART_TX, TOP];
/// Pin constraint file.
pub const LPF: &str = "ulx3s.lpf";
/// nextpnr-ecp5 device and package of the board.
pub const NEXTPNR_DEVICE: [&str; 2] = ["--85k", "--package=CABGA381"];
/// Cells of the LFE5U-85F (nextpnr's counts).
pub const CAPACITY: Ecp5Cells = Ecp5Cells {
    lut4: LFE5U_85F_FF,
    ff: LFE5U_85F_FF,
    bram: LFE5U_85F_DP16KD,
    dsp: 156,
};
/// Board oscillator.
pub const OSC_MHZ: f64 = 25.0;
/// UART speed of the FT231X link (defined with the byte protocol, which the runtime shares).
pub use kvpq_core::interface::board::uart::BAUD;

#[derive(Template)]
#[template(path = "ecp5/ulx3s/kvpq_ulx3s_top.v", escape = "none")]
struct TopV {
    header: String,
    clock_mhz: f64,
    pll_out_mhz: String,
    pll_note: String,
    pll: Ecp5Pll,
    baud: u32,
    clks_per_bit: u32,
}

#[derive(Template)]
#[template(path = "ecp5/ulx3s/kvpq_uart_rx.v", escape = "none")]
struct UartRxV {
    header: String,
}

#[derive(Template)]
#[template(path = "ecp5/ulx3s/kvpq_uart_tx.v", escape = "none")]
struct UartTxV {
    header: String,
}

#[derive(Template)]
#[template(path = "ecp5/ulx3s/ulx3s.lpf", escape = "none")]
struct Lpf {
    version: &'static str,
}

/// The PLL the board top uses for `target.clock_mhz`, or an error naming the field.
pub fn core_pll(acc: &Accelerator) -> Result<Ecp5Pll, EmitError> {
    let want = acc.config().target.clock_mhz;
    solve(OSC_MHZ, want).ok_or_else(|| EmitError::Board {
        board: "ulx3s",
        what: format!(
            "target.clock_mhz = {want}: the ECP5 PLL makes {}..={} MHz",
            super::pll::OUT_RANGE.0,
            super::pll::OUT_RANGE.1
        ),
    })
}

/// Renders the board files as `(name, text)`: the top, the UART modules, the constraints.
pub fn render(acc: &Accelerator) -> Result<Vec<(String, String)>, EmitError> {
    let pll = core_pll(acc)?;
    let clks_per_bit = (pll.out_mhz * 1e6 / f64::from(BAUD)).round() as u32;
    let want = acc.config().target.clock_mhz;
    let pll_note = if (pll.out_mhz - want).abs() < 1e-6 {
        format!("25 MHz x {} / {}", pll.clkfb_div, pll.clki_div)
    } else {
        format!(
            "nearest to the wanted {want} MHz: 25 MHz x {} / {}",
            pll.clkfb_div, pll.clki_div
        )
    };
    let nl = |s: String| s + "\n";
    Ok(vec![
        (
            format!("{UART_RX}.v"),
            nl(UartRxV {
                header: header(acc, UART_RX),
            }
            .render()?),
        ),
        (
            format!("{UART_TX}.v"),
            nl(UartTxV {
                header: header(acc, UART_TX),
            }
            .render()?),
        ),
        (
            format!("{TOP}.v"),
            nl(TopV {
                header: header(acc, TOP),
                clock_mhz: pll.out_mhz,
                pll_out_mhz: format!("{:.4}", pll.out_mhz),
                pll_note,
                pll,
                baud: BAUD,
                clks_per_bit,
            }
            .render()?),
        ),
        (
            LPF.into(),
            nl(Lpf {
                version: env!("CARGO_PKG_VERSION"),
            }
            .render()?),
        ),
    ])
}

/// The flow's job for this board: `files` (see [`super::files`]) in `dir`, its top, pins,
/// device and capacity.
pub fn job<'a>(dir: &'a Path, files: &'a [String], seed: u32) -> Ecp5Job<'a> {
    Ecp5Job {
        dir,
        files,
        top: TOP,
        lpf: LPF,
        device: &NEXTPNR_DEVICE,
        seed,
        capacity: CAPACITY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_file_per_listed_module() {
        use kvpq_core::spec::{
            AcceleratorBuilder, DistUnitConfig, EngineConfig, Platform, PqConfig, QuantConfig,
            ScannerConfig, TargetConfig, TopKConfig,
        };
        let acc = AcceleratorBuilder::new("t", PqConfig::new(8, 2, 2))
            .quant(QuantConfig::new(4, 4, 6))
            .dist_unit(DistUnitConfig::new(2))
            .scanner(ScannerConfig::new(2))
            .topk(TopKConfig::systolic(4))
            .engine(EngineConfig::new(64).with_beat_bits(32))
            .target(TargetConfig::new(Platform::Ecp5, 100.0))
            .build()
            .unwrap();
        let verilog: Vec<String> = render(&acc)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| n.ends_with(".v"))
            .collect();
        let listed: Vec<String> = MODULES.iter().map(|m| format!("{m}.v")).collect();
        assert_eq!(verilog, listed);
    }
}
