//! kvpq's side of `scripts/bench-peers.sh`: writes the shared data, and measures kvpq on it
//! (one JSON object per line on stdout), so that the peers' script measures Faiss and
//! PyTorch on exactly the same keys, queries and codebooks.
//!
//! - `data`: one KV head of the structured generator: keys `[N][D]` and GQA-summed queries
//!   `[Q][D]` (what retrieval scores) as `keys.npy` and `queries.npy`, and the group's own
//!   queries `[Q][g][D]` (for the attention mass) as `group_queries.npy`.
//! - `quality`: per (M, bits), trains kvpq's codebooks on the keys, writes them
//!   (`codebook_m<M>_b<bits>.npy`, `[M][2^bits][D/M]`, for Faiss to use the same ones), and
//!   reports the bit-exact engine's recall@k and attention mass, float PQ's recall with the
//!   same codebooks, and the exact top-k's mass.

mod fmax;
mod gpu;

mod accel;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use kvpq_core::golden::attention::GroupScores;
use kvpq_core::golden::reference::{exact_top_k, recall, top_k_f32};
use kvpq_core::golden::{GoldenEngine, PqCodebook, TrainOptions};
use kvpq_core::spec::{
    Accelerator, AcceleratorBuilder, EngineConfig, PqConfig, QuantConfig, ScannerConfig, TopKConfig,
};
use kvpq_core::workload::npy::{read_npy_f32, write_npy_f32};
use kvpq_core::workload::{DecodeSpec, DecodeWorkload};
use ndarray::{s, Array2, Array3, ArrayView2, Axis, Ix2};
use rayon::prelude::*;
use serde_json::json;

/// Tokens before the middle of the context.
const SINKS: usize = 32;

#[derive(Parser)]
#[command(about = "kvpq's side of scripts/bench-peers.sh")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes keys.npy and queries.npy of one generated KV head.
    Data {
        /// Tokens N.
        #[arg(long, default_value_t = 32_768)]
        tokens: usize,
        /// Queries Q (decoding steps).
        #[arg(long, default_value_t = 64)]
        queries: usize,
        /// Generator seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Recall and mass of the bit-exact engine per (M, bits) on DIR's keys and queries.
    Quality {
        /// Folder with keys.npy `[N][D]` and queries.npy `[Q][D]` (also where codebooks go).
        #[arg(long)]
        data: PathBuf,
        /// (M, bits) pairs, e.g. `2:6,8:8`.
        #[arg(long, value_delimiter = ',', default_value = "2:6,4:8,8:8,16:8,32:4")]
        grid: Vec<String>,
        /// k as a fraction of N.
        #[arg(long, default_value_t = 0.05)]
        k_frac: f64,
    },
    /// Host speed per core: the cpu device (one thread) at the given contexts, per (M, bits),
    /// with the codebooks `quality` wrote; one query, k = 5 % of N.
    Speed {
        /// Folder of `data` and `quality` (keys.npy with at least the largest N tokens).
        #[arg(long)]
        data: PathBuf,
        /// (M, bits) pairs.
        #[arg(long, value_delimiter = ',', default_value = "2:6,16:8,32:4")]
        grid: Vec<String>,
        /// Contexts N.
        #[arg(long, value_delimiter = ',', default_value = "32768,131072")]
        tokens: Vec<usize>,
        /// Timed searches per point (the median is reported).
        #[arg(long, default_value_t = 15)]
        reps: usize,
    },
    /// Training: kvpq's k-means on a sample of the keys (written as `train_points.npy`, so
    /// Faiss trains on the same points) for a fixed number of iterations, per (M, bits):
    /// seconds and the recall@k of the resulting codebooks on the integer path.
    Train {
        /// Folder of `data`.
        #[arg(long)]
        data: PathBuf,
        /// (M, bits) pairs.
        #[arg(long, value_delimiter = ',', default_value = "2:6,16:8,32:4")]
        grid: Vec<String>,
        /// Training points per centroid (the runtime's default is 64; Faiss caps at 256).
        #[arg(long, default_value_t = 64)]
        points_per_centroid: usize,
        /// Lloyd iterations (no early stop, on both sides).
        #[arg(long, default_value_t = 10)]
        iters: usize,
    },
    /// The runtime's `gpu` device on one layer (8 KV heads) per context, and the data for
    /// PyTorch to do the same scoring and top-k (`scripts/peers.py gpu`).
    Gpu(gpu::GpuArgs),
    /// The ECP5 Fmax recorded for a description's current RTL (its `hwgen build` folder).
    Fmax(fmax::FmaxArgs),
    /// The accelerator's cycles per query and per layer call (Verilator co-simulation or the
    /// cycle model), projected at the recorded ECP5 Fmax and on a U55C.
    Accel(accel::AccelArgs),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Gpu(a) => gpu::run(&a),
        Command::Fmax(a) => fmax::run(&a),
        Command::Train {
            data,
            grid,
            points_per_centroid,
            iters,
        } => train(&data, &grid, points_per_centroid, iters),
        Command::Speed {
            data,
            grid,
            tokens,
            reps,
        } => speed(&data, &grid, &tokens, reps),
        Command::Data {
            tokens,
            queries,
            seed,
            out,
        } => data(tokens, queries, seed, &out),
        Command::Quality { data, grid, k_frac } => quality(&data, &grid, k_frac),
        Command::Accel(a) => accel::run(&a),
    }
}

fn data(tokens: usize, queries: usize, seed: u64, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut spec = DecodeSpec::llama3_8b(tokens, queries);
    spec.seed = seed;
    let layer = DecodeWorkload::layer(&spec, 0);
    // The middle of the context: sinks are always attended, never retrieved (the default
    // policy keeps 32).
    let keys = layer.keys.slice(s![0, SINKS..tokens, ..]).to_owned();
    // Retrieval scores the sum of a KV head's GQA group (docs/design.md section 3); the
    // attention mass is the mean over the group's own queries.
    let g = spec.gqa_group;
    let group = layer.queries.slice(s![..queries, ..g, ..]).to_owned();
    let q = group.sum_axis(Axis(1));
    write_npy_f32(&out.join("keys.npy"), keys.view())?;
    write_npy_f32(&out.join("queries.npy"), q.view())?;
    write_npy_f32(&out.join("group_queries.npy"), group.view())?;
    Ok(())
}

/// `M:bits` of a grid entry.
fn shape(pair: &str) -> Result<(u32, u32)> {
    pair.split_once(':')
        .and_then(|(m, b)| Some((m.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
        .with_context(|| format!("grid entry {pair}: expected M:bits"))
}

fn speed(dir: &Path, grid: &[String], tokens: &[usize], reps: usize) -> Result<()> {
    use kvpq_runtime::backends::cpu::CpuDevice;
    use kvpq_runtime::{Device, HeadQuery};
    let keys = read2(&dir.join("keys.npy"))?;
    let queries = read2(&dir.join("queries.npy"))?;
    let (total, d) = keys.dim();
    for pair in grid {
        let (m, bits) = shape(pair)?;
        let path = dir.join(format!("codebook_m{m}_b{bits}.npy"));
        let centroids = read_npy_f32(&path)?
            .into_dimensionality::<ndarray::Ix3>()
            .with_context(|| {
                format!(
                    "{}: expected [M][K][D/M] (run `quality` first)",
                    path.display()
                )
            })?;
        let cb = PqCodebook { centroids };
        for &n in tokens {
            if n > total {
                bail!("{n} tokens asked for, keys.npy holds {total}");
            }
            let k = n / 20;
            let acc = accelerator(d, m, bits, n, k)?;
            let codes = cb.encode(keys.slice(s![..n, ..]))?;
            let beats = kvpq_core::golden::packing::pack(&acc.derived().layout, codes.view())?;
            let quant = cb.quantize(acc.config().quant.centroid_bits)?;
            let engine = GoldenEngine::new(&acc, quant.clone())?;
            let mut dev = CpuDevice::with_threads(acc.clone(), 1)?;
            dev.load_codebook(0, quant)?;
            let q = engine.quantize_query(queries.row(0).as_slice().context("contiguous")?)?;
            let search = HeadQuery {
                slot: 0,
                query: &q.values,
                beats: &beats,
                n_tokens: n,
                k,
                stream: None,
            };
            let median = median_seconds(reps, || {
                dev.search(&[search])?;
                Ok(())
            })?;
            println!(
                "{}",
                json!({
                    "section": "speed", "peer": "kvpq cpu", "m": m, "bits": bits, "tokens": n,
                    "k": k, "seconds": median, "tokens_per_s": n as f64 / median,
                })
            );
        }
    }
    Ok(())
}

fn train(dir: &Path, grid: &[String], per_centroid: usize, iters: usize) -> Result<()> {
    let keys = read2(&dir.join("keys.npy"))?;
    let queries = read2(&dir.join("queries.npy"))?;
    let (n, d) = keys.dim();
    let k = ((n as f64 * 0.05) as usize).max(1);
    let exact: Vec<Vec<u32>> = queries
        .outer_iter()
        .into_par_iter()
        .map(|q| exact_top_k(keys.view(), q, k))
        .collect();
    for pair in grid {
        let (m, bits) = shape(pair)?;
        // Every p-th key: a deterministic sample both sides train on.
        let points = (per_centroid << bits).min(n);
        let step = n / points;
        let sample = keys.slice(s![..step * points;step, ..]).to_owned();
        write_npy_f32(
            &dir.join(format!("train_points_m{m}_b{bits}.npy")),
            sample.view(),
        )?;
        let opts = TrainOptions {
            max_iters: iters,
            tolerance: 0.0,
            seed: 0,
        };
        let t = std::time::Instant::now();
        let cb = PqCodebook::train(sample.view(), m as usize, bits, &opts, None)?;
        let seconds = t.elapsed().as_secs_f64();
        let acc = accelerator(d, m, bits, n, k)?;
        let engine = GoldenEngine::new(&acc, cb.quantize(acc.config().quant.centroid_bits)?)?;
        let beats = kvpq_core::golden::packing::pack(
            &acc.derived().layout,
            cb.encode(keys.view())?.view(),
        )?;
        let recalls: Vec<f64> = queries
            .outer_iter()
            .into_par_iter()
            .zip(&exact)
            .map(|(q, e)| -> Result<f64> {
                let qq = engine.quantize_query(q.as_slice().context("contiguous query")?)?;
                let ids: Vec<u32> = engine
                    .run(&qq.values, &beats, n, k)?
                    .hits
                    .iter()
                    .map(|h| h.index)
                    .collect();
                Ok(recall(&ids, e))
            })
            .collect::<Result<_>>()?;
        println!(
            "{}",
            json!({
                "section": "train", "peer": "kvpq k-means", "m": m, "bits": bits,
                "points": sample.nrows(), "iters": iters, "threads": rayon::current_num_threads(),
                "seconds": seconds, "recall": mean(recalls.into_iter()),
            })
        );
    }
    Ok(())
}

/// Median wall-clock seconds of `reps` calls of `f`, after one warm-up call.
fn median_seconds(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut t = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let start = std::time::Instant::now();
        f()?;
        t.push(start.elapsed().as_secs_f64());
    }
    t.sort_by(f64::total_cmp);
    Ok(t[t.len() / 2])
}

fn read2(path: &Path) -> Result<Array2<f32>> {
    read_npy_f32(path)?
        .into_dimensionality::<Ix2>()
        .with_context(|| format!("{}: expected a 2-D array", path.display()))
}

/// An accelerator of the (M, bits) shape for N tokens and k results.
fn accelerator(d: usize, m: u32, bits: u32, n: usize, k: usize) -> Result<Accelerator> {
    let beat = 512;
    AcceleratorBuilder::new("peers", PqConfig::new(d as u32, m, bits))
        .quant(QuantConfig::new(8, 8, 16))
        .scanner(ScannerConfig::new((beat / (m * bits)).max(1)))
        .topk(TopKConfig::select(k.max(n.next_power_of_two() / 10) as u32))
        .engine(EngineConfig::new(n.next_power_of_two() as u32).with_beat_bits(beat))
        .build()
        .with_context(|| format!("an accelerator for M = {m}, bits = {bits}, N = {n}, k = {k}"))
}

fn quality(dir: &Path, grid: &[String], k_frac: f64) -> Result<()> {
    let keys = read2(&dir.join("keys.npy"))?;
    let queries = read2(&dir.join("queries.npy"))?;
    // A user's pair has no group: each query is its own head.
    let group_path = dir.join("group_queries.npy");
    let group = if group_path.exists() {
        read_npy_f32(&group_path)?
            .into_dimensionality::<ndarray::Ix3>()
            .context("group_queries.npy: expected [Q][g][D]")?
    } else {
        queries.clone().insert_axis(Axis(1))
    };
    let (n, d) = keys.dim();
    if queries.ncols() != d {
        bail!("queries have {} dims, keys {d}", queries.ncols());
    }
    let k = ((n as f64 * k_frac) as usize).max(1);
    let exact: Vec<Vec<u32>> = queries
        .outer_iter()
        .into_par_iter()
        .map(|q| exact_top_k(keys.view(), q, k))
        .collect();
    let exact_mass = mean(
        group
            .outer_iter()
            .zip(&exact)
            .map(|(g, e)| mass(&keys, g, e)),
    );
    for pair in grid {
        let (m, bits) = shape(pair)?;
        let acc = accelerator(d, m, bits, n, k)?;
        let cb = PqCodebook::train(
            keys.view(),
            m as usize,
            bits,
            &TrainOptions::default(),
            None,
        )?;
        write_npy_f32(
            &dir.join(format!("codebook_m{m}_b{bits}.npy")),
            cb.centroids.view(),
        )?;
        let quant = cb.quantize(acc.config().quant.centroid_bits)?;
        let codes = cb.encode(keys.view())?;
        let engine = GoldenEngine::new(&acc, quant)?;
        let beats = kvpq_core::golden::packing::pack(&acc.derived().layout, codes.view())?;
        let rows: Vec<(f64, f64, f64)> = queries
            .outer_iter()
            .into_par_iter()
            .zip(group.outer_iter().into_par_iter())
            .zip(&exact)
            .map(|((q, g), e)| -> Result<(f64, f64, f64)> {
                let qq = engine.quantize_query(q.as_slice().context("contiguous query")?)?;
                let hits = engine.run(&qq.values, &beats, n, k)?.hits;
                let ids: Vec<u32> = hits.iter().map(|h| h.index).collect();
                let float = top_k_f32(&float_pq_scores(&cb.centroids, &codes, q.view()), k);
                Ok((recall(&ids, e), mass(&keys, g, &ids), recall(&float, e)))
            })
            .collect::<Result<_>>()?;
        println!(
            "{}",
            json!({
                "section": "quality", "m": m, "bits": bits, "tokens": n, "k": k,
                "queries": queries.nrows(),
                "recall": mean(rows.iter().map(|r| r.0)),
                "mass": mean(rows.iter().map(|r| r.1)),
                "float_pq_recall": mean(rows.iter().map(|r| r.2)),
                "exact_mass": exact_mass,
            })
        );
    }
    Ok(())
}

/// Float ADC scores with `centroids`: what PQ gives without fixed point.
fn float_pq_scores(
    centroids: &Array3<f32>,
    codes: &Array2<u8>,
    q: ndarray::ArrayView1<f32>,
) -> Vec<f32> {
    let (m, kc, sub) = centroids.dim();
    let table: Vec<f32> = (0..m * kc)
        .map(|e| {
            let (mi, c) = (e / kc, e % kc);
            let cent = centroids.index_axis(Axis(0), mi);
            let cent = cent.index_axis(Axis(0), c);
            q.slice(s![mi * sub..(mi + 1) * sub]).dot(&cent)
        })
        .collect();
    codes
        .outer_iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .map(|(mi, &c)| table[mi * kc + c as usize])
                .sum()
        })
        .collect()
}

/// Softmax mass (scale 1/sqrt(D)) of `ids`, mean over the group's query heads `[g][D]`.
fn mass(keys: &Array2<f32>, group: ArrayView2<f32>, ids: &[u32]) -> f64 {
    GroupScores::new(group, keys.view()).mass(ids)
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    s / n.max(1) as f64
}
