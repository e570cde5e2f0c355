//! `hwgen explore` on a small space: every combination becomes a CSV row (invalid ones with
//! the broken rule), valid points are synthesized (Yosys synth_ecp5) and scored (golden-model
//! recall, cycle-model throughput), a Pareto front is marked and both plots are written.

use hwgen_cli::commands::explore;
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
            assert!(p.tokens_per_s > 0.0);
        }
    }
    assert!(points.iter().any(|p| p.pareto));
    assert!(points.iter().filter(|p| p.pareto).all(|p| p.status == "ok"));
    let csv = std::fs::read_to_string(out.join("points.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + points.len());
    for svg in ["recall_vs_throughput.svg", "recall_vs_luts.svg"] {
        let text = std::fs::read_to_string(out.join(svg)).unwrap();
        assert!(text.starts_with("<svg") && text.contains("Pareto"), "{svg}");
    }

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
