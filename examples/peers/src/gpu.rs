//! `peers gpu`: the runtime's `gpu` device on one Llama-3-8B layer (8 KV heads of the
//! structured generator, M = 2, b = 6 by default, k = 5 % of N) at each context, and the data
//! for PyTorch to do the same PQ scoring and `torch.topk` (`scripts/peers.py gpu`).
//!
//! Each head's codebook is trained on its own keys (64 points per centroid) and its keys are
//! encoded; the query is the sum of the head's GQA group at the first decoding step. Written
//! to `DIR`: `codes.npy` `[H][N][M]`, `centroids.npy` `[H][M][K][D/M]`, `queries.npy` `[H][D]`
//! and, per context, kvpq's hits `hits_n<N>.npy` `[H][k]` (token ids, float32, exact below
//! 2^24) so the peer can report how far its float selection agrees with kvpq's.
//!
//! Timed: `select_into` (the decoding loop's path: the selection stays on the GPU), to the
//! stream's completion, and `search` (hits copied back to the host), medians of `reps` calls.
//! Codes are resident on the GPU, as a decoding loop keeps them. Every context's hits are
//! checked against the `cpu` device's first.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kvpq_core::golden::packing::pack;
use kvpq_core::golden::{PqCodebook, TrainOptions};
use kvpq_core::workload::npy::write_npy_f32;
use kvpq_core::workload::{DecodeSpec, DecodeWorkload};
use kvpq_runtime::backends::cpu::CpuDevice;
use kvpq_runtime::backends::gpu::GpuDevice;
use kvpq_runtime::cuda::{DeviceSelection, Gpu};
use kvpq_runtime::{Device, HeadQuery, Split};
use ndarray::{s, Array2, Array3, Array4, Axis};
use rayon::prelude::*;
use serde_json::json;

use crate::{accelerator, median_seconds, SINKS};

/// Arguments of `peers gpu`.
#[derive(clap::Args)]
pub struct GpuArgs {
    /// Output folder for the data the peer reads.
    #[arg(long)]
    pub out: PathBuf,
    /// Contexts N (tokens of the middle of the context each head scans).
    #[arg(long, value_delimiter = ',', default_value = "32768,131072,524288")]
    pub tokens: Vec<usize>,
    /// Subspaces M.
    #[arg(long, default_value_t = 2)]
    pub m: u32,
    /// Code bits.
    #[arg(long, default_value_t = 6)]
    pub bits: u32,
    /// Timed calls per context (the median is reported).
    #[arg(long, default_value_t = 50)]
    pub reps: usize,
    /// CUDA device ordinal.
    #[arg(long, default_value_t = 0)]
    pub ordinal: usize,
}

/// One head's data: its float codebook and query, and its codes.
struct Head {
    codebook: PqCodebook,
    query: Vec<f32>,
    codes: Array2<u8>,
}

/// Times the `gpu` device per layer and writes the peer's data; one JSON row per context.
pub fn run(args: &GpuArgs) -> Result<()> {
    let gpu = Gpu::open(args.ordinal).context("peers gpu needs a CUDA GPU")?;
    let Some(&max_n) = args.tokens.iter().max() else {
        bail!("--tokens is empty");
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let heads = layer(max_n, args.m, args.bits)?;
    write_peer_data(&args.out, &heads)?;
    let h = heads.len();
    for &n in &args.tokens {
        let k = n / 20;
        let acc = accelerator(heads[0].query.len(), args.m, args.bits, n, k)?;
        let mut dev = GpuDevice::on(gpu.clone(), acc.clone())?;
        let mut cpu = CpuDevice::new(acc.clone());
        let mut queries = Vec::with_capacity(h);
        let mut streams = Vec::with_capacity(h);
        for (slot, head) in heads.iter().enumerate() {
            let quant = head.codebook.quantize(acc.config().quant.centroid_bits)?;
            let engine = kvpq_core::golden::GoldenEngine::new(&acc, quant.clone())?;
            queries.push(engine.quantize_query(&head.query)?.values);
            streams.push(pack(&acc.derived().layout, head.codes.slice(s![..n, ..]))?);
            dev.load_codebook(slot, quant.clone())?;
            cpu.load_codebook(slot, quant)?;
        }
        let searches: Vec<HeadQuery> = (0..h)
            .map(|slot| HeadQuery {
                slot,
                query: &queries[slot],
                beats: &streams[slot],
                n_tokens: n,
                k,
                stream: Some(1),
            })
            .collect();
        let hits = dev.search(&searches)?;
        if hits != cpu.search(&searches)? {
            bail!("the gpu and cpu devices disagree at N = {n}: a bug, not a tolerance");
        }
        let ids = Array2::from_shape_fn((h, k), |(i, j)| hits[i].hits[j].index as f32);
        write_npy_f32(&args.out.join(format!("hits_n{n}.npy")), ids.view())?;
        let split = Split {
            tokens: n + SINKS,
            sink: SINKS,
            local: 0,
            middle: n,
            topk: k,
        };
        let mut sel = DeviceSelection::new(&gpu, h, SINKS + k)?;
        let selected = median_seconds(args.reps, || {
            dev.engine().select_into(&searches, &split, &mut sel)?;
            Ok(gpu.synchronize()?)
        })?;
        let searched = median_seconds(args.reps, || {
            dev.search(&searches)?;
            Ok(())
        })?;
        println!(
            "{}",
            json!({
                "section": "gpu", "peer": "kvpq gpu", "device": gpu.name(), "heads": h,
                "m": args.m, "bits": args.bits, "tokens": n, "k": k,
                "seconds": selected, "search_seconds": searched,
            })
        );
    }
    Ok(())
}

/// Layer 0 of the generator at `n` middle tokens: each KV head's codebook (trained on a
/// sample of its keys), GQA-summed first query and codes.
fn layer(n: usize, m: u32, bits: u32) -> Result<Vec<Head>> {
    let spec = DecodeSpec::llama3_8b(n + SINKS, 1);
    let data = DecodeWorkload::layer(&spec, 0);
    let g = spec.gqa_group;
    (0..spec.kv_heads)
        .into_par_iter()
        .map(|h| {
            let keys = data.keys.slice(s![h, SINKS..SINKS + n, ..]);
            let points = (64usize << bits).min(n);
            let step = n / points;
            let sample = keys.slice(s![..step * points;step, ..]);
            let codebook =
                PqCodebook::train(sample, m as usize, bits, &TrainOptions::default(), None)?;
            let codes = codebook.encode(keys)?;
            let query = data
                .queries
                .slice(s![0, h * g..(h + 1) * g, ..])
                .sum_axis(Axis(0))
                .to_vec();
            Ok(Head {
                codebook,
                query,
                codes,
            })
        })
        .collect()
}

fn write_peer_data(dir: &Path, heads: &[Head]) -> Result<()> {
    let (n, m) = heads[0].codes.dim();
    let codes = Array3::from_shape_fn((heads.len(), n, m), |(h, t, j)| {
        f32::from(heads[h].codes[(t, j)])
    });
    let (_, kc, sub) = heads[0].codebook.centroids.dim();
    let centroids = Array4::from_shape_fn((heads.len(), m, kc, sub), |(h, j, c, d)| {
        heads[h].codebook.centroids[(j, c, d)]
    });
    let d = heads[0].query.len();
    let queries = Array2::from_shape_fn((heads.len(), d), |(h, i)| heads[h].query[i]);
    write_npy_f32(&dir.join("codes.npy"), codes.view())?;
    write_npy_f32(&dir.join("centroids.npy"), centroids.view())?;
    write_npy_f32(&dir.join("queries.npy"), queries.view())?;
    Ok(())
}
