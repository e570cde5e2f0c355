//! The cycle model's projection as the reports print it (docs/design.md section 6.1): per
//! context length, scan, top-k drain, latency and interval in cycles, scan and engine
//! efficiency, and throughput from the interval between queries, top-k included.

use std::fmt::Write;

use kvpq_core::spec::Accelerator;

/// Context lengths the tables show besides `engine.max_tokens`.
pub const TABLE_TOKENS: [u32; 3] = [4096, 32768, 131072];

/// The context lengths a table shows: those of [`TABLE_TOKENS`] below `max_tokens`, then
/// `max_tokens`, the longest context the engine takes.
pub fn lengths(max_tokens: u32) -> Vec<u32> {
    let mut out: Vec<u32> = TABLE_TOKENS
        .iter()
        .copied()
        .filter(|&n| n < max_tokens)
        .collect();
    out.push(max_tokens);
    out
}

/// The projection of `acc` at `clock_mhz` over [`lengths`], one row per length, each line
/// starting with `indent`; k is the retrieval policy's, capped at `topk.k_max`
/// ([`Accelerator::project`]). A last line sets the throughput at the longest context beside
/// what the scan alone would give, so a rate that ignores the top-k is never mistaken for
/// the engine's.
pub fn table(acc: &Accelerator, clock_mhz: f64, indent: &str) -> String {
    let mut out = String::new();
    let o = &mut out;
    let _ = writeln!(
        o,
        "{indent}{:>9} {:>6} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>10} {:>9}",
        "tokens",
        "k",
        "scan",
        "drain",
        "latency",
        "interval",
        "scan eff",
        "eng eff",
        "Mtok/s",
        "us/query"
    );
    let mut last = None;
    for n in lengths(acc.config().engine.max_tokens) {
        let p = acc.project(n, clock_mhz);
        let _ = writeln!(
            o,
            "{indent}{:>9} {:>6} {:>9} {:>9} {:>9} {:>9} {:>8.3} {:>8.3} {:>10.1} {:>9.2}",
            p.tokens,
            p.k,
            p.scan,
            p.drain,
            p.latency,
            p.interval,
            p.scan_efficiency,
            p.engine_efficiency,
            p.tokens_per_s() / 1e6,
            p.latency_us()
        );
        last = Some(p);
    }
    if let Some(p) = last {
        let _ = writeln!(
            o,
            "{indent}at N = {}: {} lanes x {clock_mhz:.1} MHz x {:.3} engine efficiency = {:.1} M \
             tokens/s (N x clock / interval)\n{indent}  the scan alone ({:.3} scan efficiency) \
             would give {:.1} M tokens/s",
            p.tokens,
            acc.config().scanner.lanes,
            p.engine_efficiency,
            p.tokens_per_s() / 1e6,
            p.scan_efficiency,
            p.scan_tokens_per_s() / 1e6
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_end_at_max_tokens() {
        assert_eq!(lengths(4096), vec![4096]);
        assert_eq!(lengths(64), vec![64]);
        assert_eq!(lengths(131072), vec![4096, 32768, 131072]);
        assert_eq!(lengths(1 << 20), vec![4096, 32768, 131072, 1 << 20]);
    }
}
