//! Typed builders: the same description as the TOML file, written in Rust.
//!
//! ```
//! use kvpq_core::spec::{AcceleratorBuilder, PqConfig, ScannerConfig, TopKConfig, EngineConfig};
//! let acc = AcceleratorBuilder::new("tiny", PqConfig::new(64, 4, 4))
//!     .scanner(ScannerConfig::new(4))
//!     .topk(TopKConfig::systolic(64))
//!     .engine(EngineConfig::new(1024))
//!     .build()
//!     .unwrap();
//! assert_eq!(acc.derived().widths.codebook_size, 16);
//! ```

use super::config::{
    AcceleratorConfig, DistUnitConfig, EngineConfig, Platform, PqConfig, QuantConfig,
    RetrievalConfig, ScannerConfig, TargetConfig, TopKConfig, TopKStrategy,
};
use super::error::ConfigError;
use super::validate::Accelerator;

impl PqConfig {
    /// PQ shape: key dimension, subspaces, bits per code.
    pub fn new(head_dim: u32, m: u32, code_bits: u32) -> Self {
        Self {
            head_dim,
            m,
            code_bits,
        }
    }
}

impl QuantConfig {
    /// Query, centroid and LUT widths.
    pub fn new(query_bits: u32, centroid_bits: u32, lut_bits: u32) -> Self {
        Self {
            query_bits,
            centroid_bits,
            lut_bits,
        }
    }
}

impl DistUnitConfig {
    /// Distance unit with `macs` parallel multiply-accumulators.
    pub fn new(macs: u32) -> Self {
        Self { macs }
    }
}

impl ScannerConfig {
    /// Scanner with `lanes` parallel lanes.
    pub fn new(lanes: u32) -> Self {
        Self { lanes }
    }
}

impl TopKConfig {
    /// Systolic priority queues for k up to `k_max` (<= 256).
    pub fn systolic(k_max: u32) -> Self {
        Self {
            strategy: TopKStrategy::Systolic,
            k_max,
            radix_bits: None,
            read_beats: None,
        }
    }

    /// Threshold selection for k up to `k_max`.
    pub fn select(k_max: u32) -> Self {
        Self {
            strategy: TopKStrategy::Select,
            k_max,
            radix_bits: None,
            read_beats: None,
        }
    }

    /// Sets the bits resolved per selection pass (`select`).
    pub fn with_radix_bits(mut self, radix_bits: u32) -> Self {
        self.radix_bits = Some(radix_bits);
        self
    }

    /// Sets the scanner beats the selection passes read per cycle (`select`).
    pub fn with_read_beats(mut self, read_beats: u32) -> Self {
        self.read_beats = Some(read_beats);
        self
    }
}

impl EngineConfig {
    /// Engine for code streams of up to `max_tokens` tokens in 512-bit beats.
    pub fn new(max_tokens: u32) -> Self {
        Self {
            max_tokens,
            beat_bits: 512,
            heads: None,
        }
    }

    /// Sets the number of codebooks held on chip (one per KV head served).
    pub fn with_heads(mut self, heads: u32) -> Self {
        self.heads = Some(heads);
        self
    }

    /// Sets the beat width.
    pub fn with_beat_bits(mut self, beat_bits: u32) -> Self {
        self.beat_bits = beat_bits;
        self
    }
}

impl TargetConfig {
    /// Platform and clock target.
    pub fn new(platform: Platform, clock_mhz: f64) -> Self {
        Self {
            platform,
            clock_mhz,
            engines: None,
        }
    }

    /// Sets the engines of the Alveo kernel.
    pub fn with_engines(mut self, engines: u32) -> Self {
        self.engines = Some(engines);
        self
    }
}

impl RetrievalConfig {
    /// Sets the GQA group size.
    pub fn with_gqa_group(mut self, gqa_group: u32) -> Self {
        self.gqa_group = gqa_group;
        self
    }

    /// Sets the budget fraction and the local window's share of it.
    pub fn with_budget(mut self, budget: f64, local_fraction: f64) -> Self {
        self.budget = budget;
        self.local_fraction = local_fraction;
        self
    }

    /// Sets the number of sink tokens.
    pub fn with_sink_tokens(mut self, sink_tokens: u32) -> Self {
        self.sink_tokens = sink_tokens;
        self
    }
}

/// Builds an [`Accelerator`] unit by unit; [`AcceleratorBuilder::build`] validates.
///
/// Units left unset get small defaults: one lane, a 16-entry systolic top-k, 4096 tokens,
/// and min(16, K) MACs.
#[derive(Debug, Clone)]
pub struct AcceleratorBuilder {
    config: AcceleratorConfig,
}

impl AcceleratorBuilder {
    /// Starts a description named `name` with the given PQ shape.
    pub fn new(name: impl Into<String>, pq: PqConfig) -> Self {
        let macs = 1u32 << pq.code_bits.min(4);
        Self {
            config: AcceleratorConfig {
                name: name.into(),
                pq,
                quant: QuantConfig::default(),
                dist_unit: DistUnitConfig::new(macs),
                scanner: ScannerConfig::new(1),
                topk: TopKConfig::systolic(16),
                engine: EngineConfig::new(4096),
                target: TargetConfig::default(),
                retrieval: RetrievalConfig::default(),
            },
        }
    }

    /// Sets the fixed-point widths.
    pub fn quant(mut self, quant: QuantConfig) -> Self {
        self.config.quant = quant;
        self
    }

    /// Sets the PQ distance unit.
    pub fn dist_unit(mut self, dist_unit: DistUnitConfig) -> Self {
        self.config.dist_unit = dist_unit;
        self
    }

    /// Sets the LUT scanner.
    pub fn scanner(mut self, scanner: ScannerConfig) -> Self {
        self.config.scanner = scanner;
        self
    }

    /// Sets the top-k unit.
    pub fn topk(mut self, topk: TopKConfig) -> Self {
        self.config.topk = topk;
        self
    }

    /// Sets the engine limits.
    pub fn engine(mut self, engine: EngineConfig) -> Self {
        self.config.engine = engine;
        self
    }

    /// Sets the target platform.
    pub fn target(mut self, target: TargetConfig) -> Self {
        self.config.target = target;
        self
    }

    /// Sets the retrieval policy.
    pub fn retrieval(mut self, retrieval: RetrievalConfig) -> Self {
        self.config.retrieval = retrieval;
        self
    }

    /// The description built so far, unchecked.
    pub fn config(&self) -> &AcceleratorConfig {
        &self.config
    }

    /// Validates the description.
    pub fn build(self) -> Result<Accelerator, ConfigError> {
        Accelerator::new(self.config)
    }
}
