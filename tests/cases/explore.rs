//! `hwgen explore` on a small space: every combination becomes a CSV row (invalid ones with
//! the broken rule), valid points are synthesized (Yosys synth_ecp5) and scored (golden-model
//! recall, cycle-model throughput from the interval between queries, top-k included), a
//! Pareto front is marked and both plots are written with every point labelled.

use hwgen_cli::commands::explore;
use kvpq_core::spec::{Accelerator, TopKStrategy};
use kvpq_tests::scratch;

const BASE: &str = r#"
name = "space-base"
[pq]
head_dim = 8
m = 2
code_bits = 2
[quant]
query_bits = 4
centroid_bits = 4
lut_bits = 6
[dist_unit]
macs = 2
[scanner]
lanes = 2
[topk]
strategy = "systolic"
k_max = 4
[engine]
max_tokens = 64
beat_bits = 32
[target]
platform = "ecp5"
clock_mhz = 100.0
"#;

#[test]
fn small_space_is_explored() {
    let dir = scratch("explore", "small");
    std::fs::write(dir.join("base.toml"), BASE).unwrap();
    std::fs::write(
        dir.join("space.toml"),
        "base = \"base.toml\"\ntokens = 64\nqueries = 2\n[sweep]\nlanes = [2, 3]\nm = [1, 2]\n\
         strategy = [\"systolic\", \"select\"]\n",
    )
    .unwrap();
    let out = dir.join("out");
    let points = explore::run(&dir.join("space.toml"), &out, false).unwrap();
    assert_eq!(points.len(), 2 * 2 * 2);
    let (space, base) = explore::load(&dir.join("space.toml")).unwrap();
    let configs = explore::points(&space, &base);
    // 3 lanes do not divide the tokens of a 32-bit beat: refused with the rule.
    for p in &points {
        if p.lanes == 3 {
            assert!(
                p.status.contains("scanner.lanes"),
                "{}: {}",
                p.name,
                p.status
            );
        } else {
            assert_eq!(p.status, "ok", "{}", p.name);
            assert!(
                p.cells.lut4 > 0 && p.cells.ff > 0,
                "{}: {:?}",
                p.name,
                p.cells
            );
            assert!((0.0..=1.0).contains(&p.recall));
            projects_from_the_interval(p, &configs);
        }
    }
    assert!(points.iter().any(|p| p.pareto));
    assert!(points.iter().filter(|p| p.pareto).all(|p| p.status == "ok"));
    let csv = std::fs::read_to_string(out.join("points.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + points.len());
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    for (line, p) in csv.lines().skip(1).zip(&points) {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), header.len(), "{line}");
        let q = &p.projection;
        assert_eq!(cells[column("interval_cycles")], q.interval.to_string());
        assert_eq!(cells[column("k")], q.k.to_string());
        assert_eq!(
            cells[column("engine_efficiency")],
            format!("{:.4}", q.engine_efficiency)
        );
        assert_eq!(
            cells[column("tokens_per_s")],
            format!("{:.0}", q.tokens_per_s())
        );
    }
    for svg in ["recall_vs_throughput.svg", "recall_vs_luts.svg"] {
        let text = std::fs::read_to_string(out.join(svg)).unwrap();
        assert!(text.starts_with("<svg") && text.contains("Pareto"), "{svg}");
        // Few points: every valid one carries its parameters.
        assert!(text.contains("every point labelled"), "{svg}");
        for p in points.iter().filter(|p| p.status == "ok") {
            assert!(text.contains(&p.label()), "{svg} lacks {}", p.label());
        }
    }
    let labels: Vec<String> = points.iter().map(|p| p.label()).collect();
    assert!(
        labels.contains(&"L2 m2 b2 lb6 sys".to_string()),
        "{labels:?}"
    );

    std::fs::write(
        dir.join("bad.toml"),
        "base = \"base.toml\"\n[sweep]\nwidth = [1]\n",
    )
    .unwrap();
    let err = format!(
        "{:#}",
        explore::run(&dir.join("bad.toml"), &out, false).unwrap_err()
    );
    assert!(err.contains("width"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The point's throughput is N x clock / interval, the interval counting the top-k with k
/// from the retrieval policy: a projection from the scan alone fails here.
fn projects_from_the_interval(p: &explore::Point, configs: &[kvpq_core::spec::AcceleratorConfig]) {
    let cfg = configs.iter().find(|c| c.name == p.name).unwrap();
    let acc = Accelerator::new(cfg.clone()).unwrap();
    let c = &acc.derived().cycles;
    let n = 64u64;
    let k = u64::from(acc.policy_k(64).min(cfg.topk.k_max));
    let q = &p.projection;
    assert_eq!((q.tokens, q.k), (n, k), "{}", p.name);
    let interval = c.query_interval(n, k);
    assert_eq!(q.interval, interval, "{}", p.name);
    assert!(interval >= c.scan(n).max(c.topk_drain(n, k)), "{}", p.name);
    let hz = cfg.target.clock_mhz * 1e6;
    let want = n as f64 * hz / interval as f64;
    assert!(
        (p.tokens_per_s() - want).abs() <= 1e-9 * want,
        "{}: {} tokens/s, want {want}",
        p.name,
        p.tokens_per_s()
    );
    let lanes_rate = f64::from(cfg.scanner.lanes) * hz;
    assert!(
        (q.engine_efficiency - want / lanes_rate).abs() < 1e-12,
        "{}",
        p.name
    );
    // 32 scan cycles against a LUT build of 55-71 cycles (systolic) or a select drain of
    // about 100 (threshold passes over the buffer, then the emit pass).
    let bound = match p.strategy {
        TopKStrategy::Systolic => 0.7,
        TopKStrategy::Select => 0.4,
    };
    assert!(
        p.tokens_per_s() < bound * lanes_rate,
        "{}: {} tokens/s of {lanes_rate} the lanes could score",
        p.name,
        p.tokens_per_s()
    );
}
