//! Lloyd's k-means with k-means++ initialization, parallel with rayon and deterministic for a
//! given seed whatever the thread count: points are processed in fixed-size chunks and the
//! chunks' partial sums are added in chunk order.

use ndarray::{Array2, ArrayView1, ArrayView2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::error::GoldenError;

/// Rows per parallel work item; fixed so that results do not depend on the thread count.
const CHUNK_ROWS: usize = 2048;

/// Options of one k-means run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KMeansOptions {
    /// Centroids to find.
    pub k: usize,
    /// Lloyd iterations at most.
    pub max_iters: usize,
    /// Stop when the inertia improves by less than this fraction.
    pub tolerance: f64,
    /// Seed of the k-means++ sampling.
    pub seed: u64,
}

/// A trained clustering.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeans {
    /// Centroids, one per row.
    pub centroids: Array2<f32>,
    /// Sum of squared distances of the points to their centroids.
    pub inertia: f64,
    /// Lloyd iterations run.
    pub iterations: usize,
}

/// Squared Euclidean distance.
pub fn squared_distance(a: ArrayView1<f32>, b: ArrayView1<f32>) -> f32 {
    a.iter().zip(b.iter()).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Index and squared distance of the centroid nearest to `x` (lowest index on ties).
pub fn nearest(x: ArrayView1<f32>, centroids: ArrayView2<f32>) -> (usize, f32) {
    let mut best = (0, f32::INFINITY);
    for (c, row) in centroids.outer_iter().enumerate() {
        let d = squared_distance(x, row);
        if d < best.1 {
            best = (c, d);
        }
    }
    best
}

/// Clusters the rows of `data` into `opts.k` groups.
///
/// `progress`, if given, is called once per Lloyd iteration.
pub fn kmeans(
    data: ArrayView2<f32>,
    opts: &KMeansOptions,
    progress: Option<&(dyn Fn() + Sync)>,
) -> Result<KMeans, GoldenError> {
    let (n, dim) = data.dim();
    if n < opts.k || opts.k == 0 {
        return Err(GoldenError::TooFewPoints {
            points: n,
            k: opts.k,
        });
    }
    if let Some((position, &value)) = data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(GoldenError::NonFinite {
            what: "k-means training data",
            position,
            value,
        });
    }
    let mut centroids = plus_plus_init(data, opts.k, opts.seed);
    let mut inertia = f64::INFINITY;
    let mut iterations = 0;
    for _ in 0..opts.max_iters {
        iterations += 1;
        let step = assign_and_sum(data, centroids.view());
        let mut next = Array2::<f32>::zeros((opts.k, dim));
        let mut empty = Vec::new();
        for c in 0..opts.k {
            if step.counts[c] == 0 {
                empty.push(c);
                next.row_mut(c).assign(&centroids.row(c));
            } else {
                let inv = 1.0 / step.counts[c] as f64;
                for j in 0..dim {
                    next[[c, j]] = (step.sums[[c, j]] * inv) as f32;
                }
            }
        }
        // An empty cluster takes over the point worst served by its centroid.
        if !empty.is_empty() {
            let mut far: Vec<(usize, f32)> = step
                .nearest
                .iter()
                .copied()
                .enumerate()
                .map(|(i, (_, d))| (i, d))
                .collect();
            far.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            for (c, (point, _)) in empty.iter().zip(far) {
                next.row_mut(*c).assign(&data.row(point));
            }
        }
        centroids = next;
        if let Some(tick) = progress {
            tick();
        }
        let improved = inertia - step.inertia;
        inertia = step.inertia;
        if empty.is_empty() && improved.is_finite() && improved <= opts.tolerance * inertia {
            break;
        }
    }
    // Inertia of the final centroids.
    let final_step = assign_and_sum(data, centroids.view());
    Ok(KMeans {
        centroids,
        inertia: final_step.inertia,
        iterations,
    })
}

/// k-means++: the first centroid uniformly, each next one with probability proportional to
/// the squared distance to the nearest centroid chosen so far.
fn plus_plus_init(data: ArrayView2<f32>, k: usize, seed: u64) -> Array2<f32> {
    let (n, dim) = data.dim();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut centroids = Array2::<f32>::zeros((k, dim));
    let first = rng.random_range(0..n);
    centroids.row_mut(0).assign(&data.row(first));
    let mut dist: Vec<f32> = data
        .axis_chunks_iter(Axis(0), CHUNK_ROWS)
        .into_par_iter()
        .flat_map_iter(|chunk| {
            let c0 = centroids.row(0);
            chunk
                .outer_iter()
                .map(|x| squared_distance(x, c0))
                .collect::<Vec<_>>()
        })
        .collect();
    for c in 1..k {
        let total: f64 = dist.iter().map(|&d| f64::from(d)).sum();
        let pick = if total > 0.0 {
            let target = rng.random::<f64>() * total;
            let mut acc = 0.0;
            let mut chosen = n - 1;
            for (i, &d) in dist.iter().enumerate() {
                acc += f64::from(d);
                if acc > target {
                    chosen = i;
                    break;
                }
            }
            chosen
        } else {
            // Every point coincides with a centroid: any point will do.
            rng.random_range(0..n)
        };
        centroids.row_mut(c).assign(&data.row(pick));
        let new = centroids.row(c);
        dist.par_chunks_mut(CHUNK_ROWS)
            .zip(data.axis_chunks_iter(Axis(0), CHUNK_ROWS).into_par_iter())
            .for_each(|(d, chunk)| {
                for (di, x) in d.iter_mut().zip(chunk.outer_iter()) {
                    *di = di.min(squared_distance(x, new));
                }
            });
    }
    centroids
}

struct Step {
    sums: Array2<f64>,
    counts: Vec<u64>,
    nearest: Vec<(usize, f32)>,
    inertia: f64,
}

fn assign_and_sum(data: ArrayView2<f32>, centroids: ArrayView2<f32>) -> Step {
    let (k, dim) = centroids.dim();
    let empty = |rows: usize| Step {
        sums: Array2::zeros((k, dim)),
        counts: vec![0; k],
        nearest: Vec::with_capacity(rows),
        inertia: 0.0,
    };
    let partials: Vec<Step> = data
        .axis_chunks_iter(Axis(0), CHUNK_ROWS)
        .into_par_iter()
        .map(|chunk| {
            let mut part = empty(chunk.nrows());
            for x in chunk.outer_iter() {
                let (c, d) = nearest(x, centroids);
                part.counts[c] += 1;
                part.inertia += f64::from(d);
                let mut row = part.sums.row_mut(c);
                for (s, &v) in row.iter_mut().zip(x.iter()) {
                    *s += f64::from(v);
                }
                part.nearest.push((c, d));
            }
            part
        })
        .collect();
    // Chunk order, not completion order: the sums are the same for any thread count.
    let mut step = empty(data.nrows());
    for part in partials {
        step.sums += &part.sums;
        for (a, b) in step.counts.iter_mut().zip(part.counts) {
            *a += b;
        }
        step.nearest.extend(part.nearest);
        step.inertia += part.inertia;
    }
    step
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn opts(k: usize, seed: u64) -> KMeansOptions {
        KMeansOptions {
            k,
            max_iters: 50,
            tolerance: 0.0,
            seed,
        }
    }

    #[test]
    fn separates_obvious_clusters() {
        let data = array![
            [0.0f32, 0.0],
            [0.1, 0.0],
            [0.0, 0.1],
            [10.0, 10.0],
            [10.1, 10.0],
            [10.0, 10.1]
        ];
        let km = kmeans(data.view(), &opts(2, 7), None).unwrap();
        let mut c: Vec<(f32, f32)> = km.centroids.outer_iter().map(|r| (r[0], r[1])).collect();
        c.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!((c[0].0 - 0.0333).abs() < 1e-3 && (c[1].0 - 10.0333).abs() < 1e-3);
        assert!(km.inertia < 0.1);
    }

    #[test]
    fn deterministic_for_a_seed() {
        let data = Array2::from_shape_fn((5000, 4), |(i, j)| ((i * 31 + j * 7) % 97) as f32);
        let a = kmeans(data.view(), &opts(8, 3), None).unwrap();
        let b = kmeans(data.view(), &opts(8, 3), None).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn refuses_fewer_points_than_centroids() {
        let data = Array2::<f32>::zeros((3, 2));
        assert_eq!(
            kmeans(data.view(), &opts(4, 0), None).unwrap_err(),
            GoldenError::TooFewPoints { points: 3, k: 4 }
        );
    }

    #[test]
    fn duplicate_points_still_give_k_centroids() {
        let data = Array2::<f32>::ones((10, 3));
        let km = kmeans(data.view(), &opts(4, 1), None).unwrap();
        assert_eq!(km.centroids.dim(), (4, 3));
        assert_eq!(km.inertia, 0.0);
    }
}
