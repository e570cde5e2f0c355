//! The shipped example descriptions: valid, round-trip through TOML, agree with the builder,
//! and give sensible recall on clustered synthetic keys.

use hwgen_cli::commands::golden::{run, GoldenOptions};
use kvpq_core::spec::{
    Accelerator, AcceleratorBuilder, AcceleratorConfig, DistUnitConfig, EngineConfig, Platform,
    PqConfig, QuantConfig, RetrievalConfig, ScannerConfig, TargetConfig, TopKConfig,
};
use kvpq_tests::{example, example_paths};

#[test]
fn the_three_examples_are_valid() {
    let names: Vec<String> = example_paths()
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in ["fastscan-4bit", "large-m16-b8", "pqcache-llama3"] {
        assert!(
            names.iter().any(|n| n == want),
            "examples/{want}.toml missing"
        );
    }
    for path in example_paths() {
        Accelerator::from_toml_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn toml_round_trips() {
    for path in example_paths() {
        let acc = Accelerator::from_toml_file(&path).unwrap();
        let text = acc.config().to_toml_string();
        let again = AcceleratorConfig::from_toml_str(&text).unwrap();
        assert_eq!(&again, acc.config(), "{}", path.display());
    }
}

#[test]
fn builder_matches_the_pqcache_toml() {
    let built = AcceleratorBuilder::new("pqcache-llama3", PqConfig::new(128, 2, 6))
        .quant(QuantConfig::new(8, 8, 16))
        .dist_unit(DistUnitConfig::new(32))
        .scanner(ScannerConfig::new(42))
        .topk(
            TopKConfig::select(8192)
                .with_radix_bits(6)
                .with_read_beats(8),
        )
        .engine(
            EngineConfig::new(131072)
                .with_beat_bits(512)
                .with_heads(256),
        )
        .target(TargetConfig::new(Platform::U55c, 250.0).with_engines(4))
        .retrieval(
            RetrievalConfig::default()
                .with_gqa_group(4)
                .with_sink_tokens(32)
                .with_budget(0.10, 0.5),
        )
        .build()
        .unwrap();
    assert_eq!(built, example("pqcache-llama3"));
}

#[test]
fn pqcache_derived_view() {
    let acc = example("pqcache-llama3");
    let d = acc.derived();
    assert_eq!(d.widths.sub_dim, 64);
    assert_eq!(d.widths.acc_bits, 8 + 8 + 6);
    assert_eq!(d.widths.score_bits, 16 + 1);
    assert_eq!(d.widths.index_bits, 17);
    assert_eq!(d.layout.tokens_per_beat, 42);
    assert_eq!(d.cycles.scan(32768), 781);
    // Two passes over 4 groups of 32 MACs, each group 64 + 4 cycles: pass 0 4 * 68 and the
    // 5-level max tree + fold, pass 1 (68 + 32) + 3 * 68 (the 32 accumulators drain while the
    // next group computes), + 3. It hides behind a 32K-token scan.
    assert_eq!(d.cycles.lut_build, 4 * 68 + 6 + (68 + 32) + 3 * 68 + 3);
    assert!(d.cycles.lut_build < d.cycles.scan(32768));
    assert_eq!(acc.policy_k(131072), 6554);
}

#[test]
fn golden_recall_on_clustered_keys() {
    // Small runs of every example: the bit-exact engine must retrieve most of the exact
    // top-k, and lose little against float PQ scores.
    for path in example_paths() {
        let acc = Accelerator::from_toml_file(&path).unwrap();
        let opts = GoldenOptions {
            tokens: 4096,
            queries: 4,
            kmeans_iters: 8,
            ..GoldenOptions::default()
        };
        let r = run(&acc, &opts).unwrap();
        let (recall, float_pq) = (r.recall.unwrap(), r.recall_float_pq.unwrap());
        assert!(recall.mean > 0.5, "{}: {r}", path.display());
        assert!(
            recall.mean > float_pq.mean - 0.05,
            "fixed point loses too much: {}: {r}",
            path.display()
        );
        assert!(r.score_correlation.mean > 0.8, "{}: {r}", path.display());
    }
}
