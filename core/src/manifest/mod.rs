//! The manifest written beside generated RTL: the description, every derived width, the
//! interface, the code packing, the generated files and a content hash, plus what the flows
//! record later (estimates, the ECP5 build). It round-trips: `hwgen report` and the runtime
//! read it back typed, and refuse one that is malformed, newer than this crate, or whose
//! derived view or interface disagrees with its own description.

mod records;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

pub use records::{ClockFmax, Ecp5Record, Estimate, Estimates, Resources, Usage};

use crate::interface::{Interface, KernelError};
use crate::spec::{Accelerator, AcceleratorConfig, CodeLayout, ConfigError, Derived};

/// Version of the manifest format this crate writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
/// File name of the manifest inside a generated folder.
pub const FILE_NAME: &str = "manifest.json";
/// Largest manifest read (bytes); real ones are tens of kilobytes.
pub const MAX_BYTES: u64 = 16 << 20;
/// The packing rule, in words.
pub const PACKING_RULE: &str = "token i of a beat at bits [i*M*b, (i+1)*M*b), code m of a \
     token at bits [m*b, (m+1)*b), little-endian; unused high bits and the tail of the last \
     beat are zero";

/// One generated source file, in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Module defined by the file.
    pub module: String,
    /// File name, e.g. `lut_scanner.v`.
    pub file_name: String,
    /// File contents.
    pub text: String,
}

/// One generated file, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// File name inside the folder.
    pub name: String,
    /// Module it defines.
    pub module: String,
    /// SHA-256 of its contents (hex).
    pub sha256: String,
}

/// How code beats are laid out (docs/design.md section 4), in words and numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackingDoc {
    /// The layout numbers.
    pub layout: CodeLayout,
    /// The rule.
    pub rule: String,
}

/// Everything a consumer of the generated folder needs to know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version ([`FORMAT_VERSION`] when written by this crate).
    pub format_version: u32,
    /// Generator and version.
    pub generator: String,
    /// Top module.
    pub top: String,
    /// The description.
    pub config: AcceleratorConfig,
    /// Derived widths, packing, storage and cycle model.
    pub derived: Derived,
    /// Stream widths, engine ports, board protocol and (Alveo targets) the kernel.
    pub interface: Interface,
    /// Code packing.
    pub packing: PackingDoc,
    /// Generated files.
    pub files: Vec<FileEntry>,
    /// SHA-256 over the description and every file (hex).
    pub content_hash: String,
    /// Resource estimates recorded by `hwgen estimate`.
    #[serde(default, skip_serializing_if = "Estimates::is_empty")]
    pub estimates: Estimates,
    /// The ECP5 build recorded by `hwgen build --target ecp5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecp5: Option<Ecp5Record>,
}

/// Why a manifest cannot be read or trusted.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The manifest's path.
        path: PathBuf,
        /// The OS error: part of the message, not a chained source, so it prints once.
        error: std::io::Error,
    },
    /// The file is larger than any manifest.
    #[error("{path}: {bytes} bytes is not a manifest (at most {MAX_BYTES} bytes are read)")]
    TooLarge {
        /// The manifest's path.
        path: PathBuf,
        /// Its size.
        bytes: u64,
    },
    /// The text is not JSON, or a field is missing or has the wrong type.
    #[error("manifest field `{field}`: {message}")]
    Field {
        /// Dotted path of the field (`.` for the whole document).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Written by a newer kvpq.
    #[error(
        "manifest field `format_version`: {found} is newer than this kvpq reads ({FORMAT_VERSION}); \
         regenerate the folder or update kvpq"
    )]
    NewerVersion {
        /// The version found.
        found: u64,
    },
    /// The description does not validate.
    #[error("manifest field `config`: {0}")]
    Config(#[from] ConfigError),
    /// A field disagrees with what the description derives.
    #[error(
        "manifest field `{field}` disagrees with what its `config` derives (edited by hand, or \
         written by another kvpq version): {detail}"
    )]
    Inconsistent {
        /// The field.
        field: &'static str,
        /// What differs.
        detail: String,
    },
    /// A recorded flow result is impossible.
    #[error("manifest field `{field}`: {what}")]
    Implausible {
        /// Dotted path of the field.
        field: String,
        /// What is wrong.
        what: String,
    },
    /// A generated file is missing or differs from the hash the manifest lists.
    #[error("{path}: {what}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The content hash of `config` and `files` (name, text), and each file's SHA-256.
fn hashes<'a>(
    config: &AcceleratorConfig,
    files: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> (String, Vec<String>) {
    let mut all = Sha256::new();
    all.update(config.to_toml_string().as_bytes());
    let each = files
        .into_iter()
        .map(|(name, text)| {
            all.update(name.as_bytes());
            all.update([0u8]);
            all.update(text.as_bytes());
            hex(&Sha256::digest(text.as_bytes()))
        })
        .collect();
    (hex(&all.finalize()), each)
}

impl Manifest {
    /// Builds the manifest of `files` generated for `acc`.
    pub fn new(acc: &Accelerator, files: &[SourceFile]) -> Result<Self, KernelError> {
        let mut sorted: Vec<&SourceFile> = files.iter().collect();
        sorted.sort_by(|a, b| a.file_name.cmp(&b.file_name));
        let (content_hash, sums) = hashes(
            acc.config(),
            sorted
                .iter()
                .map(|f| (f.file_name.as_str(), f.text.as_str())),
        );
        let entries = sorted
            .iter()
            .zip(sums)
            .map(|(f, sha256)| FileEntry {
                name: f.file_name.clone(),
                module: f.module.clone(),
                sha256,
            })
            .collect();
        Ok(Self {
            format_version: FORMAT_VERSION,
            generator: format!("kvpq {}", env!("CARGO_PKG_VERSION")),
            top: "pq_topk_engine".into(),
            config: acc.config().clone(),
            derived: *acc.derived(),
            interface: Interface::of(acc)?,
            packing: PackingDoc {
                layout: acc.derived().layout,
                rule: PACKING_RULE.into(),
            },
            files: entries,
            content_hash,
            estimates: Estimates::default(),
            ecp5: None,
        })
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("manifest types always serialize") + "\n"
    }

    /// Parses and checks a manifest: the format version first, then every field's type
    /// (errors name the field), then the description, then that the derived view, the
    /// interface and the packing are what the description derives, then the recorded flow
    /// results.
    pub fn from_json(text: &str) -> Result<Self, ManifestError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ManifestError::Field {
                field: ".".into(),
                message: format!("not JSON: {e}"),
            })?;
        match value.get("format_version").map(|v| v.as_u64()) {
            None => {
                return Err(ManifestError::Field {
                    field: "format_version".into(),
                    message: "missing (written before manifests were versioned: regenerate the \
                              folder)"
                        .into(),
                })
            }
            Some(Some(v)) if v > u64::from(FORMAT_VERSION) => {
                return Err(ManifestError::NewerVersion { found: v })
            }
            _ => {}
        }
        let m: Manifest = serde_path_to_error::deserialize(&value).map_err(|e| {
            let field = e.path().to_string();
            ManifestError::Field {
                field,
                message: e.into_inner().to_string(),
            }
        })?;
        let acc = Accelerator::new(m.config.clone())?;
        let derived = *acc.derived();
        if m.derived != derived {
            return Err(ManifestError::Inconsistent {
                field: "derived",
                detail: first_difference(&m.derived, &derived),
            });
        }
        let interface = Interface::of(&acc).map_err(|e| ManifestError::Inconsistent {
            field: "config",
            detail: e.to_string(),
        })?;
        if m.interface != interface {
            return Err(ManifestError::Inconsistent {
                field: "interface",
                detail: first_difference(&m.interface, &interface),
            });
        }
        if m.packing.layout != derived.layout {
            return Err(ManifestError::Inconsistent {
                field: "packing",
                detail: first_difference(&m.packing.layout, &derived.layout),
            });
        }
        if let Some((field, what)) = m.ecp5.as_ref().and_then(Ecp5Record::implausible) {
            return Err(ManifestError::Implausible { field, what });
        }
        Ok(m)
    }

    /// Reads `dir/manifest.json` (or a manifest file given directly) with [`Self::from_json`].
    pub fn read(path: &Path) -> Result<Self, ManifestError> {
        let path = if path.is_dir() {
            path.join(FILE_NAME)
        } else {
            path.to_path_buf()
        };
        let io = |error| ManifestError::Io {
            path: path.clone(),
            error,
        };
        let bytes = std::fs::metadata(&path).map_err(io)?.len();
        if bytes > MAX_BYTES {
            return Err(ManifestError::TooLarge { path, bytes });
        }
        let text = std::fs::read_to_string(&path).map_err(io)?;
        Self::from_json(&text)
    }

    /// Writes the manifest as `dir/manifest.json`.
    pub fn write(&self, dir: &Path) -> Result<(), ManifestError> {
        let path = dir.join(FILE_NAME);
        std::fs::write(&path, self.to_json()).map_err(|error| ManifestError::Io { path, error })
    }

    /// The validated accelerator the manifest describes.
    pub fn accelerator(&self) -> Result<Accelerator, ConfigError> {
        Accelerator::new(self.config.clone())
    }

    /// Checks that every file the manifest lists is in `dir` with the listed SHA-256, and
    /// that the content hash covers exactly them: what a runtime checks before it trusts a
    /// model or bitstream built from the folder.
    pub fn verify_files(&self, dir: &Path) -> Result<(), ManifestError> {
        let mut texts = Vec::with_capacity(self.files.len());
        for f in &self.files {
            let path = dir.join(&f.name);
            let text = std::fs::read_to_string(&path).map_err(|e| ManifestError::File {
                path: path.clone(),
                what: format!("listed in the manifest but unreadable: {e}"),
            })?;
            texts.push((f.name.as_str(), text));
        }
        let (hash, sums) = hashes(&self.config, texts.iter().map(|(n, t)| (*n, t.as_str())));
        for (f, sum) in self.files.iter().zip(sums) {
            if f.sha256 != sum {
                return Err(ManifestError::File {
                    path: dir.join(&f.name),
                    what: format!(
                        "SHA-256 {sum} differs from the manifest's {} (edited after generation)",
                        f.sha256
                    ),
                });
            }
        }
        if hash != self.content_hash {
            return Err(ManifestError::Inconsistent {
                field: "content_hash",
                detail: format!("the files hash to {hash}"),
            });
        }
        Ok(())
    }
}

/// The first leaf where two serializable values differ, as `path: found vs derived`.
fn first_difference<T: Serialize>(found: &T, derived: &T) -> String {
    fn walk(path: &str, a: &serde_json::Value, b: &serde_json::Value) -> Option<String> {
        use serde_json::Value::{Array, Object};
        match (a, b) {
            (Object(x), Object(y)) => y.iter().find_map(|(k, vb)| {
                let p = format!("{path}.{k}");
                match x.get(k) {
                    Some(va) => walk(&p, va, vb),
                    None => Some(format!("{p} missing")),
                }
            }),
            (Array(x), Array(y)) if x.len() == y.len() => x
                .iter()
                .zip(y)
                .enumerate()
                .find_map(|(i, (va, vb))| walk(&format!("{path}[{i}]"), va, vb)),
            _ if a != b => Some(format!("{path} is {a}, the config derives {b}")),
            _ => None,
        }
    }
    let (a, b) = (
        serde_json::to_value(found).unwrap_or_default(),
        serde_json::to_value(derived).unwrap_or_default(),
    );
    walk("", &a, &b).unwrap_or_else(|| "values differ".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{
        AcceleratorBuilder, EngineConfig, Platform, PqConfig, ScannerConfig, TargetConfig,
        TopKConfig,
    };

    fn manifest(platform: Platform) -> Manifest {
        let acc = AcceleratorBuilder::new("tiny", PqConfig::new(16, 2, 4))
            .scanner(ScannerConfig::new(4))
            .topk(TopKConfig::systolic(64))
            .engine(EngineConfig::new(1024))
            .target(TargetConfig::new(platform, 200.0))
            .build()
            .unwrap();
        let files = [SourceFile {
            module: "pq_topk_engine".into(),
            file_name: "pq_topk_engine.v".into(),
            text: "module pq_topk_engine; endmodule\n".into(),
        }];
        Manifest::new(&acc, &files).unwrap()
    }

    fn edited(m: &Manifest, edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut v = serde_json::to_value(m).unwrap();
        edit(&mut v);
        v.to_string()
    }

    fn refused(text: &str) -> String {
        Manifest::from_json(text).unwrap_err().to_string()
    }

    #[test]
    fn round_trips_with_records() {
        for platform in [Platform::Generic, Platform::Ecp5, Platform::U55c] {
            let mut m = manifest(platform);
            m.ecp5 = Some(Ecp5Record {
                board: "ulx3s".into(),
                device: "--85k".into(),
                top: "kvpq_ulx3s_top".into(),
                bitstream: "x.bit".into(),
                core_clock: "clk".into(),
                fmax: ClockFmax {
                    achieved: 93.0,
                    constraint: 75.0,
                },
                utilization: [(
                    "DP16KD".to_string(),
                    Usage {
                        used: 24,
                        available: 208,
                    },
                )]
                .into(),
                seconds: vec![("synth".into(), 15.0)],
            });
            assert_eq!(Manifest::from_json(&m.to_json()).unwrap(), m);
        }
    }

    #[test]
    fn floats_of_seventeen_digits_round_trip_exactly() {
        // Without serde_json's float_roundtrip a budget like this read back one ULP off, and
        // the content hash (over the description's text) no longer matched its folder.
        let mut m = manifest(Platform::Generic);
        m.config.retrieval.budget = 0.104_166_666_666_666_67;
        let back = Manifest::from_json(&m.to_json()).unwrap();
        assert_eq!(
            back.config.retrieval.budget.to_bits(),
            m.config.retrieval.budget.to_bits()
        );
    }

    #[test]
    fn refuses_missing_and_mistyped_fields_by_name() {
        let m = manifest(Platform::Generic);
        let e = refused(&edited(&m, |v| {
            v["config"]["scanner"]
                .as_object_mut()
                .unwrap()
                .remove("lanes");
        }));
        assert!(e.contains("config.scanner") && e.contains("lanes"), "{e}");
        let e = refused(&edited(&m, |v| {
            v["config"]["scanner"]["lanes"] = "4".into()
        }));
        assert!(e.contains("config.scanner.lanes"), "{e}");
        let e = refused(&edited(&m, |v| v["derived"]["widths"] = 3.into()));
        assert!(e.contains("derived.widths"), "{e}");
        assert!(refused("{").contains("not JSON"));
    }

    #[test]
    fn refuses_newer_and_unversioned_manifests() {
        let m = manifest(Platform::Generic);
        let e = refused(&edited(&m, |v| v["format_version"] = 99.into()));
        assert!(e.contains("format_version") && e.contains("99"), "{e}");
        let e = refused(&edited(&m, |v| {
            v.as_object_mut().unwrap().remove("format_version");
        }));
        assert!(e.contains("format_version"), "{e}");
    }

    #[test]
    fn refuses_what_the_description_does_not_derive() {
        let m = manifest(Platform::U55c);
        let e = refused(&edited(&m, |v| v["config"]["scanner"]["lanes"] = 0.into()));
        assert!(e.contains("scanner.lanes"), "{e}");
        let e = refused(&edited(&m, |v| {
            v["derived"]["widths"]["score_bits"] = 40.into();
        }));
        assert!(e.contains("`derived`") && e.contains("score_bits"), "{e}");
        let e = refused(&edited(&m, |v| {
            v["interface"]["ports"][8]["width"] = 1.into()
        }));
        assert!(
            e.contains("`interface`") && e.contains("ports[8].width"),
            "{e}"
        );
        let e = refused(&edited(&m, |v| {
            v["interface"]["kernel"]["args"][0]["offset"] = 0.into();
        }));
        assert!(e.contains("kernel.args[0].offset"), "{e}");
    }

    #[test]
    fn refuses_impossible_build_records() {
        let mut m = manifest(Platform::Ecp5);
        let record = |achieved: f64, used: u64| Ecp5Record {
            board: "ulx3s".into(),
            device: "--85k".into(),
            top: "top".into(),
            bitstream: "x.bit".into(),
            core_clock: "clk".into(),
            fmax: ClockFmax {
                achieved,
                constraint: 75.0,
            },
            utilization: [(
                "TRELLIS_COMB".to_string(),
                Usage {
                    used,
                    available: 83640,
                },
            )]
            .into(),
            seconds: vec![],
        };
        m.ecp5 = Some(record(-42.0, 10));
        assert!(refused(&m.to_json()).contains("ecp5.fmax.achieved"));
        m.ecp5 = Some(record(93.0, u64::MAX));
        assert!(refused(&m.to_json()).contains("ecp5.utilization.TRELLIS_COMB"));
    }

    #[test]
    fn verifies_files_against_their_hashes() {
        let m = manifest(Platform::Generic);
        let dir = std::env::temp_dir().join(format!("kvpq-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pq_topk_engine.v");
        std::fs::write(&path, "module pq_topk_engine; endmodule\n").unwrap();
        m.verify_files(&dir).unwrap();
        std::fs::write(&path, "module pq_topk_engine; wire x; endmodule\n").unwrap();
        let e = m.verify_files(&dir).unwrap_err().to_string();
        assert!(e.contains("SHA-256"), "{e}");
        std::fs::remove_file(&path).unwrap();
        assert!(m.verify_files(&dir).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
