//! The ULX3S (Lattice LFE5U-85F, CABGA381): `kvpq_ulx3s_top` (PLL, UART at 1 Mbaud, LEDs)
//! around `kvpq_board_top`, the UART modules and `ulx3s.lpf`.

use askama::Template;

use super::pll::{solve, Ecp5Pll};
use crate::emit::verilog::header::header;
use crate::emit::EmitError;
use crate::flow::ecp5_synth::Ecp5Cells;
use kvpq_core::spec::Accelerator;

/// Top module of the board build.
pub const TOP: &str = "kvpq_ulx3s_top";
/// Pin constraint file.
pub const LPF: &str = "ulx3s.lpf";
/// nextpnr-ecp5 device and package of the board.
pub const NEXTPNR_DEVICE: [&str; 2] = ["--85k", "--package=CABGA381"];
/// Cells of the LFE5U-85F (nextpnr's counts).
pub const CAPACITY: Ecp5Cells = Ecp5Cells {
    lut4: 83_640,
    ff: 83_640,
    bram: 208,
    dsp: 156,
};
/// Board oscillator.
pub const OSC_MHZ: f64 = 25.0;
/// UART speed of the FT231X link.
pub const BAUD: u32 = 1_000_000;

#[derive(Template)]
#[template(path = "boards/ulx3s/kvpq_ulx3s_top.v", escape = "none")]
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
#[template(path = "boards/ulx3s/kvpq_uart_rx.v", escape = "none")]
struct UartRxV {
    header: String,
}

#[derive(Template)]
#[template(path = "boards/ulx3s/kvpq_uart_tx.v", escape = "none")]
struct UartTxV {
    header: String,
}

#[derive(Template)]
#[template(path = "boards/ulx3s/ulx3s.lpf", escape = "none")]
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
            "kvpq_uart_rx.v".into(),
            nl(UartRxV {
                header: header(acc, "kvpq_uart_rx"),
            }
            .render()?),
        ),
        (
            "kvpq_uart_tx.v".into(),
            nl(UartTxV {
                header: header(acc, "kvpq_uart_tx"),
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
