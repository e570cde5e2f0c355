//! The generated Vitis project cannot run here (no AMD tools), so its files are checked for
//! consistency with each other and with the RTL: `kernel.xml` parses and names exactly the
//! kernel's AXI interfaces (with their data widths) and the manifest's arguments; every
//! buffer argument is mapped to HBM in both connectivity configs; the HLS signature and
//! pragmas list the same arguments and bundles; the Makefile dry-runs for both kernels;
//! `package_kernel.tcl` runs under tclsh with Vivado's commands recorded instead of run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use hwgen::targets::alveo::{ArgKind, KernelInterface};
use hwgen_cli::commands::generate;
use kvpq_core::spec::{Accelerator, Platform};
use kvpq_tests::random::small_accelerators;
use kvpq_tests::scratch;
use sim::ports::parse_ports;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Generates the folder of `acc` like `hwgen generate --target`; returns it and the interface.
fn generate_project(acc: &Accelerator) -> (PathBuf, KernelInterface) {
    let dir = scratch("alveo_project", &acc.config().name);
    let done = generate::generate(acc, &dir, false, false).expect("generate");
    let (design, _) = generate::planned_files(acc, false).expect("render");
    let written = &done.written;
    let count = |sub: &str| {
        written
            .iter()
            .filter(|p| p.starts_with(dir.join(sub)))
            .count()
    };
    assert_eq!(
        count("hls"),
        3,
        "kernel, parameter header, C simulation harness"
    );
    assert_eq!(
        count("vitis"),
        6,
        "kernel.xml, tcl, Makefile, README, 2 configs"
    );
    assert_eq!(
        written.len() - design.files().expect("design files").len(),
        9,
        "nothing else"
    );
    let kernel = design
        .manifest
        .interface
        .kernel
        .clone()
        .expect("Alveo design has a kernel");
    (dir, kernel)
}

fn check_kernel_xml(dir: &Path, k: &KernelInterface) {
    let rtl = read(&dir.join("kvpq_krnl.v"));
    let ports = parse_ports(&rtl, "kvpq_krnl").expect("kvpq_krnl port list");
    let port_width = |name: &str| {
        ports
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("kvpq_krnl has no port {name}"))
            .width
    };
    let text = read(&dir.join("vitis/kernel.xml"));
    let doc = roxmltree::Document::parse(&text).expect("kernel.xml is well-formed XML");
    let kernel = doc
        .descendants()
        .find(|n| n.has_tag_name("kernel"))
        .expect("<kernel>");
    assert_eq!(kernel.attribute("name"), Some(k.rtl_kernel.as_str()));
    assert_eq!(kernel.attribute("hwControlProtocol"), Some("ap_ctrl_hs"));

    // Ports: exactly the control slave and the masters, widths as in the RTL.
    let xml_ports: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("port"))
        .collect();
    let mut names = BTreeSet::new();
    for p in &xml_ports {
        let name = p.attribute("name").expect("port name");
        names.insert(name.to_string());
        let width: u32 = p.attribute("dataWidth").unwrap().parse().unwrap();
        match p.attribute("mode") {
            Some("slave") => {
                assert_eq!(name, k.control);
                assert_eq!(width, port_width(&format!("{name}_wdata")));
                let range =
                    u32::from_str_radix(p.attribute("range").unwrap().trim_start_matches("0x"), 16)
                        .unwrap();
                assert_eq!(1u32 << port_width(&format!("{name}_awaddr")), range);
            }
            Some("master") => {
                assert_eq!(width, port_width(&format!("{name}_rdata")), "{name}");
                assert_eq!(width, port_width(&format!("{name}_wdata")), "{name}");
                assert_eq!(64, port_width(&format!("{name}_araddr")), "{name}");
            }
            other => panic!("port {name}: mode {other:?}"),
        }
    }
    // Every AXI signal of the RTL belongs to a declared interface, and back.
    let interfaces: BTreeSet<String> = ports
        .iter()
        .filter(|p| !["ap_clk", "ap_rst_n", "interrupt"].contains(&p.name.as_str()))
        .map(|p| {
            p.name
                .rsplit_once('_')
                .expect("<interface>_<signal>")
                .0
                .to_string()
        })
        .collect();
    assert_eq!(names, interfaces);

    // Arguments: the manifest's, in order, on declared ports.
    let args: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("arg"))
        .collect();
    assert_eq!(args.len(), k.args.len());
    for (x, a) in args.iter().zip(&k.args) {
        let hex = |attr: &str| {
            u32::from_str_radix(x.attribute(attr).unwrap().trim_start_matches("0x"), 16).unwrap()
        };
        assert_eq!(x.attribute("name"), Some(a.name.as_str()));
        assert_eq!(x.attribute("id").unwrap().parse::<u32>().unwrap(), a.id);
        assert_eq!(hex("offset"), a.offset, "{}", a.name);
        assert_eq!(hex("size"), a.size, "{}", a.name);
        let port = x.attribute("port").unwrap();
        assert!(names.contains(port), "{} on undeclared port {port}", a.name);
        match a.kind {
            ArgKind::Buffer => {
                assert_eq!(Some(port), a.master.as_deref());
                assert_eq!(x.attribute("addressQualifier"), Some("1"));
            }
            ArgKind::Scalar => {
                assert_eq!(port, k.control);
                assert_eq!(x.attribute("addressQualifier"), Some("0"));
            }
        }
        // The control slave decodes the argument's registers.
        let ctrl = read(&dir.join("kvpq_axi_lite_ctrl.v"));
        assert!(
            ctrl.contains(&format!("12'h{:03x}: arg_{}", a.offset, a.name)),
            "{}",
            a.name
        );
    }
    // Registers do not overlap and stay inside the control range.
    let mut spans: Vec<(u32, u32)> = k
        .args
        .iter()
        .map(|a| (a.offset, a.offset + a.size))
        .collect();
    spans.sort();
    assert!(spans[0].0 >= 0x10);
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "overlapping registers {w:?}");
    }
}

fn check_connectivity(dir: &Path, k: &KernelInterface) {
    for (flavour, kernel) in [("rtl", &k.rtl_kernel), ("hls", &k.hls_kernel)] {
        let text = read(&dir.join(format!("vitis/connectivity_{flavour}.cfg")));
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        assert_eq!(lines[0], "[connectivity]");
        assert_eq!(lines[1], format!("nk={kernel}:1:{kernel}_1"));
        let mut mapped = BTreeSet::new();
        for l in &lines[2..] {
            let rest = l
                .strip_prefix("sp=")
                .unwrap_or_else(|| panic!("unexpected line {l}"));
            let (target, bank) = rest.split_once(':').expect("sp=cu.arg:bank");
            let arg = target
                .strip_prefix(&format!("{kernel}_1."))
                .expect("compute unit");
            let a = k
                .arg(arg)
                .unwrap_or_else(|| panic!("sp names unknown argument {arg}"));
            let m = k
                .master(a.master.as_deref().expect("only buffers are mapped"))
                .unwrap();
            assert_eq!(bank, format!("HBM[{}]", m.hbm_channel));
            assert!(mapped.insert(arg.to_string()), "{arg} mapped twice");
        }
        let buffers: BTreeSet<String> = k
            .args
            .iter()
            .filter(|a| a.kind == ArgKind::Buffer)
            .map(|a| a.name.to_string())
            .collect();
        assert_eq!(mapped, buffers, "{flavour}: every buffer on HBM");
    }
}

fn check_hls(dir: &Path, k: &KernelInterface) {
    let text = read(&dir.join("hls/pq_topk_kernel.cpp"));
    let sig_start = text
        .find(&format!("extern \"C\" void {}(", k.hls_kernel))
        .expect("signature");
    // One argument per line, each followed by its comment; the body opens after the last.
    let sig = &text[sig_start..sig_start + text[sig_start..].find(") {").unwrap()];
    let names: Vec<&str> = sig
        .lines()
        .skip(1)
        .map(|l| {
            l.split("//")
                .next()
                .unwrap()
                .trim()
                .trim_end_matches(") {")
                .trim_end_matches(',')
        })
        .filter(|l| !l.is_empty())
        .map(|l| l.rsplit([' ', '*']).next().unwrap())
        .collect();
    let want: Vec<&str> = k.args.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, want, "HLS arguments in XRT order");
    for a in &k.args {
        let pragma = match a.master.as_deref() {
            Some(m) => format!(
                "#pragma HLS INTERFACE m_axi port={} offset=slave bundle={}",
                a.name,
                k.master(m).unwrap().bundle
            ),
            None => format!("#pragma HLS INTERFACE s_axilite port={}", a.name),
        };
        assert!(text.contains(&pragma), "missing: {pragma}");
    }
    for p in ["PIPELINE II=1", "DATAFLOW", "ARRAY_PARTITION variable=lut"] {
        assert!(
            text.contains(&format!("#pragma HLS {p}")),
            "missing pragma {p}"
        );
    }
}

fn check_makefile(dir: &Path, k: &KernelInterface) {
    for (flavour, xo) in [("rtl", &k.rtl_kernel), ("hls", &k.hls_kernel)] {
        let out = Command::new("make")
            .args(["-n", &format!("KERNEL={flavour}")])
            .current_dir(dir.join("vitis"))
            .output()
            .expect("make runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "make -n KERNEL={flavour}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(&format!("{xo}.xo")), "{stdout}");
        assert!(stdout.contains(&format!("--config connectivity_{flavour}.cfg")));
        assert!(stdout.contains(&format!("--platform {}", k.vitis_platform)));
    }
}

fn check_package_tcl(dir: &Path, k: &KernelInterface) {
    // Vivado's commands are unknown to tclsh: record them (with their arguments) and go on.
    let log = dir.join("vitis/tcl_calls.txt");
    let driver = format!(
        "set calls [open {{{log}}} w]\n\
         proc unknown args {{ puts $::calls $args; return {{}} }}\n\
         set argv [list out.xo {part} work]\nset argc 3\n\
         source {{{script}}}\nclose $calls\n",
        log = log.display(),
        part = k.part,
        script = dir.join("vitis/package_kernel.tcl").display()
    );
    let out = Command::new("tclsh")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(driver.as_bytes())?;
            child.wait_with_output()
        })
        .expect("tclsh runs");
    assert!(
        out.status.success(),
        "tclsh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = read(&log);
    // Every source the script adds exists and is a kernel file named in the manifest.
    let add = calls
        .lines()
        .find(|l| l.starts_with("add_files"))
        .expect("add_files call");
    let manifest: serde_json::Value =
        serde_json::from_str(&read(&dir.join("manifest.json"))).unwrap();
    let listed: BTreeSet<String> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    let mut added = 0;
    // The call is recorded as a Tcl list: the file list is one braced word.
    let words = add.split_whitespace().map(|w| w.trim_matches(['{', '}']));
    for path in words.filter(|w| w.ends_with(".v")) {
        let path = Path::new(path);
        assert!(path.is_file(), "{} does not exist", path.display());
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(listed.contains(name), "{name} not in the manifest");
        assert_ne!(name, "kvpq_board_top.v");
        added += 1;
    }
    assert_eq!(added, listed.len() - 1, "every file but the board top");
    assert!(calls.contains(&format!("set_property top {}", k.rtl_kernel)));
    for busif in std::iter::once(&k.control).chain(k.masters.iter().map(|m| &m.name)) {
        assert!(
            calls.contains(&format!(
                "ipx::associate_bus_interfaces -busif {busif} -clock ap_clk"
            )),
            "{busif} not associated with ap_clk"
        );
    }
    let package = calls
        .lines()
        .find(|l| l.starts_with("package_xo"))
        .expect("package_xo call");
    assert!(package.contains(&format!("-kernel_name {}", k.rtl_kernel)));
    assert!(package.contains("kernel.xml"));
}

fn check(acc: &Accelerator) {
    let (dir, k) = generate_project(acc);
    check_kernel_xml(&dir, &k);
    check_connectivity(&dir, &k);
    check_hls(&dir, &k);
    check_makefile(&dir, &k);
    check_package_tcl(&dir, &k);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn example_projects_are_consistent() {
    check(&kvpq_tests::example("pqcache-llama3"));
    check(
        &kvpq_tests::example("fastscan-4bit")
            .retarget(Platform::U280)
            .unwrap(),
    );
}

#[test]
fn random_projects_are_consistent() {
    for (i, acc) in small_accelerators(41, 8).iter().enumerate() {
        let platform = if i.is_multiple_of(2) {
            Platform::U280
        } else {
            Platform::U55c
        };
        check(&acc.retarget(platform).unwrap());
    }
}

#[test]
fn non_alveo_targets_have_no_kernel() {
    let acc = kvpq_tests::example("fastscan-4bit");
    let design = hwgen::emit::Design::render(&acc).unwrap();
    assert!(design.manifest.interface.kernel.is_none());
    assert!(!design.verilog_files().contains(&"kvpq_krnl.v".to_string()));
    let err = acc
        .retarget(Platform::U55c)
        .and_then(|a| {
            let mut c = a.config().clone();
            c.engine.beat_bits = 2048;
            c.pq.m = 32;
            Accelerator::new(c)
        })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("engine.beat_bits") && err.contains("1024"),
        "{err}"
    );
}
