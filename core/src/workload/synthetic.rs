//! Clustered synthetic keys and GQA queries, shaped like an LLM's KV cache: keys gather
//! around topic centers that change every few dozen tokens, a few channels carry much larger
//! magnitudes (the outlier channels of real keys), and each query head leans towards one
//! topic.

use ndarray::{Array2, Array3, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyntheticSpec {
    /// Tokens (keys).
    pub n_tokens: usize,
    /// Key dimension.
    pub head_dim: usize,
    /// Decoding steps (one query group each).
    pub n_queries: usize,
    /// Query heads per KV head.
    pub gqa_group: usize,
    /// Topic centers.
    pub clusters: usize,
    /// Mean tokens before the topic changes.
    pub run_length: usize,
    /// Seed.
    pub seed: u64,
}

impl SyntheticSpec {
    /// A spec with the usual shape knobs and defaults for the rest.
    pub fn new(n_tokens: usize, head_dim: usize, n_queries: usize, gqa_group: usize) -> Self {
        Self {
            n_tokens,
            head_dim,
            n_queries,
            gqa_group,
            clusters: 64,
            run_length: 32,
            seed: 0,
        }
    }
}

/// Keys and queries of one KV head.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticKv {
    /// Keys, N x D.
    pub keys: Array2<f32>,
    /// Query heads, Q x g x D.
    pub queries: Array3<f32>,
}

impl SyntheticKv {
    /// Generates keys and queries for `spec`.
    pub fn generate(spec: &SyntheticSpec) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        let d = spec.head_dim;
        let normal = |rng: &mut ChaCha8Rng| -> f32 { StandardNormal.sample(rng) };
        // Outlier channels: every 16th channel is 4x larger, as rotary keys often show.
        let channel_scale: Vec<f32> = (0..d)
            .map(|j| if j % 16 == 3 { 4.0 } else { 1.0 })
            .collect();
        let clusters = spec.clusters.max(1);
        let centers =
            Array2::from_shape_fn((clusters, d), |(_, j)| normal(&mut rng) * channel_scale[j]);
        let mut keys = Array2::<f32>::zeros((spec.n_tokens, d));
        let mut topic = 0;
        for (t, mut row) in keys.axis_iter_mut(Axis(0)).enumerate() {
            if t == 0 || rng.random_range(0..spec.run_length.max(1)) == 0 {
                topic = rng.random_range(0..clusters);
            }
            for (j, v) in row.iter_mut().enumerate() {
                *v = centers[[topic, j]] + 0.6 * normal(&mut rng) * channel_scale[j];
            }
        }
        let mut queries = Array3::<f32>::zeros((spec.n_queries, spec.gqa_group.max(1), d));
        for mut step in queries.axis_iter_mut(Axis(0)) {
            let topic = rng.random_range(0..clusters);
            for mut head in step.axis_iter_mut(Axis(0)) {
                for (j, v) in head.iter_mut().enumerate() {
                    *v = 0.5 * centers[[topic, j]] + normal(&mut rng) * channel_scale[j];
                }
            }
        }
        Self { keys, queries }
    }

    /// A layer of `heads` KV heads, each generated from `spec` with seed `spec.seed * 100 +
    /// h`: keys `[heads][n_tokens][head_dim]` and, per decoding step, the queries of every
    /// query head `[heads * gqa_group][head_dim]` (query heads `h*g..(h+1)*g` share KV head
    /// `h`, the Hugging Face `repeat_kv` order).
    pub fn layer(spec: &SyntheticSpec, heads: usize) -> (Array3<f32>, Vec<Array2<f32>>) {
        let (n, d, g) = (spec.n_tokens, spec.head_dim, spec.gqa_group.max(1));
        let mut keys = Array3::zeros((heads, n, d));
        let mut steps = vec![Array2::zeros((heads * g, d)); spec.n_queries];
        for h in 0..heads {
            let kv = Self::generate(&SyntheticSpec {
                seed: spec.seed * 100 + h as u64,
                ..*spec
            });
            keys.index_axis_mut(Axis(0), h).assign(&kv.keys);
            for (step, q) in steps.iter_mut().zip(kv.queries.outer_iter()) {
                step.slice_mut(ndarray::s![h * g..(h + 1) * g, ..])
                    .assign(&q);
            }
        }
        (keys, steps)
    }

    /// One query per decoding step: the sum of the group's heads (q.k is linear in q).
    pub fn kv_queries(&self) -> Array2<f32> {
        self.queries.sum_axis(Axis(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_stacks_its_heads() {
        let mut spec = SyntheticSpec::new(50, 8, 3, 2);
        spec.seed = 4;
        let (keys, steps) = SyntheticKv::layer(&spec, 3);
        assert_eq!(keys.dim(), (3, 50, 8));
        assert_eq!((steps.len(), steps[0].dim()), (3, (6, 8)));
        spec.seed = 402;
        let head2 = SyntheticKv::generate(&spec);
        assert_eq!(keys.index_axis(Axis(0), 2), head2.keys);
        assert_eq!(steps[1].row(5), head2.queries.slice(ndarray::s![1, 1, ..]));
    }

    #[test]
    fn shapes_and_determinism() {
        let spec = SyntheticSpec::new(100, 16, 3, 4);
        let a = SyntheticKv::generate(&spec);
        assert_eq!(a.keys.dim(), (100, 16));
        assert_eq!(a.queries.dim(), (3, 4, 16));
        assert_eq!(a.kv_queries().dim(), (3, 16));
        assert_eq!(a, SyntheticKv::generate(&spec));
        let other = SyntheticKv::generate(&SyntheticSpec { seed: 1, ..spec });
        assert_ne!(a.keys, other.keys);
    }
}
