//! A decoding-loop workload shaped like a real model's attention (by default Llama-3-8B: 32
//! layers, 32 query heads, 8 KV heads, head_dim 128): per layer, the keys and values of a
//! prefill of `N` tokens plus `T` decode tokens, and the query heads of every decode step.
//!
//! # Layout and decoding convention
//! - keys `[kv_heads][N + T][head_dim]`, values the same shape: token `N + t` is the token
//!   decoded at step `t`; its K/V are appended one per step;
//! - queries `[T][kv_heads * gqa_group][head_dim]`: query heads `h*g..(h+1)*g` share KV head
//!   `h` (the Hugging Face `repeat_kv` order);
//! - at step `t` the query attends to tokens `0..=N + t` (the new token's K/V are appended
//!   before attention, as Hugging Face decoding does): see [`LayerData::visible`].
//!
//! # The structure it has, and why
//! Retrieval quality measured on i.i.d. Gaussian data says little about real attention, so
//! the generator reproduces what real heads show (each knob of [`DecodeSpec`] says more):
//! - **attention sinks**: the first few tokens have a key along a direction every query
//!   shares (StreamingLLM), with near-zero values;
//! - **clustered keys**: tokens follow topics that change every few dozen tokens, so keys
//!   gather around topic centers (as [`super::synthetic`] does);
//! - **outlier channels**: a few key channels carry much larger magnitudes, as keys after
//!   RoPE show (KIVI, KVQuant); the queries do not have them;
//! - **recency**: RoPE-like rotating channel pairs raise the logits of nearby tokens, and the
//!   query also leans towards the topic of the token being decoded;
//! - **queries unlike keys**: queries are a rotated mix of key topics plus a shared offset,
//!   so their distribution differs from the keys' (RetrievalAttention's out-of-distribution
//!   queries), while PQ codebooks are trained on keys only;
//! - **temporal coherence**: the topics a query attends drift as an AR(1) process over the
//!   steps, so consecutive steps select overlapping tokens, as real decoding does.
//!
//! # Determinism and speed
//! Every (layer, KV head, chunk of [`CHUNK_TOKENS`] tokens) draws from its own `ChaCha8Rng`
//! seeded from (seed, layer, head, chunk), and the chunks are generated in parallel with
//! rayon: the result is the same for any thread count, and one layer at a time can be made
//! (or one head at a time into a caller's buffer, in any element type, e.g. bf16).

use std::f64::consts::PI;
use std::fmt;

use ndarray::{s, Array3, ArrayView2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

/// Tokens per independently seeded chunk. Part of the determinism contract: changing it
/// changes the data (topic runs restart at chunk boundaries).
pub const CHUNK_TOKENS: usize = 4096;

/// Rotating (RoPE-like) channel pairs that carry position, for recency.
pub const POSITION_PAIRS: usize = 4;

/// Layers of Llama-3-8B.
pub const LLAMA3_8B_LAYERS: usize = 32;

/// Amplitude of the positional channel pairs in the keys: about a normal channel's spread,
/// so they are not outliers of their own.
const POSITION_AMPLITUDE: f32 = 1.0;

/// Magnitude of the sink values' noise: sinks are "no-op" targets with near-zero values.
const SINK_VALUE_NOISE: f32 = 0.1;

/// What to generate. Build it with [`DecodeSpec::new`] or [`DecodeSpec::llama3_8b`] and
/// change the knobs as needed; the defaults are listed on each field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeSpec {
    /// Prefill tokens `N`.
    pub tokens: usize,
    /// Decode steps `T`; one token is appended per step.
    pub steps: usize,
    /// KV heads per layer.
    pub kv_heads: usize,
    /// Query heads per KV head (GQA group).
    pub gqa_group: usize,
    /// Key, value and query dimension.
    pub head_dim: usize,
    /// Seed; the layer index is mixed in, so layers differ.
    pub seed: u64,
    /// Attention-sink tokens at the start of the context (default 4, the number
    /// StreamingLLM keeps).
    pub sink_tokens: usize,
    /// Logit (q.k / sqrt(D), nats) of a sink token for every query (default 12): well above
    /// the topic logit, so each sink draws far more attention than any other token. Being
    /// fixed, the sinks' share shrinks as the context grows (with the defaults about 15 % at
    /// 32K tokens, 2 % at 128K), which leaves most of the mass at long context to the
    /// retrieved tokens rather than to the always-kept sinks (the cautious choice).
    pub sink_logit: f32,
    /// Topic centers per head (default 64).
    pub topics: usize,
    /// Mean tokens before the topic changes (default 32): text changes subject every few
    /// sentences, so keys come in runs around one center.
    pub run_length: usize,
    /// Key spread around its topic center, relative to the center's spread (default 0.6):
    /// tokens of one topic are similar, not identical.
    pub key_noise: f32,
    /// Key channels with a much larger magnitude (default 8 of 128, as RoPE'd keys show a
    /// handful of such channels per head).
    pub outlier_channels: usize,
    /// Magnitude of the outlier channels relative to the others (default 4).
    pub outlier_scale: f32,
    /// Logit of the query's most attended topic center (default 8): tokens of that topic
    /// stand out from unrelated tokens (logit about 0) by this much, so a few percent of the
    /// tokens hold most of the attention, as long-context heads show.
    pub topic_logit: f32,
    /// Sharpness of the query's mix over topics (default 2): the weights are
    /// softmax(sharpness * z) of the AR(1) state z ~ N(0, 1), so a few topics dominate.
    pub topic_sharpness: f32,
    /// Correlation of the topic state between consecutive steps (default 0.7, moderate):
    /// z_t = rho z_{t-1} + sqrt(1 - rho^2) e_t. 0 makes steps independent, 1 frozen.
    pub step_correlation: f32,
    /// Share of a query head's topic state that is its own rather than the group's
    /// (default 0.3): heads of a GQA group attend related but not equal tokens.
    pub head_diversity: f32,
    /// Weight of the decoded token's own topic in the query's mix (default 0.25): the
    /// current context steers what is attended.
    pub recent_topic_weight: f32,
    /// Extra logit of the nearest tokens from the positional channel pairs (default 4): the
    /// local window gets more attention, as RoPE heads show.
    pub recency_logit: f32,
    /// Distance, in tokens, at which the positional bonus has fallen to about 60 % (default
    /// 64); it is near 0 from four windows on.
    pub recency_window: usize,
    /// Rotation of the query's topic mix away from the key topics, as a fraction of a right
    /// angle (default 0.3): the query is cos(a) c + sin(a) R c, with c the mix of topic
    /// centers and R a fixed signed permutation, so queries sit outside the key distribution
    /// and the rotated part adds noise to every logit.
    pub query_rotation: f32,
    /// Norm of a fixed per-head query offset relative to the query's topic part (default
    /// 0.5): real queries share a bias, which also favours some tokens over all steps (heavy
    /// hitters).
    pub query_offset: f32,
    /// Spread of the per-topic value centers relative to the value noise (default 1): values
    /// of a topic share a mean, so which tokens are dropped changes the attention output.
    pub value_topic_scale: f32,
}

impl DecodeSpec {
    /// A spec of the given shape with the default knobs and seed 0.
    pub fn new(
        tokens: usize,
        steps: usize,
        kv_heads: usize,
        gqa_group: usize,
        head_dim: usize,
    ) -> Self {
        Self {
            tokens,
            steps,
            kv_heads,
            gqa_group,
            head_dim,
            seed: 0,
            sink_tokens: 4,
            sink_logit: 12.0,
            topics: 64,
            run_length: 32,
            key_noise: 0.6,
            outlier_channels: 8,
            outlier_scale: 4.0,
            topic_logit: 8.0,
            topic_sharpness: 2.0,
            step_correlation: 0.7,
            head_diversity: 0.3,
            recent_topic_weight: 0.25,
            recency_logit: 4.0,
            recency_window: 64,
            query_rotation: 0.3,
            query_offset: 0.5,
            value_topic_scale: 1.0,
        }
    }

    /// A Llama-3-8B layer shape: 8 KV heads, GQA group 4 (32 query heads), head_dim 128.
    pub fn llama3_8b(tokens: usize, steps: usize) -> Self {
        Self::new(tokens, steps, 8, 4, 128)
    }

    /// Query heads per layer.
    pub fn q_heads(&self) -> usize {
        self.kv_heads * self.gqa_group
    }

    /// Tokens in the cache after the last step: `N + T`.
    pub fn cache_tokens(&self) -> usize {
        self.tokens + self.steps
    }

    /// Shape of the keys (and values) of one layer: `[kv_heads, N + T, head_dim]`.
    pub fn kv_shape(&self) -> (usize, usize, usize) {
        (self.kv_heads, self.cache_tokens(), self.head_dim)
    }

    /// Shape of the queries of one layer: `[T, kv_heads * gqa_group, head_dim]`.
    pub fn query_shape(&self) -> (usize, usize, usize) {
        (self.steps, self.q_heads(), self.head_dim)
    }

    /// Checks the shape and the knobs; the generators panic with this message otherwise.
    pub fn check(&self) -> Result<(), String> {
        let fail = |why: String| Err(format!("decode workload: {why}"));
        let special = 1 + 2 * POSITION_PAIRS + self.outlier_channels;
        if self.kv_heads == 0 || self.gqa_group == 0 {
            return fail("kv_heads and gqa_group must be > 0".into());
        }
        if self.head_dim <= special {
            return fail(format!(
                "head_dim {} must exceed 1 sink + {} positional + {} outlier channels",
                self.head_dim,
                2 * POSITION_PAIRS,
                self.outlier_channels
            ));
        }
        if self.cache_tokens() == 0 || self.sink_tokens > self.tokens {
            return fail(format!(
                "need tokens + steps > 0 and sink_tokens <= tokens: tokens {}, steps {}, \
                 sink_tokens {}",
                self.tokens, self.steps, self.sink_tokens
            ));
        }
        if self.topics == 0 || self.run_length == 0 || self.recency_window == 0 {
            return fail("topics, run_length and recency_window must be > 0".into());
        }
        let fractions = [
            ("step_correlation", self.step_correlation),
            ("head_diversity", self.head_diversity),
            ("recent_topic_weight", self.recent_topic_weight),
            ("query_rotation", self.query_rotation),
        ];
        if let Some((name, v)) = fractions.iter().find(|(_, v)| !(0.0..=1.0).contains(v)) {
            return fail(format!("{name} {v} not in [0, 1]"));
        }
        let magnitudes = [
            ("sink_logit", self.sink_logit),
            ("key_noise", self.key_noise),
            ("outlier_scale", self.outlier_scale),
            ("topic_logit", self.topic_logit),
            ("topic_sharpness", self.topic_sharpness),
            ("recency_logit", self.recency_logit),
            ("query_offset", self.query_offset),
            ("value_topic_scale", self.value_topic_scale),
        ];
        if let Some((name, v)) = magnitudes
            .iter()
            .find(|(_, v)| !(v.is_finite() && *v >= 0.0))
        {
            return fail(format!("{name} {v} must be finite and >= 0"));
        }
        Ok(())
    }

    fn check_or_panic(&self) {
        if let Err(e) = self.check() {
            panic!("{e}");
        }
    }
}

/// One layer of keys, values and queries (see the module docs for the layout).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerData {
    /// Keys `[kv_heads][N + T][head_dim]`.
    pub keys: Array3<f32>,
    /// Values, the shape of the keys.
    pub values: Array3<f32>,
    /// Queries `[T][kv_heads * gqa_group][head_dim]`.
    pub queries: Array3<f32>,
}

/// Why a layer's arrays do not fit together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerShapeError(pub String);

impl fmt::Display for LayerShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LayerShapeError {}

impl LayerData {
    /// Checks that the three arrays describe one layer: values shaped like keys, the same
    /// head_dim, query heads a multiple of KV heads, and more cache tokens than steps.
    /// Messages name the array (`keys`, `values`, `queries`) and both shapes.
    pub fn check(&self) -> Result<(), LayerShapeError> {
        check_layer_shapes(self.keys.shape(), self.values.shape(), self.queries.shape())
    }

    /// KV heads.
    pub fn kv_heads(&self) -> usize {
        self.keys.dim().0
    }

    /// Tokens in the cache after the last step (`N + T`).
    pub fn cache_tokens(&self) -> usize {
        self.keys.dim().1
    }

    /// Decode steps `T`.
    pub fn steps(&self) -> usize {
        self.queries.dim().0
    }

    /// Prefill tokens `N`.
    pub fn prefill_tokens(&self) -> usize {
        self.cache_tokens() - self.steps()
    }

    /// Head dimension.
    pub fn head_dim(&self) -> usize {
        self.keys.dim().2
    }

    /// Query heads per KV head.
    pub fn gqa_group(&self) -> usize {
        self.queries.dim().1 / self.kv_heads().max(1)
    }

    /// Tokens the query of step `t` attends to: `N + t + 1`.
    pub fn visible(&self, step: usize) -> usize {
        self.prefill_tokens() + step + 1
    }

    /// The query heads of step `t` that share KV head `head`: `[g][head_dim]`.
    pub fn group_queries(&self, step: usize, head: usize) -> ArrayView2<'_, f32> {
        let g = self.gqa_group();
        self.queries.slice(s![step, head * g..(head + 1) * g, ..])
    }
}

/// The shape rules of [`LayerData::check`] on bare shapes (the `.npy` loader uses them
/// before building arrays).
pub fn check_layer_shapes(
    keys: &[usize],
    values: &[usize],
    queries: &[usize],
) -> Result<(), LayerShapeError> {
    let err = |m: String| Err(LayerShapeError(m));
    if keys.len() != 3 {
        return err(format!(
            "keys: expected 3 axes [kv_heads][tokens][head_dim], found shape {keys:?}"
        ));
    }
    if queries.len() != 3 {
        return err(format!(
            "queries: expected 3 axes [steps][q_heads][head_dim], found shape {queries:?}"
        ));
    }
    if values != keys {
        return err(format!(
            "values: shape {values:?} differs from keys {keys:?}"
        ));
    }
    let (heads, tokens, d) = (keys[0], keys[1], keys[2]);
    let (steps, q_heads, qd) = (queries[0], queries[1], queries[2]);
    if heads == 0 || d == 0 {
        return err(format!("keys: shape {keys:?} has no heads or no channels"));
    }
    if qd != d {
        return err(format!(
            "queries: head_dim {qd} (shape {queries:?}) differs from keys' {d} (shape {keys:?})"
        ));
    }
    if q_heads == 0 || !q_heads.is_multiple_of(heads) {
        return err(format!(
            "queries: {q_heads} query heads (shape {queries:?}) are not a positive multiple \
             of keys' {heads} KV heads"
        ));
    }
    if tokens <= steps {
        return err(format!(
            "keys: {tokens} tokens (shape {keys:?}) must exceed the {steps} steps of queries \
             (shape {queries:?}): keys hold the prefill and then one token per step"
        ));
    }
    Ok(())
}

/// The generator (a namespace: every function takes the spec and a layer index).
pub struct DecodeWorkload;

impl DecodeWorkload {
    /// Keys, values and queries of layer `layer`, as f32 arrays.
    ///
    /// # Panics
    /// If `spec.check()` fails.
    pub fn layer(spec: &DecodeSpec, layer: usize) -> LayerData {
        spec.check_or_panic();
        let (h, n, d) = spec.kv_shape();
        let mut keys = vec![0.0f32; h * n * d];
        let mut values = vec![0.0f32; h * n * d];
        Self::fill_kv(spec, layer, &mut keys, &mut values, |x| x);
        LayerData {
            keys: Array3::from_shape_vec((h, n, d), keys).expect("sized above"),
            values: Array3::from_shape_vec((h, n, d), values).expect("sized above"),
            queries: Self::queries(spec, layer),
        }
    }

    /// Writes the keys and values of layer `layer` into the caller's buffers (layout
    /// `[kv_heads][N + T][head_dim]`, length `kv_heads * (N + T) * head_dim` each), converting
    /// every element with `convert` (e.g. to bf16 bits), so no f32 copy of the layer is made.
    ///
    /// # Panics
    /// If `spec.check()` fails or a buffer has the wrong length.
    pub fn fill_kv<E: Send, F: Fn(f32) -> E + Sync>(
        spec: &DecodeSpec,
        layer: usize,
        keys: &mut [E],
        values: &mut [E],
        convert: F,
    ) {
        spec.check_or_panic();
        let per_head = spec.cache_tokens() * spec.head_dim;
        assert_eq!(keys.len(), spec.kv_heads * per_head, "keys buffer length");
        assert_eq!(
            values.len(),
            spec.kv_heads * per_head,
            "values buffer length"
        );
        keys.par_chunks_mut(per_head)
            .zip(values.par_chunks_mut(per_head))
            .enumerate()
            .for_each(|(head, (k, v))| Self::fill_head_kv(spec, layer, head, k, v, &convert));
    }

    /// Writes the keys and values of one KV head (`[N + T][head_dim]` each), as
    /// [`DecodeWorkload::fill_kv`] does for all heads: for callers that hold one head at a time.
    ///
    /// # Panics
    /// If `spec.check()` fails, `head >= kv_heads` or a buffer has the wrong length.
    pub fn fill_head_kv<E: Send, F: Fn(f32) -> E + Sync>(
        spec: &DecodeSpec,
        layer: usize,
        head: usize,
        keys: &mut [E],
        values: &mut [E],
        convert: F,
    ) {
        spec.check_or_panic();
        assert!(
            head < spec.kv_heads,
            "head {head} >= kv_heads {}",
            spec.kv_heads
        );
        let d = spec.head_dim;
        assert_eq!(keys.len(), spec.cache_tokens() * d, "keys buffer length");
        assert_eq!(
            values.len(),
            spec.cache_tokens() * d,
            "values buffer length"
        );
        let params = HeadParams::new(spec, layer, head);
        keys.par_chunks_mut(CHUNK_TOKENS * d)
            .zip(values.par_chunks_mut(CHUNK_TOKENS * d))
            .enumerate()
            .for_each(|(chunk, (k, v))| {
                params.fill_chunk(spec, layer, head, chunk, k, v, &convert)
            });
    }

    /// Queries of layer `layer`: `[T][kv_heads * gqa_group][head_dim]`.
    ///
    /// # Panics
    /// If `spec.check()` fails.
    pub fn queries(spec: &DecodeSpec, layer: usize) -> Array3<f32> {
        spec.check_or_panic();
        let g = spec.gqa_group;
        let per_head: Vec<Array3<f32>> = (0..spec.kv_heads)
            .into_par_iter()
            .map(|head| HeadParams::new(spec, layer, head).queries(spec, layer, head))
            .collect();
        let mut out = Array3::zeros(spec.query_shape());
        for (head, q) in per_head.iter().enumerate() {
            out.slice_mut(s![.., head * g..(head + 1) * g, ..])
                .assign(q);
        }
        out
    }
}

/// Independent random streams of one (layer, head).
#[derive(Clone, Copy)]
enum Stream {
    Params = 1,
    Topics = 2,
    Kv = 3,
    Queries = 4,
}

/// splitmix64's finalizer: spreads nearby inputs over the whole seed space.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn rng_for(seed: u64, layer: usize, head: usize, stream: Stream, index: usize) -> ChaCha8Rng {
    let s = [layer as u64, head as u64, stream as u64, index as u64]
        .iter()
        .fold(mix(seed), |acc, v| mix(acc ^ mix(*v)));
    ChaCha8Rng::seed_from_u64(s)
}

fn normal(rng: &mut ChaCha8Rng) -> f32 {
    StandardNormal.sample(rng)
}

/// What is fixed for one (layer, KV head): channel roles, topic centers, the query's
/// rotation and offset.
struct HeadParams {
    d: usize,
    /// Per-channel magnitude of the keys (outlier channels larger).
    channel_scale: Vec<f32>,
    /// Key topic centers `[topics][d]`, zero on the sink and positional channels.
    centers: Vec<f32>,
    /// Value topic centers `[topics][d]`.
    value_centers: Vec<f32>,
    sink_channel: usize,
    /// (cos channel, sin channel, angular frequency) per positional pair.
    position: Vec<(usize, usize, f64)>,
    /// Ordinary channels (neither sink nor positional): the rotation permutes them.
    ordinary: Vec<usize>,
    /// Signed permutation of the ordinary channels: query channel `ordinary[i]` takes
    /// `sign[i] * c[ordinary[perm[i]]]`.
    perm: Vec<usize>,
    sign: Vec<f32>,
    /// Unit query offset direction over the ordinary channels.
    offset: Vec<f32>,
    /// Sink key magnitude in the sink channel and the queries' constant there.
    sink_key: f32,
    sink_query: f32,
}

impl HeadParams {
    fn new(spec: &DecodeSpec, layer: usize, head: usize) -> Self {
        let d = spec.head_dim;
        let mut rng = rng_for(spec.seed, layer, head, Stream::Params, 0);
        // Channel roles from one random permutation: sink, positional pairs, outliers.
        let mut order: Vec<usize> = (0..d).collect();
        for i in (1..d).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        let sink_channel = order[0];
        let position: Vec<(usize, usize, f64)> = (0..POSITION_PAIRS)
            .map(|i| {
                // Frequencies a factor e apart (not commensurate, so the bonus does not come
                // back in phase at round distances), the fastest at 2 rad per window: the
                // mean cosine over the pairs is about 0.6 at the window and near 0 from four
                // windows on, where the pairs add position noise as RoPE does.
                let omega = 2.0 / spec.recency_window as f64 / std::f64::consts::E.powi(i as i32);
                (order[1 + 2 * i], order[2 + 2 * i], omega)
            })
            .collect();
        let special = 1 + 2 * POSITION_PAIRS;
        let mut channel_scale = vec![1.0f32; d];
        for &j in &order[special..special + spec.outlier_channels] {
            channel_scale[j] = spec.outlier_scale;
        }
        let mut ordinary: Vec<usize> = order[special..].to_vec();
        ordinary.sort_unstable();
        let mut centers = vec![0.0f32; spec.topics * d];
        let mut value_centers = vec![0.0f32; spec.topics * d];
        for w in 0..spec.topics {
            for &j in &ordinary {
                centers[w * d + j] = normal(&mut rng);
            }
            for j in 0..d {
                value_centers[w * d + j] = spec.value_topic_scale * normal(&mut rng);
            }
        }
        let m = ordinary.len();
        let mut perm: Vec<usize> = (0..m).collect();
        for i in (1..m).rev() {
            perm.swap(i, rng.random_range(0..=i));
        }
        let sign: Vec<f32> = (0..m)
            .map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 })
            .collect();
        let mut offset: Vec<f32> = (0..m).map(|_| normal(&mut rng)).collect();
        let norm = offset
            .iter()
            .map(|v| v * v)
            .sum::<f32>()
            .sqrt()
            .max(f32::MIN_POSITIVE);
        offset.iter_mut().for_each(|v| *v /= norm);
        // sink_key * sink_query / sqrt(D) = sink_logit, with the query's constant half the
        // key's: the sink key stays within the range of outlier-channel values (no single
        // huge value to wreck a codebook's quantization scale), and normal keys' noise in
        // this channel moves their logits little.
        let sink_query = (spec.sink_logit * (d as f32).sqrt() / 2.0).sqrt();
        Self {
            d,
            channel_scale,
            centers,
            value_centers,
            sink_channel,
            position,
            ordinary,
            perm,
            sign,
            offset,
            sink_key: 2.0 * sink_query,
            sink_query,
        }
    }

    /// Topic of every token of chunk `chunk` (its own stream, so queries can read the
    /// decoded token's topic without generating keys).
    fn chunk_topics(
        spec: &DecodeSpec,
        layer: usize,
        head: usize,
        chunk: usize,
        len: usize,
    ) -> Vec<u32> {
        let mut rng = rng_for(spec.seed, layer, head, Stream::Topics, chunk);
        let mut topic = 0u32;
        (0..len)
            .map(|i| {
                if i == 0 || rng.random_range(0..spec.run_length) == 0 {
                    topic = rng.random_range(0..spec.topics as u32);
                }
                topic
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn fill_chunk<E, F: Fn(f32) -> E>(
        &self,
        spec: &DecodeSpec,
        layer: usize,
        head: usize,
        chunk: usize,
        keys: &mut [E],
        values: &mut [E],
        convert: &F,
    ) {
        let d = self.d;
        let len = keys.len() / d;
        let topics = Self::chunk_topics(spec, layer, head, chunk, len);
        let mut rng = rng_for(spec.seed, layer, head, Stream::Kv, chunk);
        let mut key = vec![0.0f32; d];
        for (i, (k_out, v_out)) in keys
            .chunks_exact_mut(d)
            .zip(values.chunks_exact_mut(d))
            .enumerate()
        {
            let pos = chunk * CHUNK_TOKENS + i;
            let sink = pos < spec.sink_tokens;
            let w = topics[i] as usize;
            let center = &self.centers[w * d..(w + 1) * d];
            for j in 0..d {
                let c = if sink { 0.0 } else { center[j] };
                key[j] = self.channel_scale[j] * (c + spec.key_noise * normal(&mut rng));
            }
            if sink {
                key[self.sink_channel] += self.sink_key;
            }
            // Sink keys carry no position, so their pull does not swing with the distance
            // (real sink keys sit in RoPE's slowest, barely rotating channels).
            for &(a, b, omega) in self.position.iter().filter(|_| !sink) {
                let (sin, cos) = (omega * pos as f64).sin_cos();
                key[a] += POSITION_AMPLITUDE * cos as f32;
                key[b] += POSITION_AMPLITUDE * sin as f32;
            }
            for (o, &k) in k_out.iter_mut().zip(&key) {
                *o = convert(k);
            }
            let vc = &self.value_centers[w * d..(w + 1) * d];
            for (j, o) in v_out.iter_mut().enumerate() {
                let v = if sink {
                    SINK_VALUE_NOISE * normal(&mut rng)
                } else {
                    vc[j] + normal(&mut rng)
                };
                *o = convert(v);
            }
        }
    }

    /// The `[T][g][d]` queries of this KV head's group.
    fn queries(&self, spec: &DecodeSpec, layer: usize, head: usize) -> Array3<f32> {
        let (d, g, topics) = (self.d, spec.gqa_group, spec.topics);
        let mut rng = rng_for(spec.seed, layer, head, Stream::Queries, 0);
        let rho = spec.step_correlation;
        let fresh = (1.0 - rho * rho).max(0.0).sqrt();
        let (own, shared) = (
            spec.head_diversity.sqrt(),
            (1.0 - spec.head_diversity).sqrt(),
        );
        let draw =
            |rng: &mut ChaCha8Rng| -> Vec<f32> { (0..topics).map(|_| normal(rng)).collect() };
        let mut z_group = draw(&mut rng);
        let mut z_heads: Vec<Vec<f32>> = (0..g).map(|_| draw(&mut rng)).collect();
        let mut out = Array3::zeros((spec.steps, g, d));
        let mut chunk_cache: Option<(usize, Vec<u32>)> = None;
        let angle = spec.query_rotation as f64 * PI / 2.0;
        let (cos_a, sin_a) = (angle.cos() as f32, angle.sin() as f32);
        let position_gain =
            spec.recency_logit * (d as f32).sqrt() / (POSITION_PAIRS as f32 * POSITION_AMPLITUDE);
        for t in 0..spec.steps {
            if t > 0 {
                for z in std::iter::once(&mut z_group).chain(z_heads.iter_mut()) {
                    z.iter_mut()
                        .for_each(|v| *v = rho * *v + fresh * normal(&mut rng));
                }
            }
            let pos = spec.tokens + t;
            let chunk = pos / CHUNK_TOKENS;
            if chunk_cache.as_ref().is_none_or(|(c, _)| *c != chunk) {
                let len = (spec.cache_tokens() - chunk * CHUNK_TOKENS).min(CHUNK_TOKENS);
                chunk_cache = Some((chunk, Self::chunk_topics(spec, layer, head, chunk, len)));
            }
            let recent = chunk_cache.as_ref().expect("set above").1[pos % CHUNK_TOKENS] as usize;
            for (hq, mut q) in out.index_axis_mut(Axis(0), t).outer_iter_mut().enumerate() {
                // Topic weights: softmax of the head's AR(1) state, plus the decoded token's topic.
                let z: Vec<f32> = z_group
                    .iter()
                    .zip(&z_heads[hq])
                    .map(|(a, b)| spec.topic_sharpness * (shared * a + own * b))
                    .collect();
                let zmax = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut weights: Vec<f32> = z.iter().map(|v| (v - zmax).exp()).collect();
                let total: f32 = weights.iter().sum();
                weights
                    .iter_mut()
                    .for_each(|w| *w *= (1.0 - spec.recent_topic_weight) / total);
                weights[recent] += spec.recent_topic_weight;
                let mut mix = vec![0.0f32; d];
                for (w, weight) in weights.iter().enumerate() {
                    let center = &self.centers[w * d..(w + 1) * d];
                    mix.iter_mut()
                        .zip(center)
                        .for_each(|(m, c)| *m += weight * c);
                }
                // Rotate part of the mix out of the key topics' directions.
                let mut part = vec![0.0f32; d];
                for (i, &j) in self.ordinary.iter().enumerate() {
                    part[j] =
                        cos_a * mix[j] + sin_a * self.sign[i] * mix[self.ordinary[self.perm[i]]];
                }
                // Scale so the most attended topic center's logit is topic_logit.
                let best = (0..topics)
                    .map(|w| self.center_logit(&part, w))
                    .fold(f32::NEG_INFINITY, f32::max);
                let gain = if best > 1e-6 {
                    spec.topic_logit / best
                } else {
                    0.0
                };
                let norm = gain * part.iter().map(|v| v * v).sum::<f32>().sqrt();
                for (i, &j) in self.ordinary.iter().enumerate() {
                    q[j] = gain * part[j] + spec.query_offset * norm * self.offset[i];
                }
                q[self.sink_channel] = self.sink_query;
                for &(a, b, omega) in &self.position {
                    let (sin, cos) = (omega * pos as f64).sin_cos();
                    q[a] = position_gain * cos as f32;
                    q[b] = position_gain * sin as f32;
                }
            }
        }
        out
    }

    /// q.k / sqrt(D) of the query part `part` with the (scaled) center of topic `w`.
    fn center_logit(&self, part: &[f32], w: usize) -> f32 {
        let center = &self.centers[w * self.d..(w + 1) * self.d];
        let dot: f32 = part
            .iter()
            .zip(center)
            .zip(&self.channel_scale)
            .map(|((p, c), s)| p * c * s)
            .sum();
        dot / (self.d as f32).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden::attention::{attention_mass, group_top_k, relative_error};

    fn small() -> DecodeSpec {
        DecodeSpec {
            seed: 7,
            ..DecodeSpec::new(6000, 6, 2, 2, 32)
        }
    }

    #[test]
    fn shapes_and_accessors() {
        let spec = small();
        let l = DecodeWorkload::layer(&spec, 0);
        assert_eq!(l.keys.dim(), (2, 6006, 32));
        assert_eq!(l.values.dim(), (2, 6006, 32));
        assert_eq!(l.queries.dim(), (6, 4, 32));
        l.check().unwrap();
        assert_eq!((l.prefill_tokens(), l.steps(), l.gqa_group()), (6000, 6, 2));
        assert_eq!(l.visible(2), 6003);
        assert_eq!(l.group_queries(1, 1), l.queries.slice(s![1, 2..4, ..]));
        assert!(l
            .keys
            .iter()
            .chain(&l.values)
            .chain(&l.queries)
            .all(|v| v.is_finite()));
    }

    #[test]
    fn deterministic_across_thread_counts_and_layers_differ() {
        let spec = small();
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| DecodeWorkload::layer(&spec, 3))
        };
        let one = run(1);
        assert_eq!(one, run(3));
        let other_layer = DecodeWorkload::layer(&spec, 4);
        assert_ne!(one.keys, other_layer.keys);
        assert_ne!(one.queries, other_layer.queries);
        let other_seed = DecodeWorkload::layer(&DecodeSpec { seed: 8, ..spec }, 3);
        assert_ne!(one.keys, other_seed.keys);
    }

    #[test]
    fn caller_buffers_get_the_same_data_converted() {
        let spec = small();
        let l = DecodeWorkload::layer(&spec, 1);
        let len = spec.kv_heads * spec.cache_tokens() * spec.head_dim;
        let (mut k, mut v) = (vec![0.0f64; len], vec![0.0f64; len]);
        DecodeWorkload::fill_kv(&spec, 1, &mut k, &mut v, f64::from);
        assert!(k.iter().zip(&l.keys).all(|(a, b)| *a == f64::from(*b)));
        assert!(v.iter().zip(&l.values).all(|(a, b)| *a == f64::from(*b)));
        let per_head = len / spec.kv_heads;
        let (mut k1, mut v1) = (vec![0.0f32; per_head], vec![0.0f32; per_head]);
        DecodeWorkload::fill_head_kv(&spec, 1, 1, &mut k1, &mut v1, |x| x);
        assert_eq!(
            k1.as_slice(),
            l.keys.index_axis(Axis(0), 1).as_slice().unwrap()
        );
    }

    #[test]
    fn bad_specs_are_refused() {
        // 1 sink + 8 positional + 8 outlier channels need head_dim 18.
        assert!(DecodeSpec::new(10, 1, 1, 1, 18).check().is_ok());
        let e = DecodeSpec::new(10, 1, 1, 1, 17).check().unwrap_err();
        assert!(e.contains("head_dim 17"), "{e}");
        let e = DecodeSpec {
            step_correlation: 1.5,
            ..DecodeSpec::new(10, 1, 1, 1, 18)
        }
        .check()
        .unwrap_err();
        assert!(e.contains("step_correlation"), "{e}");
        assert!(
            DecodeSpec::new(2, 1, 1, 1, 18).check().is_err(),
            "fewer tokens than sinks"
        );
    }

    /// Mean over heads and steps of `f(layer, step, head)`.
    fn mean_over(l: &LayerData, f: impl Fn(usize, usize) -> f64) -> f64 {
        let mut total = 0.0;
        for t in 0..l.steps() {
            for h in 0..l.kv_heads() {
                total += f(t, h);
            }
        }
        total / (l.steps() * l.kv_heads()) as f64
    }

    fn visible_keys(l: &LayerData, h: usize, t: usize) -> ArrayView2<'_, f32> {
        l.keys.slice(s![h, ..l.visible(t), ..])
    }

    #[test]
    fn sinks_and_recent_tokens_draw_attention() {
        let spec = DecodeSpec {
            seed: 11,
            ..DecodeSpec::new(8000, 8, 2, 4, 64)
        };
        let l = DecodeWorkload::layer(&spec, 0);
        let sinks: Vec<u32> = (0..4).collect();
        let sink_mass = mean_over(&l, |t, h| {
            attention_mass(l.group_queries(t, h), visible_keys(&l, h, t), &sinks)
        });
        // Uniform attention would give 4 / 8000 = 0.0005.
        assert!(sink_mass > 0.1, "sink mass {sink_mass}");
        let w = 64;
        let recent_mass = mean_over(&l, |t, h| {
            let n = l.visible(t) as u32;
            let recent: Vec<u32> = (n - w..n).collect();
            attention_mass(l.group_queries(t, h), visible_keys(&l, h, t), &recent)
        });
        let middle_mass = mean_over(&l, |t, h| {
            let mid: Vec<u32> = (4000..4000 + w).collect();
            attention_mass(l.group_queries(t, h), visible_keys(&l, h, t), &mid)
        });
        assert!(
            recent_mass > 3.0 * middle_mass,
            "recent {recent_mass} middle {middle_mass}"
        );
        // Without the sink and recency structure they vanish.
        let flat = DecodeSpec {
            sink_logit: 0.0,
            recency_logit: 0.0,
            recent_topic_weight: 0.0,
            ..spec
        };
        let f = DecodeWorkload::layer(&flat, 0);
        let flat_sink = mean_over(&f, |t, h| {
            attention_mass(f.group_queries(t, h), visible_keys(&f, h, t), &sinks)
        });
        assert!(flat_sink < 0.01, "flat sink mass {flat_sink}");
    }

    /// Mean overlap |A_t ∩ A_{t+1}| / k of consecutive steps' exact top-k.
    fn step_overlap(l: &LayerData, k: usize) -> f64 {
        let mut total = 0.0;
        let mut count = 0;
        for h in 0..l.kv_heads() {
            let sets: Vec<std::collections::HashSet<u32>> = (0..l.steps())
                .map(|t| {
                    group_top_k(l.group_queries(t, h), visible_keys(l, h, t), k)
                        .into_iter()
                        .filter(|&i| i >= 4)
                        .collect()
                })
                .collect();
            for w in sets.windows(2) {
                total += w[0].intersection(&w[1]).count() as f64 / k as f64;
                count += 1;
            }
        }
        total / count as f64
    }

    #[test]
    fn consecutive_steps_select_overlapping_tokens() {
        // Recency off first, so the overlap comes from the topic drift alone.
        let base = DecodeSpec {
            seed: 5,
            ..DecodeSpec::new(8000, 12, 2, 4, 64)
        };
        let drift_only = DecodeSpec {
            recency_logit: 0.0,
            recent_topic_weight: 0.0,
            ..base
        };
        let independent = DecodeSpec {
            step_correlation: 0.0,
            ..drift_only
        };
        let k = 400;
        let overlap = |spec: &DecodeSpec| step_overlap(&DecodeWorkload::layer(spec, 0), k);
        let (coherent, independent, full) =
            (overlap(&drift_only), overlap(&independent), overlap(&base));
        // Random sets of 400 of 8000 overlap by 5 %; measured about 0.32, 0.14 and 0.71.
        assert!(coherent > 0.2, "coherent overlap {coherent}");
        assert!(
            coherent > independent + 0.1,
            "coherent {coherent} independent {independent}"
        );
        assert!(full > 0.5, "overlap with the default recency {full}");
    }

    #[test]
    fn retrieving_the_top_keys_keeps_the_attention_output() {
        let spec = DecodeSpec {
            seed: 9,
            ..DecodeSpec::new(8000, 4, 2, 4, 64)
        };
        let l = DecodeWorkload::layer(&spec, 0);
        let budget = 800;
        let (mut top_err, mut random_err) = (0.0, 0.0);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for t in 0..l.steps() {
            for h in 0..l.kv_heads() {
                let n = l.visible(t);
                let (keys, values) = (visible_keys(&l, h, t), l.values.slice(s![h, ..n, ..]));
                let top = group_top_k(l.group_queries(t, h), keys, budget);
                let random: Vec<u32> = (0..budget).map(|_| rng.random_range(0..n as u32)).collect();
                top_err += relative_error(l.group_queries(t, h), keys, values, &top);
                random_err += relative_error(l.group_queries(t, h), keys, values, &random);
            }
        }
        // Values differ by topic, so the output depends on which tokens are kept.
        assert!(
            top_err < 0.25 * random_err,
            "top-k {top_err} random {random_err}"
        );
    }

    #[test]
    fn outlier_channels_are_larger_and_queries_unlike_keys() {
        let spec = DecodeSpec {
            seed: 3,
            ..DecodeSpec::new(6000, 64, 1, 1, 64)
        };
        let l = DecodeWorkload::layer(&spec, 0);
        let keys = l.keys.index_axis(Axis(0), 0);
        let queries = l.queries.index_axis(Axis(1), 0);
        let rms = |a: ArrayView2<f32>| -> Vec<f32> {
            a.axis_iter(Axis(1))
                .map(|c| (c.mapv(|v| v * v).mean().unwrap()).sqrt())
                .collect()
        };
        let mut key_rms = rms(keys);
        key_rms.sort_by(f32::total_cmp);
        let median = key_rms[32];
        let top = &key_rms[64 - spec.outlier_channels..];
        assert!(top.iter().all(|&r| r > 2.5 * median), "rms {key_rms:?}");
        assert!(
            key_rms[64 - spec.outlier_channels - 1] < 2.0 * median,
            "rms {key_rms:?}"
        );
        // Queries have no outlier channels and a common offset: their mean, far from the
        // keys' (which are centered), and their channel profile differs.
        let q_mean = queries.mean_axis(Axis(0)).unwrap();
        let k_mean = keys.slice(s![4.., ..]).mean_axis(Axis(0)).unwrap();
        let q_spread = (queries.mapv(|v| v * v).mean().unwrap()).sqrt();
        let gap = (&q_mean - &k_mean).mapv(|v| v * v).sum().sqrt();
        assert!(
            gap > 0.5 * q_spread * (64f32).sqrt() / 4.0,
            "gap {gap} spread {q_spread}"
        );
    }
}
