//! Generated RTL is clean under `verilator --lint-only -Wall` and under Yosys synthesis with
//! `check -assert` (no latches, undriven nets or logic loops): the example descriptions, and a
//! sweep of random valid descriptions, every third one with the Alveo RTL kernel (50 by default; `KVPQ_RTL_SWEEP=N` for more,
//! `KVPQ_RTL_SEED=S` for another draw).

use hwgen::emit::Design;
use hwgen::flow::lint::verilator_lint;
use hwgen::flow::tools::Tool;
use hwgen::flow::yosys::SynthMode;
use hwgen_cli::commands::lint::{self, check_tops};
use kvpq_core::spec::{Accelerator, Platform};
use kvpq_tests::{env_or, example_paths, random::small_accelerators, scratch};
use rayon::prelude::*;

#[test]
fn example_rtl_is_lint_clean() {
    for path in example_paths() {
        let acc = Accelerator::from_toml_file(&path).unwrap();
        let dir = scratch("rtl_checks", &acc.config().name);
        let design = Design::render(&acc).unwrap();
        design.write(&dir).unwrap();
        for top in check_tops(&design) {
            verilator_lint(&dir, &design.verilog_files(), top)
                .unwrap_or_else(|e| panic!("{} ({top}): {e}", path.display()));
        }
    }
}

#[test]
fn random_configs_are_lint_and_synthesis_clean() {
    let count = env_or("KVPQ_RTL_SWEEP", 50) as usize;
    let seed = env_or("KVPQ_RTL_SEED", 1);
    // Every third description targets an Alveo card, so the RTL kernel is checked too.
    let accs: Vec<Accelerator> = small_accelerators(seed, count)
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            if i % 3 == 2 {
                a.retarget(Platform::U280).expect("small beats fit AXI")
            } else {
                a
            }
        })
        .collect();
    let failures: Vec<String> = accs
        .par_iter()
        .filter_map(|acc| {
            let dir = scratch("rtl_checks", &acc.config().name);
            lint::run(acc, &dir, SynthMode::Full).err().map(|e| {
                format!(
                    "{} ({}):\n{e:#}\n--- config ---\n{}",
                    acc.config().name,
                    dir.display(),
                    acc.config().to_toml_string()
                )
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {count} configs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The networks that synthesis gets from `popcount` and `prefix_count` (Verilator simulates
/// `$countones` and a running count unless TREE = 1) count like them:
/// tests/rtl/counting_tb.sv, built and run with Verilator, at the select unit's widths and
/// odd ones around them.
#[test]
fn counting_networks_count_like_their_simulation_models() {
    let path = example_paths()
        .into_iter()
        .find(|p| p.ends_with("pqcache-llama3.toml"))
        .expect("the default example");
    let acc = Accelerator::from_toml_file(&path).unwrap();
    let dir = scratch("rtl_checks", "counting_tb");
    let design = Design::render(&acc).unwrap();
    design.write(&dir).unwrap();
    let bench = concat!(env!("CARGO_MANIFEST_DIR"), "/rtl/counting_tb.sv");
    std::fs::copy(bench, dir.join("counting_tb.sv")).unwrap();
    let verilator = Tool::verilator().unwrap();
    verilator
        .run(
            &dir,
            &[
                "--binary",
                "-j",
                "2",
                "-Wall",
                "--top-module",
                "counting_tb",
                "-Mdir",
                "obj",
                "counting_tb.sv",
                "popcount.v",
                "prefix_count.v",
            ],
            &dir.join("verilator.log"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(dir.join("obj/Vcounting_tb"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("counting ok"),
        "{text}"
    );
}
