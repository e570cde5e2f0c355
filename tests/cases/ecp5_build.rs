//! The open ECP5 flow end to end on a small description: Yosys, nextpnr-ecp5 and ecppack
//! produce a ULX3S bitstream, the manifest records Fmax and utilization, and `hwgen report`
//! prints them with the projections. The example descriptions take much longer; they run
//! with `KVPQ_ECP5_EXAMPLES=1 cargo test -p kvpq-tests --test kvpq -- ecp5_build:: --nocapture`.

use hwgen::flow::lint::verilator_lint;
use hwgen::targets::ecp5::{self, flow, synth::Ecp5Cells, ulx3s};
use hwgen_cli::commands::{build, report};
use kvpq_core::spec::Platform;
use kvpq_core::spec::{
    Accelerator, AcceleratorBuilder, EngineConfig, PqConfig, QuantConfig, ScannerConfig,
    TargetConfig, TopKConfig,
};
use kvpq_tests::scratch;

fn small(clock_mhz: f64) -> Accelerator {
    AcceleratorBuilder::new("ecp5-small", PqConfig::new(8, 2, 2))
        .quant(QuantConfig::new(4, 4, 6))
        .dist_unit(kvpq_core::spec::DistUnitConfig::new(2))
        .scanner(ScannerConfig::new(2))
        .topk(TopKConfig::systolic(4))
        .engine(EngineConfig::new(64).with_beat_bits(32))
        .target(TargetConfig::new(Platform::Ecp5, clock_mhz))
        .build()
        .unwrap()
}

#[test]
fn small_design_builds_a_bitstream_and_reports_it() {
    let root = scratch("ecp5_build", "small");
    let (dir, manifest) =
        build::run(&small(100.0), Platform::Ecp5, &root, 1, true).expect("ECP5 flow");
    let record = manifest.ecp5.expect("the build records the bitstream");
    let bit = std::fs::read(dir.join(&record.bitstream)).unwrap();
    // ECP5 bitstreams carry the preamble 0xBDB3 after their comment header.
    assert!(
        bit.windows(2).any(|w| w == [0xbd, 0xb3]),
        "no ECP5 preamble"
    );
    assert!(bit.len() > 10_000, "bitstream of {} bytes", bit.len());
    assert!(record.fmax.achieved > 10.0, "{:?}", record.fmax);
    assert_eq!(record.fmax.constraint, 100.0);
    let comb = record.utilization["TRELLIS_COMB"];
    assert!(comb.used > 100 && comb.available == 83640, "{comb:?}");
    assert!(record.utilization["EHXPLLL"].used == 1);
    for log in ["synth_ecp5.log", "pnr.log", "report.json"] {
        assert!(dir.join(log).is_file(), "{log} missing");
    }
    let text = report::run(&dir).unwrap();
    for want in [
        "ECP5 bitstream",
        "LUT4 (TRELLIS_COMB)",
        "projected at the achieved",
        "eng eff",
        "M tokens/s",
        "us/query",
    ] {
        assert!(text.contains(want), "report lacks {want}:\n{text}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn board_files_are_clean_and_checked() {
    // The UART modules are portable: Verilator -Wall must accept them.
    let acc = small(100.0);
    let dir = scratch("ecp5_build", "uart");
    let files = ulx3s::render(&acc).unwrap();
    hwgen::emit::write_files(&dir, &files).unwrap();
    for top in ["kvpq_uart_rx", "kvpq_uart_tx"] {
        verilator_lint(&dir, &[format!("{top}.v")], top).unwrap_or_else(|e| panic!("{top}: {e}"));
    }
    let lpf = std::fs::read_to_string(dir.join(ulx3s::LPF)).unwrap();
    for port in ["clk_25mhz", "ftdi_txd", "ftdi_rxd", "led[7]"] {
        assert!(
            lpf.contains(&format!("\"{port}\"")),
            "{port} not constrained"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    // A clock the PLL cannot make is refused with the field's name.
    let err = ulx3s::render(&small(900.0)).unwrap_err().to_string();
    assert!(err.contains("target.clock_mhz"), "{err}");
}

#[test]
fn an_over_full_device_stops_after_synthesis() {
    let acc = small(100.0);
    let dir = scratch("ecp5_build", "full");
    let design = hwgen::emit::Design::render(&acc).unwrap();
    design.write(&dir).unwrap();
    let board = ulx3s::render(&acc).unwrap();
    hwgen::emit::write_files(&dir, &board).unwrap();
    let files = ecp5::files(&design.verilog_files());
    let job = flow::Ecp5Job {
        capacity: Ecp5Cells {
            lut4: 100,
            ff: 1_000_000,
            bram: 10,
            dsp: 10,
        },
        ..ulx3s::job(&dir, &files, 1)
    };
    let err = flow::build(&job, |_, _| {}).unwrap_err().to_string();
    assert!(
        err.contains("does not fit") && err.contains("LUT4 sites: needs"),
        "{err}"
    );
    assert!(!dir.join("pnr.log").exists(), "nextpnr must not run");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn example_bitstreams_when_asked() {
    if std::env::var_os("KVPQ_ECP5_EXAMPLES").is_none() {
        return;
    }
    let root = scratch("ecp5_build", "examples");
    for path in kvpq_tests::example_paths() {
        let acc = Accelerator::from_toml_file(&path).unwrap();
        match build::run(&acc, Platform::Ecp5, &root, 1, false) {
            Ok((dir, _)) => println!("{}", report::run(&dir).unwrap()),
            Err(e) => println!("{}: {e:#}", path.display()),
        }
    }
}
