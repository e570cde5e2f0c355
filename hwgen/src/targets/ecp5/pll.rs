//! ECP5 EHXPLLL settings for a wanted output clock (CLKOP feedback): out = in * CLKFB_DIV /
//! CLKI_DIV, VCO = out * CLKOP_DIV; the same search as Project Trellis' `ecppll`.

/// One PLL configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ecp5Pll {
    /// Input divider.
    pub clki_div: u32,
    /// Feedback divider.
    pub clkfb_div: u32,
    /// Output divider.
    pub clkop_div: u32,
    /// Output frequency in MHz.
    pub out_mhz: f64,
    /// VCO frequency in MHz.
    pub vco_mhz: f64,
}

/// ECP5 PLL limits (Lattice FPGA-DS-02012): phase detector input, VCO and output ranges.
const PFD_MIN: f64 = 3.125;
const PFD_MAX: f64 = 400.0;
const VCO_MIN: f64 = 400.0;
const VCO_MAX: f64 = 800.0;
/// Output range of CLKOP in MHz.
pub const OUT_RANGE: (f64, f64) = (3.125, 400.0);

/// The configuration whose output is closest to `want_mhz` from `in_mhz` (ties: the VCO
/// nearest the middle of its range), or `None` if `want_mhz` is out of range.
pub fn solve(in_mhz: f64, want_mhz: f64) -> Option<Ecp5Pll> {
    if !(OUT_RANGE.0..=OUT_RANGE.1).contains(&want_mhz) {
        return None;
    }
    let mut best: Option<Ecp5Pll> = None;
    for clki_div in 1..=128u32 {
        let pfd = in_mhz / f64::from(clki_div);
        if !(PFD_MIN..=PFD_MAX).contains(&pfd) {
            continue;
        }
        for clkfb_div in 1..=80u32 {
            let out = pfd * f64::from(clkfb_div);
            if !(OUT_RANGE.0..=OUT_RANGE.1).contains(&out) {
                continue;
            }
            for clkop_div in 1..=128u32 {
                let vco = out * f64::from(clkop_div);
                if !(VCO_MIN..=VCO_MAX).contains(&vco) {
                    continue;
                }
                let cand = Ecp5Pll {
                    clki_div,
                    clkfb_div,
                    clkop_div,
                    out_mhz: out,
                    vco_mhz: vco,
                };
                let score = |p: &Ecp5Pll| ((p.out_mhz - want_mhz).abs(), (p.vco_mhz - 600.0).abs());
                if best.is_none_or(|b| score(&cand) < score(&b)) {
                    best = Some(cand);
                }
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaches_common_clocks_from_25_mhz() {
        for want in [25.0, 50.0, 100.0, 125.0, 200.0, 250.0] {
            let p = solve(25.0, want).unwrap();
            assert!((p.out_mhz - want).abs() < 1e-9, "{want}: {p:?}");
            assert!((VCO_MIN..=VCO_MAX).contains(&p.vco_mhz));
            assert!(25.0 / f64::from(p.clki_div) >= PFD_MIN);
        }
    }

    #[test]
    fn picks_the_nearest_when_exact_is_impossible() {
        let p = solve(25.0, 133.3).unwrap();
        assert!((p.out_mhz - 133.3).abs() < 0.5, "{p:?}");
        assert!(solve(25.0, 1000.0).is_none());
        assert!(solve(25.0, 1.0).is_none());
    }
}
