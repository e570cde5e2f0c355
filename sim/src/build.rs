//! Turns generated RTL into a loadable Verilator model: `verilator --cc --build`, a C ABI shim,
//! and one shared library, cached by content hash so repeated runs do not rebuild.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use askama::Template;
use sha2::{Digest, Sha256};

use crate::error::{Result, SimError};
use crate::ports::{first_difference, parse_ports, PortSpec};
use hwgen::emit::Design;
use hwgen::flow::Tool;

/// Bump when the shim or the build recipe changes, so cached models are rebuilt.
const RECIPE: &str = "kvpq-sim-6";

/// A built model: its shared library and the ports of its top module.
#[derive(Debug, Clone)]
pub struct BuiltModel {
    /// Top module.
    pub top: String,
    /// Shared library to load.
    pub library: PathBuf,
    /// Folder with the RTL, the Verilator output and the logs.
    pub dir: PathBuf,
    /// Ports in shim order: the description's for described modules, else the Verilog's.
    pub ports: Vec<PortSpec>,
}

#[derive(Template)]
#[template(path = "sim/shim.cpp")]
struct Shim<'a> {
    version: &'a str,
    top: &'a str,
    /// Clock input: `ap_clk` for Vitis kernels, `clk` otherwise.
    clock: &'a str,
    ports: Vec<ShimPort>,
}

struct ShimPort {
    id: usize,
    name: String,
    /// Member of the Verilator class: ports named like C++ words get a `__SYM__` prefix.
    member: String,
    width: u32,
    words: usize,
    input: bool,
}

/// The C++ member Verilator gives port `name`. Verilator prefixes names that collide with
/// words it reserves for C++ with `__SYM__`; of those, kvpq only uses Vitis's `interrupt`.
fn verilator_member(name: &str) -> String {
    match name {
        "interrupt" => format!("__SYM__{name}"),
        _ => name.to_string(),
    }
}

/// Default cache: `$KVPQ_SIM_CACHE`, else `target/kvpq-sim` of this workspace.
pub fn default_cache() -> PathBuf {
    std::env::var_os("KVPQ_SIM_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/kvpq-sim"))
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SimError {
    let path = path.to_path_buf();
    move |source| SimError::Io { what, path, source }
}

fn verilator_root(verilator: &Tool) -> Result<PathBuf> {
    let out = Command::new(&verilator.program)
        .args(["--getenv", "VERILATOR_ROOT"])
        .output()
        .map_err(io("running", &verilator.program))?;
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn verilator_version(verilator: &Tool) -> Result<String> {
    let out = Command::new(&verilator.program)
        .arg("--version")
        .output()
        .map_err(io("running", &verilator.program))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The Verilator runtime (verilated.cpp and friends), compiled once per Verilator version.
fn runtime_objects(cache: &Path, root: &Path, version_key: &str) -> Result<Vec<PathBuf>> {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = cache.join(format!("runtime-{version_key}"));
    let sources = [
        "verilated.cpp",
        "verilated_vcd_c.cpp",
        "verilated_threads.cpp",
    ];
    let objects: Vec<PathBuf> = sources
        .iter()
        .map(|s| dir.join(s.replace(".cpp", ".o")))
        .collect();
    if objects.iter().all(|o| o.is_file()) {
        return Ok(objects);
    }
    let tmp = cache.join(format!("runtime-{version_key}.tmp{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(io("creating", &tmp))?;
    let cxx = Tool::find("c++ compiler", "CXX", &["g++", "c++"])?;
    let include = root.join("include");
    for src in sources {
        let obj = src.replace(".cpp", ".o");
        cxx.run(
            &tmp,
            &[
                "-c",
                "-fPIC",
                "-O2",
                "-std=c++17",
                "-I",
                &include.display().to_string(),
                "-I",
                &include.join("vltstd").display().to_string(),
                "-DVM_TRACE=1",
                "-DVM_TRACE_VCD=1",
                &include.join(src).display().to_string(),
                "-o",
                &obj,
            ],
            &tmp.join(format!("{obj}.log")),
        )?;
    }
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp); // another process won the race
    }
    Ok(objects)
}

/// The lock of one model folder in this process.
fn folder_lock(dir: &Path) -> Arc<Mutex<()>> {
    static LOCKS: Mutex<BTreeMap<PathBuf, Arc<Mutex<()>>>> = Mutex::new(BTreeMap::new());
    LOCKS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(dir.to_path_buf())
        .or_default()
        .clone()
}

/// Builds (or finds in `cache`) a model of `top` from the design's Verilog. The engine, the
/// board top and the RTL kernel get their ports from the interface description (an error if
/// their Verilog declares others); internal units get the ports their Verilog declares.
/// The model cannot write VCD traces (see [`build_traced_model`]).
pub fn build_model(design: &Design, top: &str, cache: &Path) -> Result<BuiltModel> {
    build(design, top, cache, false)
}

/// [`build_model`] with `--trace`, so that the model can write VCD traces: builds ~20% slower
/// and simulates ~10% slower, so only runs that write a trace use it.
pub fn build_traced_model(design: &Design, top: &str, cache: &Path) -> Result<BuiltModel> {
    build(design, top, cache, true)
}

fn build(design: &Design, top: &str, cache: &Path, trace: bool) -> Result<BuiltModel> {
    let verilator = Tool::verilator()?;
    let version = verilator_version(&verilator)?;
    let source = design
        .sources
        .iter()
        .find(|f| f.module == top)
        .ok_or_else(|| SimError::Interface {
            module: top.into(),
            what: "not generated".into(),
        })?;
    let parsed = parse_ports(&source.text, top).ok_or_else(|| SimError::Interface {
        module: top.into(),
        what: "no ANSI port list found".into(),
    })?;
    // Described modules are driven by their description; the Verilog must agree with it.
    let ports = match design.manifest.interface.module_ports(top) {
        Some(described) => {
            let described: Vec<PortSpec> = described.iter().map(PortSpec::from).collect();
            if let Some(what) = first_difference(&described, &parsed) {
                return Err(SimError::Interface {
                    module: top.into(),
                    what: format!("the Verilog disagrees with the interface description: {what}"),
                });
            }
            described
        }
        None => parsed,
    };
    let clock = ["ap_clk", "clk"]
        .into_iter()
        .find(|c| ports.iter().any(|p| p.input && p.name == *c))
        .ok_or_else(|| SimError::Interface {
            module: top.into(),
            what: "no clock input (`clk` or `ap_clk`)".into(),
        })?;
    let shim = Shim {
        version: env!("CARGO_PKG_VERSION"),
        top,
        clock,
        ports: ports
            .iter()
            .enumerate()
            .map(|(id, p)| ShimPort {
                id,
                name: p.name.clone(),
                member: verilator_member(&p.name),
                width: p.width,
                words: p.words(),
                input: p.input,
            })
            .collect(),
    }
    .render()?;

    let mut h = Sha256::new();
    let variant = if trace { "trace" } else { "notrace" };
    for part in [
        RECIPE,
        variant,
        &version,
        top,
        &design.manifest.content_hash,
        &shim,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let key: String = h
        .finalize()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect();
    let suffix = if trace { "-trace" } else { "" };
    let dir = cache.join(format!(
        "{}-{top}-{key}{suffix}",
        design.manifest.config.name
    ));
    let library = dir.join("libkvpq_sim.so");
    let model = BuiltModel {
        top: top.into(),
        library: library.clone(),
        dir: dir.clone(),
        ports,
    };
    if library.is_file() {
        return Ok(model);
    }
    // Threads of this process would share the `.tmp<pid>` folder below: the first builds,
    // the others wait and take its model.
    let lock = folder_lock(&dir);
    let _building = lock.lock().unwrap_or_else(|e| e.into_inner());
    if library.is_file() {
        return Ok(model);
    }

    let version_key: String = Sha256::digest(version.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    let root = verilator_root(&verilator)?;
    let runtime = runtime_objects(cache, &root, &version_key)?;
    let tmp = cache.join(format!(
        "{}.tmp{}",
        dir.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    design.write(&tmp)?;
    std::fs::write(tmp.join("shim.cpp"), &shim).map_err(io("writing", &tmp))?;
    let files: Vec<String> = design
        .sources
        .iter()
        .filter(|f| f.module != "kvpq_board_top" || top == "kvpq_board_top")
        .map(|f| f.file_name.clone())
        .collect();
    // Speed of the model against its build time (docs/measurements.md, "Verilator model
    // speed"): Verilator -O3 and fast X handling; the per-cycle code (OPT_FAST, -Os by
    // default) at -O2, the run-once code (OPT_SLOW) unoptimised since it runs once.
    let mut args: Vec<&str> = vec![
        "--cc",
        "--build",
        "-j",
        "2",
        "-O3",
        "--x-assign",
        "fast",
        "--x-initial",
        "fast",
        "--noassert",
        "-Wno-fatal",
        "--top-module",
        top,
        "-Mdir",
        "obj",
        "-CFLAGS",
        "-fPIC",
        "-MAKEFLAGS",
        "OPT_FAST=-O2",
        "-MAKEFLAGS",
        "OPT_SLOW=-O0",
    ];
    if trace {
        args.push("--trace");
    }
    args.extend(files.iter().map(String::as_str));
    verilator.run(&tmp, &args, &tmp.join("verilator.log"))?;

    let include = root.join("include");
    let cxx = Tool::find("c++ compiler", "CXX", &["g++", "c++"])?;
    cxx.run(
        &tmp,
        &[
            "-c",
            "-fPIC",
            "-O1",
            "-std=c++17",
            "-I",
            "obj",
            "-I",
            &include.display().to_string(),
            "-I",
            &include.join("vltstd").display().to_string(),
            if trace {
                "-DVM_TRACE=1"
            } else {
                "-DVM_TRACE=0"
            },
            "shim.cpp",
            "-o",
            "shim.o",
        ],
        &tmp.join("shim.log"),
    )?;
    let archive = format!("obj/V{top}__ALL.a");
    let mut link: Vec<String> = vec![
        "-shared".into(),
        "-o".into(),
        "libkvpq_sim.so".into(),
        "shim.o".into(),
        archive,
    ];
    link.extend(runtime.iter().map(|o| o.display().to_string()));
    link.push("-pthread".into());
    let link_args: Vec<&str> = link.iter().map(String::as_str).collect();
    cxx.run(&tmp, &link_args, &tmp.join("link.log"))?;
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp); // built concurrently elsewhere: use that one
    }
    Ok(model)
}
