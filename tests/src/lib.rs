//! Shared fixtures of the workspace-level tests.

use std::path::PathBuf;

use hwgen::spec::Accelerator;

/// Root of the repository.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository root")
        .to_path_buf()
}

/// The example descriptions shipped in `examples/`, sorted by name.
pub fn example_paths() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(repo_root().join("examples"))
        .expect("examples/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    paths
}

/// Loads and validates one example by file stem, e.g. `pqcache-llama3`.
pub fn example(name: &str) -> Accelerator {
    let path = repo_root().join("examples").join(format!("{name}.toml"));
    Accelerator::from_toml_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
