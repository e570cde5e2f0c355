//! Printing the UltraScale+ estimates a manifest records (parsing Yosys' output is
//! [`super::estimate`]'s job): each estimate's table, then its numbers per scanner lane.

use std::fmt::Write;

use kvpq_core::manifest::{Manifest, Resources};
use kvpq_core::spec::Accelerator;

/// What the XCU55C holds (AMD DS963): 1,303,680 LUTs, 2,607,360 flip-flops, 2,016 RAMB36
/// (4,032 BRAM18), 960 URAM288 and 9,024 DSP48E2 (LUT-RAM and carry chains are not
/// compared: 0).
pub const U55C: Resources = Resources {
    lut: 1_303_680,
    lutram: 0,
    ff: 2_607_360,
    bram18: 4_032,
    uram: 960,
    dsp: 9_024,
    carry: 0,
};

/// Every recorded estimate with its share of a U55C and its per-lane numbers; `None`
/// without estimates.
pub fn estimates(acc: &Accelerator, m: &Manifest) -> Option<String> {
    if m.estimates.xcup.is_empty() {
        return None;
    }
    let lanes = acc.config().scanner.lanes;
    let mut out = String::new();
    let o = &mut out;
    for e in m.estimates.xcup.values() {
        let _ = write!(o, "{e}");
        let t = e.total;
        let share = |v: u64, of: u64| 100.0 * v as f64 / of as f64;
        let u = U55C;
        let _ = writeln!(
            o,
            "  of a U55C (XCU55C, before its shell): {:.1} % LUT, {:.1} % FF, {:.1} % BRAM18, \
             {:.1} % URAM, {:.1} % DSP",
            share(t.lut, u.lut),
            share(t.ff, u.ff),
            share(t.bram18, u.bram18),
            share(t.uram, u.uram),
            share(t.dsp, u.dsp)
        );
        let per = |v: u64| v as f64 / f64::from(lanes);
        let _ = writeln!(
            o,
            "  per lane (total / {lanes}): {:.0} LUT, {:.0} FF, {:.1} BRAM18, {:.2} DSP",
            per(t.lut),
            per(t.ff),
            per(t.bram18),
            per(t.dsp)
        );
        if let Some(s) = e.modules.get("lut_scanner") {
            let _ = writeln!(
                o,
                "  scanner per lane: {:.0} LUT ({:.0} as LUT-RAM), {:.0} FF, {:.1} BRAM18, {:.2} DSP",
                per(s.lut),
                per(s.lutram),
                per(s.ff),
                per(s.bram18),
                per(s.dsp)
            );
        }
    }
    Some(out)
}
