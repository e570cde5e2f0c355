//! One layer's retrieval state: its context length, its codebooks and every head's packed
//! code stream, and the background training that produces them.
//!
//! The code stream of a head starts at token `s` = `retrieval.sink_tokens` (sinks are always
//! attended and never scanned), so the middle of a context is a prefix of the stream and
//! stream position `i` is token `s + i`.

use std::sync::{Condvar, Mutex, MutexGuard};

use kvpq_core::golden::packing::pack_into;
use kvpq_core::golden::{PqCodebook, QuantCodebook, TrainOptions};
use kvpq_core::spec::Accelerator;
use ndarray::{Array2, ArrayView2};
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::options::TrainingOptions;
use crate::store::KvStore;
use crate::RuntimeError;

/// One head's codebooks and code stream.
#[derive(Debug, Clone)]
pub(crate) struct HeadPq {
    pub codebook: PqCodebook,
    pub quant: QuantCodebook,
    /// Packed codes of stream tokens `0..encoded`.
    pub beats: Vec<u64>,
    pub encoded: usize,
}

/// A layer's codebooks: `stamp` is unique per training, so a device knows when to reload.
#[derive(Debug, Clone)]
pub(crate) struct Trained {
    pub stamp: u64,
    pub heads: Vec<HeadPq>,
}

/// Mutable state of a layer, behind [`Layer::state`].
#[derive(Debug, Default)]
pub(crate) struct LayerState {
    /// Bumped by every prefill: a training job of an older sequence is discarded.
    pub generation: u64,
    /// Context length.
    pub tokens: usize,
    pub pq: Option<Trained>,
    /// A training job is in flight.
    pub training: bool,
    /// Why the last training of this generation failed.
    pub failed: Option<String>,
    /// Tokens appended since the codebooks' training snapshot.
    pub appended_since: usize,
    /// Tokens of the prompt: those after it were generated.
    pub prompt: usize,
}

/// A layer: its state and the signal that its training finished.
#[derive(Debug, Default)]
pub(crate) struct Layer {
    pub state: Mutex<LayerState>,
    pub trained: Condvar,
}

impl Layer {
    /// Locks the state; a poisoned lock (a panic elsewhere) is a fault, not a panic here.
    pub fn lock(&self, layer: usize) -> Result<MutexGuard<'_, LayerState>, RuntimeError> {
        self.state.lock().map_err(|_| poisoned(layer))
    }

    /// Blocks until no training is in flight for a layer without codebooks.
    pub fn wait_trained<'a>(
        &'a self,
        layer: usize,
        mut g: MutexGuard<'a, LayerState>,
    ) -> Result<MutexGuard<'a, LayerState>, RuntimeError> {
        while g.pq.is_none() && g.training {
            g = self.trained.wait(g).map_err(|_| poisoned(layer))?;
        }
        Ok(g)
    }
}

pub(crate) fn poisoned(layer: usize) -> RuntimeError {
    RuntimeError::Fault {
        backend: "index",
        detail: format!("layer {layer}: a thread panicked while updating it"),
    }
}

/// Training points: `n` token rows of `0..tokens`, ascending (so the chunked k-means sums do
/// not depend on the draw order). Tokens from `recent` on (generated after the prompt) give
/// half the points when there are that many, so a re-training follows keys that drifted
/// during generation; a prefill's training (`recent` = 0) draws uniformly.
fn training_rows(rng: &mut ChaCha8Rng, tokens: usize, recent: usize, n: usize) -> Vec<usize> {
    if recent == 0 || recent >= tokens {
        let mut rows = sample(rng, tokens, n.min(tokens)).into_vec();
        rows.sort_unstable();
        return rows;
    }
    let new = (n / 2).min(tokens - recent);
    let old = (n - new).min(recent);
    let mut rows = sample(rng, recent, old).into_vec();
    rows.extend(
        sample(rng, tokens - recent, new)
            .into_iter()
            .map(|i| recent + i),
    );
    rows.sort_unstable();
    rows
}

/// Trains codebooks for every head on the first `tokens` keys of `layer` and encodes the
/// stream tokens among them (the heavy part, run without the layer lock). Tokens from
/// `recent` on were generated after the prompt (`0` for a prefill's training).
#[allow(clippy::too_many_arguments)]
pub(crate) fn train(
    acc: &Accelerator,
    store: &KvStore,
    layer: usize,
    kv_heads: usize,
    tokens: usize,
    recent: usize,
    opts: &TrainingOptions,
    stamp: u64,
) -> Result<Trained, RuntimeError> {
    let c = acc.config();
    let (m, b, d) = (c.pq.m as usize, c.pq.code_bits, c.pq.head_dim as usize);
    let k = 1usize << b;
    let n_train = tokens.min(opts.points_per_centroid.max(1) * k);
    // Heads in parallel on the training pool (k-means adds its own parallelism inside).
    let heads = (0..kv_heads)
        .into_par_iter()
        .map(|h| {
            let all = store.keys_f32(layer, h, 0..tokens)?;
            let keys = ArrayView2::from_shape((tokens, d), &all).map_err(shape_bug)?;
            let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ ((layer as u64) << 32 | h as u64));
            let rows = training_rows(&mut rng, tokens, recent, n_train);
            let points = keys.select(ndarray::Axis(0), &rows);
            let train = TrainOptions {
                max_iters: opts.max_iters,
                tolerance: opts.tolerance,
                seed: opts.seed,
            };
            let codebook = PqCodebook::train(points.view(), m, b, &train, None)?;
            let quant = codebook.quantize(c.quant.centroid_bits)?;
            let mut head = HeadPq {
                codebook,
                quant,
                beats: Vec::new(),
                encoded: 0,
            };
            encode_range(acc, &mut head, &all, 0, tokens)?;
            Ok(head)
        })
        .collect::<Result<Vec<_>, RuntimeError>>()?;
    Ok(Trained { stamp, heads })
}

/// First token of the code stream.
pub(crate) fn stream_start(acc: &Accelerator) -> usize {
    acc.config().retrieval.sink_tokens as usize
}

/// Codes of the stream tokens from `head.encoded` up to context length `tokens` (`None`
/// when there are none), where `keys` holds the f32 keys of tokens `first..tokens`
/// row-major (`first` <= the first token to encode). Reads only: [`push_codes`] applies
/// them, so a caller can encode every head before it changes any.
pub(crate) fn new_codes(
    acc: &Accelerator,
    head: &HeadPq,
    keys: &[f32],
    first: usize,
    tokens: usize,
) -> Result<Option<Array2<u8>>, RuntimeError> {
    let s = stream_start(acc);
    let (from, to) = (s + head.encoded, tokens.max(s));
    if to <= from {
        return Ok(None);
    }
    let d = acc.config().pq.head_dim as usize;
    let keys = ArrayView2::from_shape((keys.len() / d, d), keys).map_err(shape_bug)?;
    let rows = keys.slice(ndarray::s![from - first..to - first, ..]);
    Ok(Some(head.codebook.encode(rows)?))
}

/// Packs `codes` (from [`new_codes`]) after the head's stream.
pub(crate) fn push_codes(
    acc: &Accelerator,
    head: &mut HeadPq,
    codes: &Array2<u8>,
) -> Result<(), RuntimeError> {
    pack_into(
        &acc.derived().layout,
        &mut head.beats,
        head.encoded,
        codes.view(),
    )?;
    head.encoded += codes.nrows();
    Ok(())
}

/// [`new_codes`], then [`push_codes`].
pub(crate) fn encode_range(
    acc: &Accelerator,
    head: &mut HeadPq,
    keys: &[f32],
    first: usize,
    tokens: usize,
) -> Result<(), RuntimeError> {
    match new_codes(acc, head, keys, first, tokens)? {
        Some(codes) => push_codes(acc, head, &codes),
        None => Ok(()),
    }
}

fn shape_bug(e: ndarray::ShapeError) -> RuntimeError {
    RuntimeError::Fault {
        backend: "index",
        detail: format!("keys have an unexpected shape: {e}"),
    }
}
