//! How an index is shaped and trained: the model's layers and KV heads, the store's element
//! type and capacity, codebook training, re-training during generation, and how layers or
//! heads are spread over several devices.

use crate::store::DType;

/// How codebooks are trained at prefill (and re-trained during generation).
///
/// Training is subsampled and stops early so that it hides behind the GPU's prefill of the
/// next layers (docs/runtime.md): k-means sees at most `points_per_centroid x K` keys per
/// head, drawn uniformly without replacement, for at most `max_iters` Lloyd iterations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainingOptions {
    /// Training points per centroid (Faiss caps at 256 and warns below 39; 64 loses less
    /// than 0.01 of recall@k against full-data training on the PQCache shape,
    /// `benches/training.rs`).
    pub points_per_centroid: usize,
    /// Lloyd iterations at most.
    pub max_iters: usize,
    /// Stop when the inertia improves by less than this fraction.
    pub tolerance: f64,
    /// Seed of the subsample and of k-means++.
    pub seed: u64,
    /// Threads of the background training pool (0: one per core).
    pub threads: usize,
}

impl Default for TrainingOptions {
    fn default() -> Self {
        Self {
            points_per_centroid: 64,
            max_iters: 10,
            tolerance: 1e-3,
            seed: 0,
            threads: 0,
        }
    }
}

/// How several devices share a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sharding {
    /// Layer `l` is served by device `l % devices`: one call per layer.
    #[default]
    Layers,
    /// Head `h` of every layer is served by device `h % devices`: one call per layer and
    /// device, the devices running in parallel.
    Heads,
}

/// Shape and policy of an [`Index`](crate::Index).
#[derive(Debug, Clone, PartialEq)]
pub struct IndexOptions {
    /// Layers L.
    pub layers: usize,
    /// KV heads per layer H_kv.
    pub kv_heads: usize,
    /// Element type of the KV store.
    pub dtype: DType,
    /// Tokens a layer can hold (the store allocates this much per layer); `None`: the
    /// sinks plus the accelerator's `engine.max_tokens`.
    pub capacity: Option<usize>,
    /// Codebook training.
    pub training: TrainingOptions,
    /// Re-train a layer's codebooks in the background after this many appended tokens.
    pub retrain_every: Option<usize>,
    /// Spreading over devices.
    pub sharding: Sharding,
}

impl IndexOptions {
    /// `layers` x `kv_heads`, f32 store, default training, no re-training.
    pub fn new(layers: usize, kv_heads: usize) -> Self {
        Self {
            layers,
            kv_heads,
            dtype: DType::F32,
            capacity: None,
            training: TrainingOptions::default(),
            retrain_every: None,
            sharding: Sharding::Layers,
        }
    }

    /// With the store's element type.
    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// With a capacity in tokens per layer.
    pub fn with_capacity(mut self, tokens: usize) -> Self {
        self.capacity = Some(tokens);
        self
    }

    /// With training options.
    pub fn with_training(mut self, training: TrainingOptions) -> Self {
        self.training = training;
        self
    }

    /// Re-training every `tokens` appended tokens.
    pub fn with_retrain_every(mut self, tokens: usize) -> Self {
        self.retrain_every = Some(tokens);
        self
    }

    /// With a sharding over several devices.
    pub fn with_sharding(mut self, sharding: Sharding) -> Self {
        self.sharding = sharding;
        self
    }
}
