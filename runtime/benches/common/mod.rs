//! What the GPU benches share.

use std::time::Instant;

/// Median microseconds of `reps` calls of `f`, after one warm-up call.
pub fn median_us(mut f: impl FnMut(), reps: usize) -> f64 {
    f(); // warm-up: first-call allocations
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[reps / 2]
}
