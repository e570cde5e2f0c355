//! Printing the UltraScale+ estimates a manifest records (parsing Yosys' output is
//! [`super::estimate`]'s job): each estimate's table, then its numbers per scanner lane.

use std::fmt::Write;

use kvpq_core::manifest::Manifest;
use kvpq_core::spec::Accelerator;

/// Every recorded estimate with its per-lane numbers; `None` without estimates.
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
