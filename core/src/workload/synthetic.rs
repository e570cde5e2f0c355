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

    /// One query per decoding step: the sum of the group's heads (q.k is linear in q).
    pub fn kv_queries(&self) -> Array2<f32> {
        self.queries.sum_axis(Axis(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
