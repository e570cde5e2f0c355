//! The accelerator description as plain data: what a TOML file holds.
//!
//! Nothing here is checked; [`crate::spec::validate`] turns an [`AcceleratorConfig`] into an
//! [`crate::spec::Accelerator`] once, and everything downstream reads that.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::Read;
use std::path::Path;

use super::error::ConfigError;

/// Complete description of one accelerator and of the retrieval policy it serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceleratorConfig {
    /// Name of the design; used for module prefixes and output folders.
    pub name: String,
    /// Product-quantization shape (head_dim, subspaces, code bits).
    pub pq: PqConfig,
    /// Fixed-point widths of query, centroids and LUT.
    #[serde(default)]
    pub quant: QuantConfig,
    /// PQ distance unit (LUT builder).
    pub dist_unit: DistUnitConfig,
    /// LUT scanner.
    pub scanner: ScannerConfig,
    /// Top-k unit.
    pub topk: TopKConfig,
    /// Engine-level limits and the code stream width.
    pub engine: EngineConfig,
    /// Platform the engine is built for.
    #[serde(default)]
    pub target: TargetConfig,
    /// Retrieval policy of the runtime (PQCache-style), used to size k.
    #[serde(default)]
    pub retrieval: RetrievalConfig,
}

/// Product-quantization shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PqConfig {
    /// Key dimension D.
    pub head_dim: u32,
    /// Number of subspaces M (D % M == 0).
    pub m: u32,
    /// Bits per code b; the codebook of each subspace has K = 2^b centroids.
    pub code_bits: u32,
}

/// Fixed-point widths (docs/design.md section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuantConfig {
    /// QB: signed width of the quantized query.
    pub query_bits: u32,
    /// CB: signed width of the quantized centroids.
    pub centroid_bits: u32,
    /// LB: signed width of a normalized LUT entry.
    pub lut_bits: u32,
}

impl Default for QuantConfig {
    fn default() -> Self {
        Self {
            query_bits: 8,
            centroid_bits: 8,
            lut_bits: 16,
        }
    }
}

/// PQ distance unit: computes the M*K LUT entries of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistUnitConfig {
    /// LUT entries computed in parallel; each MAC walks the D/M dimensions of its entry.
    pub macs: u32,
}

/// LUT scanner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScannerConfig {
    /// Tokens scored per cycle.
    pub lanes: u32,
}

/// Top-k strategy (docs/design.md section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TopKStrategy {
    /// Shift-register priority queue per lane plus a merge stage; small k (<= 256).
    Systolic,
    /// Radix/histogram threshold selection over scores held on chip; k in the thousands.
    Select,
}

impl fmt::Display for TopKStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Systolic => "systolic",
            Self::Select => "select",
        })
    }
}

/// Top-k unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopKConfig {
    /// Which top-k hardware to build.
    pub strategy: TopKStrategy,
    /// Largest k a query may ask for.
    pub k_max: u32,
    /// Bits of the score resolved per radix pass (`select` only; default 4, at most 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radix_bits: Option<u32>,
    /// Scanner beats of scores the `select` unit reads per cycle in its passes and its emit
    /// pass (`select` only; default 1, at most 8): its buffer words hold this many beats, and
    /// its counting and keeping logic is this many times the lane count wide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_beats: Option<u32>,
}

/// Engine-level limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Longest code stream (tokens) one query may scan.
    pub max_tokens: u32,
    /// Width W of one code beat in bits (docs/design.md section 4).
    #[serde(default = "default_beat_bits")]
    pub beat_bits: u32,
    /// Codebooks held on chip at once (default 1, at most 64): one per KV head the engine
    /// serves, so a decoding step selects a head's codebook by number instead of loading it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heads: Option<u32>,
}

impl EngineConfig {
    /// Codebooks held on chip (`heads`, default 1).
    pub fn heads(&self) -> u32 {
        self.heads.unwrap_or(1)
    }
}

fn default_beat_bits() -> u32 {
    512
}

/// Boards and shells the project knows how to build for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Plain RTL, no platform wrapper.
    #[default]
    Generic,
    /// Lattice ECP5 (open flow: Yosys + nextpnr-ecp5).
    Ecp5,
    /// AMD Alveo U280 (Vitis/XRT).
    U280,
    /// AMD Alveo U55C (Vitis/XRT).
    U55c,
}

impl Platform {
    /// Whether the platform is an Alveo card (Vitis/XRT flow).
    pub fn is_alveo(self) -> bool {
        matches!(self, Self::U280 | Self::U55c)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Generic => "generic",
            Self::Ecp5 => "ecp5",
            Self::U280 => "u280",
            Self::U55c => "u55c",
        })
    }
}

/// Target platform and clock.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TargetConfig {
    /// Platform wrapper to generate.
    pub platform: Platform,
    /// Clock the design is constrained to, in MHz.
    pub clock_mhz: f64,
    /// Engines in the Alveo kernel (default 1, at most 16), each with its own AXI master
    /// (HBM pseudo-channel): a call's queries run on them in parallel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engines: Option<u32>,
}

impl TargetConfig {
    /// Engines in the Alveo kernel (`engines`, default 1).
    pub fn engines(&self) -> u32 {
        self.engines.unwrap_or(1)
    }
}

impl Default for TargetConfig {
    fn default() -> Self {
        Self {
            platform: Platform::Generic,
            clock_mhz: 200.0,
            engines: None,
        }
    }
}

/// PQCache-style retrieval policy: sink tokens + local window + top-k from the middle.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrievalConfig {
    /// Query heads per KV head (GQA); their queries are summed before the LUT build.
    pub gqa_group: u32,
    /// First tokens that are always attended.
    pub sink_tokens: u32,
    /// Fraction of the context attended besides the sinks (local window + top-k).
    pub budget: f64,
    /// Share of the budget given to the local window; the rest is top-k.
    pub local_fraction: f64,
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        Self {
            gqa_group: 1,
            sink_tokens: 32,
            budget: 0.1,
            local_fraction: 0.5,
        }
    }
}

/// Largest description read (bytes): real ones are about a kilobyte, and a description is
/// read whole, so an endless input (`/dev/zero`) must stop somewhere.
pub const MAX_DESCRIPTION_BYTES: u64 = 1 << 20;

impl AcceleratorConfig {
    /// Parses a TOML description. A value of the wrong type or an unknown key is reported
    /// with its dotted path first (`scanner.lanes: invalid type: ...`), then where it is.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        if text.len() as u64 > MAX_DESCRIPTION_BYTES {
            return Err(ConfigError::Parse(format!(
                "{} bytes exceed the {MAX_DESCRIPTION_BYTES}-byte limit of a description",
                text.len()
            )));
        }
        let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let at = inner
                .span()
                .map(|span| {
                    // `get`: a span that is not on a character boundary must not panic.
                    let before = text.get(..span.start).unwrap_or(text);
                    let line = before.matches('\n').count() + 1;
                    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                    format!(" (line {line}, column {column})")
                })
                .unwrap_or_default();
            // `.` is the document itself (a missing section): the message names the key.
            let field = if path == "." {
                String::new()
            } else {
                format!("{path}: ")
            };
            ConfigError::Parse(format!("{field}{}{at}", inner.message()))
        })
    }

    /// Reads and parses a TOML file of at most [`MAX_DESCRIPTION_BYTES`].
    pub fn from_toml_file(path: &Path) -> Result<Self, ConfigError> {
        let io = |error| ConfigError::Io {
            path: path.to_path_buf(),
            error,
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_DESCRIPTION_BYTES + 1).read_to_end(&mut bytes))
            .map_err(io)?;
        if bytes.len() as u64 > MAX_DESCRIPTION_BYTES {
            return Err(ConfigError::ParseFile {
                path: path.to_path_buf(),
                msg: format!(
                    "larger than the {MAX_DESCRIPTION_BYTES}-byte limit of a description \
                     (real ones are about a kilobyte)"
                ),
            });
        }
        let text = String::from_utf8(bytes).map_err(|e| ConfigError::ParseFile {
            path: path.to_path_buf(),
            msg: format!("not UTF-8 text: {e}"),
        })?;
        Self::from_toml_str(&text).map_err(|e| match e {
            ConfigError::Parse(msg) => ConfigError::ParseFile {
                path: path.to_path_buf(),
                msg,
            },
            other => other,
        })
    }

    /// Serializes back to TOML (round-trips through [`Self::from_toml_str`]).
    pub fn to_toml_string(&self) -> String {
        toml::to_string_pretty(self).expect("configuration structs always serialize")
    }
}
