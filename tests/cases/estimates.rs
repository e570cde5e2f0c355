//! UltraScale+ estimates (`hwgen estimate`) of a small design: Yosys `synth_xilinx -family
//! xcup` runs, the estimate lands in manifest.json, per-module numbers add up to the total,
//! and `hwgen report` prints it per lane.

use hwgen::targets::alveo::estimate::{Estimate, Resources};
use hwgen_cli::commands::{estimate, generate, report};
use kvpq_core::spec::{Accelerator, Platform};
use kvpq_tests::random::small_accelerators;
use kvpq_tests::scratch;

fn small_alveo() -> Accelerator {
    small_accelerators(7, 1)[0]
        .retarget(Platform::U55c)
        .unwrap()
}

#[test]
fn estimate_is_recorded_and_reported() {
    let acc = small_alveo();
    let dir = scratch("estimates", "recorded");
    generate::write_design(&acc, &dir).unwrap();

    let engine = estimate::run(&dir, None).expect("engine estimate");
    assert_eq!(engine.top, "pq_topk_engine");
    // The engine instantiates each unit once: the modules add up to the total.
    let mut sum = Resources::default();
    for r in engine.modules.values() {
        sum += *r;
    }
    assert_eq!(sum, engine.total);
    for unit in ["pq_dist_unit", "lut_scanner", "pq_topk_engine"] {
        assert!(
            engine.modules.contains_key(unit),
            "{unit} missing: {engine}"
        );
    }
    assert!(engine.total.lut > 0 && engine.total.ff > 0, "{engine}");

    let kernel = estimate::run(&dir, Some("kvpq_krnl")).expect("kernel estimate");
    assert!(kernel.modules.contains_key("kvpq_axi_reader"));
    assert!(
        kernel.total.ff > engine.total.ff,
        "the AXI wrapper adds registers"
    );

    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let recorded: Estimate =
        serde_json::from_value(manifest["estimates"]["xcup"]["pq_topk_engine"].clone()).unwrap();
    assert_eq!(recorded, engine);
    assert!(manifest["estimates"]["xcup"]["kvpq_krnl"].is_object());

    let text = report::run(&dir).unwrap();
    assert!(text.contains("per lane"), "{text}");
    assert!(text.contains(&format!("{}", engine.total.lut)), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn estimate_names_what_is_wrong() {
    let dir = scratch("estimates", "empty");
    let err = format!("{:#}", estimate::run(&dir, None).unwrap_err());
    assert!(
        err.contains("manifest.json") && err.contains("hwgen generate"),
        "{err}"
    );

    let acc = small_alveo();
    generate::write_design(&acc, &dir).unwrap();
    let err = format!(
        "{:#}",
        estimate::run(&dir, Some("no_such_module")).unwrap_err()
    );
    assert!(err.contains("no_such_module"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
