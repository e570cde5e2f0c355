//! Lloyd's k-means with k-means++ initialization, parallel with rayon and deterministic for a
//! given seed whatever the thread count: points are processed in fixed-size chunks and the
//! chunks' partial sums are added in chunk order.
//!
//! Assignment (here and in `PqCodebook::encode`) computes a chunk's squared distances to
//! every centroid as ||x||^2 - 2 x.c + ||c||^2, the dot products by one matrix product
//! (ndarray's `general_mat_mul`, matrixmultiply's SIMD sgemm), instead of summing
//! (x - c)^2 one float at a time.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView1, ArrayView2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::error::GoldenError;

/// Rows per parallel work item; fixed so that results do not depend on the thread count.
pub(crate) const CHUNK_ROWS: usize = 2048;

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

/// Lanes of the float sums: eight partial sums the compiler keeps in SIMD registers (a
/// single running sum is one dependent add per element).
const LANES: usize = 8;

/// Sum of `f(a[i], b[i])`, in [`LANES`] partial sums added pairwise at the end: a fixed
/// order, so the same inputs always give the same float.
#[inline(always)]
fn lane_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += f(x[l], y[l]);
        }
    }
    for ((a, &x), &y) in acc.iter_mut().zip(ra).zip(rb) {
        *a += f(x, y);
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
}

/// Squared Euclidean distance (summed in [`LANES`] partial sums).
pub fn squared_distance(a: ArrayView1<f32>, b: ArrayView1<f32>) -> f32 {
    match (a.as_slice(), b.as_slice()) {
        (Some(a), Some(b)) if a.len() == b.len() => lane_sum(a, b, |x, y| (x - y) * (x - y)),
        _ => a.iter().zip(b.iter()).map(|(x, y)| (x - y) * (x - y)).sum(),
    }
}

/// Squared norm (summed in [`LANES`] partial sums).
fn norm2(x: ArrayView1<f32>) -> f32 {
    match x.as_slice() {
        Some(x) => lane_sum(x, x, |a, _| a * a),
        None => x.iter().map(|v| v * v).sum(),
    }
}

/// Squared norms of the rows of `m`, as [`nearest_rows`] wants them.
pub(crate) fn row_norms(m: ArrayView2<f32>) -> Vec<f32> {
    m.outer_iter().map(norm2).collect()
}

/// Index and squared distance of the centroid nearest to each row of `points` (lowest index
/// on ties), given the centroids' squared norms `c_norms`: ||x||^2 - 2 x.c + ||c||^2, the
/// dot products from one matrix product, clamped at 0 (the expansion can round a distance
/// below it). It can pick another centroid than the sum of (x - c)^2 only where two
/// distances differ by rounding.
pub fn nearest_rows(
    points: ArrayView2<f32>,
    centroids: ArrayView2<f32>,
    c_norms: &[f32],
) -> Vec<(usize, f32)> {
    let k = centroids.nrows();
    let mut dist = Array2::<f32>::zeros((points.nrows(), k));
    general_mat_mul(-2.0, &points, &centroids.t(), 0.0, &mut dist);
    let mut out = Vec::with_capacity(points.nrows());
    for (x, mut row) in points.outer_iter().zip(dist.outer_iter_mut()) {
        let xx = norm2(x);
        let Some(row) = row.as_slice_mut() else {
            continue;
        };
        for (d, &cc) in row.iter_mut().zip(c_norms) {
            *d = (xx + *d) + cc;
        }
        // The smallest value (eight running minima, no index to carry), then its first
        // position: the lowest index among equal distances. A NaN never wins.
        let mut mins = [f32::INFINITY; LANES];
        let chunks = row.chunks_exact(LANES);
        for (m, &d) in mins.iter_mut().zip(chunks.remainder()) {
            *m = if d < *m { d } else { *m };
        }
        for c in chunks {
            for (m, &d) in mins.iter_mut().zip(c) {
                *m = if d < *m { d } else { *m };
            }
        }
        let min = mins
            .iter()
            .fold(f32::INFINITY, |a, &b| if b < a { b } else { a });
        let c = row.iter().position(|&d| d == min).unwrap_or(0);
        out.push((c, min.max(0.0)));
    }
    out
}

/// Index and squared distance of the centroid nearest to `x` (lowest index on ties), as
/// [`nearest_rows`] computes it.
pub fn nearest(x: ArrayView1<f32>, centroids: ArrayView2<f32>) -> (usize, f32) {
    let norms = row_norms(centroids);
    nearest_rows(x.insert_axis(Axis(0)), centroids, &norms)
        .first()
        .copied()
        .unwrap_or((0, f32::INFINITY))
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
    let c_norms = row_norms(centroids);
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
            part.nearest = nearest_rows(chunk, centroids, &c_norms);
            for (x, &(c, d)) in chunk.outer_iter().zip(&part.nearest) {
                part.counts[c] += 1;
                part.inertia += f64::from(d);
                let mut row = part.sums.row_mut(c);
                match (row.as_slice_mut(), x.as_slice()) {
                    (Some(row), Some(x)) => {
                        for (s, &v) in row.iter_mut().zip(x) {
                            *s += f64::from(v);
                        }
                    }
                    _ => row.zip_mut_with(&x, |s, &v| *s += f64::from(v)),
                }
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

    #[test]
    fn matrix_product_assignment_is_the_nearest_up_to_rounding() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let points = Array2::from_shape_fn((3000, 24), |_| rng.random_range(-3.0f32..3.0));
        let mut cents = Array2::from_shape_fn((40, 24), |_| rng.random_range(-3.0f32..3.0));
        // Equal centroids: the lower index wins.
        let dup = cents.row(7).to_owned();
        cents.row_mut(30).assign(&dup);
        let got = nearest_rows(points.view(), cents.view(), &row_norms(cents.view()));
        for (x, &(c, d)) in points.outer_iter().zip(&got) {
            let exact: Vec<f64> = cents
                .outer_iter()
                .map(|r| {
                    r.iter()
                        .zip(x)
                        .map(|(&a, &b)| f64::from(a - b).powi(2))
                        .sum()
                })
                .collect();
            let best = exact.iter().copied().fold(f64::INFINITY, f64::min);
            assert!(
                exact[c] <= best * (1.0 + 1e-5) + 1e-5,
                "picked {c}: {} vs {best}",
                exact[c]
            );
            assert!((f64::from(d) - exact[c]).abs() <= 1e-4 * exact[c].max(1.0));
            assert_ne!(c, 30, "a tie goes to the lower index");
            assert_eq!(nearest(x, cents.view()), (c, d));
        }
    }
}
