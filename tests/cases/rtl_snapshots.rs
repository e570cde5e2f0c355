//! Golden files of the RTL generated for the default description, so every template change
//! shows up in review. After an intended change: `KVPQ_BLESS=1 cargo test -p kvpq-tests
//! --test kvpq -- rtl_snapshots::` rewrites them.

use std::path::PathBuf;

use hwgen::emit::Design;
use kvpq_tests::{example, repo_root};

fn snapshot_dir(name: &str) -> PathBuf {
    repo_root().join("tests/snapshots").join(name)
}

#[test]
fn default_config_rtl_matches_snapshots() {
    let name = "pqcache-llama3";
    let design = Design::render(&example(name)).unwrap();
    let files = design.files().unwrap();
    let dir = snapshot_dir(name);
    if std::env::var_os("KVPQ_BLESS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (file, text) in &files {
            std::fs::write(dir.join(file), text).unwrap();
        }
        return;
    }
    for (file, text) in &files {
        let path = dir.join(file);
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run with KVPQ_BLESS=1 to create it",
                path.display()
            )
        });
        if &want != text {
            let line = want
                .lines()
                .zip(text.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| want.lines().count().min(text.lines().count()));
            panic!(
                "{} differs from the generated file at line {}:\n  snapshot:  {:?}\n  generated: {:?}\n\
                 review the change, then run with KVPQ_BLESS=1 to accept it",
                path.display(),
                line + 1,
                want.lines().nth(line),
                text.lines().nth(line)
            );
        }
    }
}
