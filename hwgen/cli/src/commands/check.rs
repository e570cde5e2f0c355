//! `hwgen check`: the derived view of a valid description, as a person reads it.

use std::fmt::Write;

use hwgen::projection;
use kvpq_core::spec::{Accelerator, TopKStrategy};

/// Renders the derived widths, packing, storage and cycle model of `acc`.
pub fn describe(acc: &Accelerator) -> String {
    let cfg = acc.config();
    let d = acc.derived();
    let w = &d.widths;
    let l = &d.layout;
    let c = &d.cycles;
    let mut out = String::new();
    let o = &mut out;
    let _ = writeln!(
        o,
        "accelerator `{}`: valid (target {} @ {} MHz)",
        cfg.name, cfg.target.platform, cfg.target.clock_mhz
    );
    let _ = writeln!(
        o,
        "  pq shape      head_dim {} = m {} x {} dims, code_bits {} (K = {})",
        cfg.pq.head_dim, cfg.pq.m, w.sub_dim, cfg.pq.code_bits, w.codebook_size
    );
    let _ = writeln!(
        o,
        "  widths        query {} | centroid {} | accumulator {} | LUT {} | score {} (signed bits)",
        w.query_bits, w.centroid_bits, w.acc_bits, w.lut_bits, w.score_bits
    );
    let _ = writeln!(
        o,
        "  lut shift     0..={} ({} bits) | token index {} bits | count {} bits | k {} bits",
        w.max_shift, w.shift_bits, w.index_bits, w.count_bits, w.k_bits
    );
    let _ = writeln!(
        o,
        "  code packing  {}-bit tokens, {} per {}-bit beat, {} padding bits, {} lanes = {} cycle(s) per beat",
        w.token_bits,
        l.tokens_per_beat,
        l.beat_bits,
        l.padding_bits,
        cfg.scanner.lanes,
        l.tokens_per_beat / cfg.scanner.lanes
    );
    let s = &d.storage;
    let _ = writeln!(
        o,
        "  storage       codebooks {} | LUT {} x 2 (double buffer) | score buffer {} | queues {} (bits)",
        s.codebook_bits, s.lut_bits, s.score_buffer_bits, s.queue_bits
    );
    let topk = match cfg.topk.strategy {
        TopKStrategy::Systolic => format!("systolic, k_max {}", cfg.topk.k_max),
        TopKStrategy::Select => format!(
            "select, k_max {}, radix {} bits x {} digits",
            cfg.topk.k_max, c.radix_bits, c.radix_digits
        ),
    };
    let _ = writeln!(
        o,
        "  units         dist unit {} MACs | scanner {} lanes | top-k {}",
        cfg.dist_unit.macs, cfg.scanner.lanes, topk
    );
    let _ = writeln!(
        o,
        "  cycle model   LUT build {} cycles (hidden behind scans of >= {} tokens), scan depth {}",
        c.lut_build,
        c.lut_build * u64::from(cfg.scanner.lanes),
        c.scan_depth
    );
    o.push_str(&projection::table(acc, cfg.target.clock_mhz, "  "));
    let r = &cfg.retrieval;
    let split = acc.policy_split(cfg.engine.max_tokens);
    let _ = writeln!(
        o,
        "  retrieval     GQA {} | sink {} | budget {:.0}% (local window {:.0}%) -> at {} tokens: \
         window {}, top-k {} of k_max {}",
        r.gqa_group,
        r.sink_tokens,
        r.budget * 100.0,
        r.local_fraction * 100.0,
        cfg.engine.max_tokens,
        split.local,
        split.topk,
        cfg.topk.k_max
    );
    if cfg.target.platform.is_alveo() {
        // A call of 8 jobs: the KV heads of a Llama-3-8B layer, each its own query.
        let (n, jobs, engines) = (cfg.engine.max_tokens, 8, cfg.target.engines());
        let k = acc.policy_k(n).min(cfg.topk.k_max);
        let cycles = c.call_cycles(
            u64::from(n),
            u64::from(k),
            jobs,
            u64::from(engines),
            u64::from(kvpq_core::interface::alveo::job_words(cfg.pq.head_dim)),
        );
        let _ = writeln!(
            o,
            "  kernel call   {jobs} jobs of {n} tokens, k {k}, on {engines} engine(s): {cycles} cycles \
             = {:.1} us at {} MHz (codebooks resident)",
            cycles as f64 / cfg.target.clock_mhz,
            cfg.target.clock_mhz
        );
        let stripes = kvpq_core::interface::alveo::code_stripes(cfg);
        let _ = writeln!(
            o,
            "  HBM           each engine reads codes from {stripes} pseudo-channel(s) of {:.1} GB/s \
             ({} masters in all)",
            kvpq_core::interface::alveo::HBM_CHANNEL_BYTES_PER_S / 1e9,
            1 + engines * stripes
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvpq_core::spec::{AcceleratorBuilder, EngineConfig, PqConfig, ScannerConfig, TopKConfig};

    #[test]
    fn describes_widths_and_cycles() {
        let acc = AcceleratorBuilder::new("demo", PqConfig::new(128, 2, 6))
            .scanner(ScannerConfig::new(42))
            .topk(TopKConfig::select(8192))
            .engine(EngineConfig::new(131072))
            .build()
            .unwrap();
        let text = describe(&acc);
        assert!(text.contains("accumulator 22"), "{text}");
        assert!(text.contains("42 per 512-bit beat"), "{text}");
        assert!(text.contains("131072"), "{text}");
        assert!(text.contains("top-k 6554 of k_max 8192"), "{text}");
    }
}
