//! kvpq in a GPU decoding loop: a Llama-3-8B-shaped attention stack (32 layers, 32 query
//! heads, 8 KV heads, head_dim 128, bf16) whose K/V live in pinned host memory. Prefill of N
//! tokens per layer (the index trains its codebooks in the background), then T decoding
//! steps; per step and layer: append the new token, `select` on the chosen device, gather
//! the selected rows (through the GPU hot-token cache, or zero-copy), sparse attention. Per
//! step it prints the time split, the cache's hit rate and, on the quality layers, recall@k,
//! the attention mass captured and the output's relative error against dense attention.
//!
//! ```sh
//! cargo run --release -p kvpq-decode-loop -- --tokens 131072 --steps 8 --backend gpu
//! ```

mod quality;
mod retrieval;
mod source;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use kvpq_core::spec::Accelerator;
use kvpq_core::workload::DecodeSpec;
use kvpq_runtime::cuda::{
    upload, zeros, Attention, DeviceKv, DeviceSelection, GatherBuf, Gpu, HostKv, HotCache, KvShape,
    KvType,
};
use kvpq_runtime::{DType, IndexOptions};
use ndarray::{s, Array2, Array3, Axis};

use quality::Quality;
use retrieval::{projected_fpga_us, Backend, Retrieval};
use source::Source;

#[derive(Parser, Debug)]
#[command(about = "kvpq retrieval inside a GPU decoding loop over offloaded K/V")]
struct Args {
    /// Accelerator description (PQ shape, widths, retrieval policy).
    #[arg(long, default_value = "examples/pqcache-llama3.toml")]
    config: PathBuf,
    /// Prefill tokens N per layer.
    #[arg(long, default_value_t = 32_768)]
    tokens: usize,
    /// Decoding steps T.
    #[arg(long, default_value_t = 8)]
    steps: usize,
    /// Layers (Llama-3-8B has 32).
    #[arg(long, default_value_t = 32)]
    layers: usize,
    /// Retrieval device.
    #[arg(long, value_enum, default_value = "gpu")]
    backend: Backend,
    /// Generated folder of the `xrt` device.
    #[arg(long)]
    folder: Option<PathBuf>,
    /// Gather zero-copy from host memory at every step instead of through the hot cache.
    #[arg(long)]
    no_cache: bool,
    /// Read layers from .npy files (DIR/layer_<l>/{keys,values,queries}.npy, or one set in
    /// DIR for every layer) instead of the generator.
    #[arg(long)]
    npy: Option<PathBuf>,
    /// Layers whose quality is measured (against dense attention, on the host and GPU).
    #[arg(long, value_delimiter = ',', default_value = "0,15,31")]
    quality_layers: Vec<usize>,
    /// Generator seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// GPU ordinal.
    #[arg(long, default_value_t = 0)]
    gpu: usize,
}

/// Model shape: Llama-3-8B's attention.
const KV_HEADS: usize = 8;

/// One step's measurements, summed over layers (times in microseconds).
#[derive(Debug, Default, Clone)]
struct Step {
    retrieval: f64,
    gather: f64,
    attention: f64,
    hit_rate: f64,
    quality: Vec<Quality>,
    rel_error: Vec<f64>,
    middle: usize,
    topk: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let gpu = Gpu::open(args.gpu).context("the decoding loop runs its attention on a GPU")?;
    let acc = accelerator(&args)?;
    let c = acc.config();
    let (d, group) = (c.pq.head_dim as usize, c.retrieval.gqa_group as usize);
    let q_heads = KV_HEADS * group;
    let (n, t_steps, layers) = (args.tokens, args.steps, args.layers);
    let total = n + t_steps;
    let source = match &args.npy {
        Some(dir) => Source::Npy(dir.clone()),
        None => {
            let mut spec = DecodeSpec::new(n, t_steps, KV_HEADS, group, d);
            spec.seed = args.seed;
            Source::Synthetic(spec)
        }
    };
    let quality_layers: Vec<usize> = args
        .quality_layers
        .iter()
        .copied()
        .filter(|&l| l < layers)
        .collect();
    println!(
        "GPU: {}; {layers} layers x {KV_HEADS} KV heads x {q_heads} query heads, D = {d}, bf16; \
         N = {n}, T = {t_steps}; retrieval: {:?}{}",
        gpu.name(),
        args.backend,
        if args.no_cache {
            ", zero-copy gather"
        } else {
            ", hot cache"
        }
    );

    // Stores: the index's own (training, encoding, host-side selection), the pinned host
    // K/V the GPU reads, and full K/V on the GPU for the quality layers' dense reference.
    let opts = IndexOptions::new(layers, KV_HEADS)
        .with_dtype(DType::Bf16)
        .with_capacity(total);
    let mut retrieval = Retrieval::new(args.backend, &acc, &gpu, opts, args.folder.as_ref())?;
    let shape = |layers| KvShape {
        layers,
        kv_heads: KV_HEADS,
        capacity: total,
        head_dim: d,
        dtype: KvType::Bf16,
    };
    let mut host = HostKv::new(gpu.clone(), shape(layers))?;
    let mut dense = DeviceKv::new(gpu.clone(), shape(quality_layers.len().max(1)))?;
    let mut offloaded = DeviceKv::new(gpu.clone(), shape(1))?;

    // Prefill: every layer's prompt into the stores; the decode tokens and queries kept.
    let started = Instant::now();
    let mut decode_kv: Vec<(Array3<f32>, Array3<f32>)> = Vec::with_capacity(layers);
    let mut queries: Vec<Array3<f32>> = Vec::with_capacity(layers);
    let mut kept = Vec::new();
    for l in 0..layers {
        let data = source.layer(l, KV_HEADS, q_heads, d)?;
        if data.prefill_tokens() < n || data.steps() < t_steps {
            bail!(
                "layer {l}: the data holds {} prefill tokens and {} steps, fewer than asked",
                data.prefill_tokens(),
                data.steps()
            );
        }
        let (pk, pv) = (
            data.keys.slice(s![.., ..n, ..]),
            data.values.slice(s![.., ..n, ..]),
        );
        retrieval.index.prefill(l, pk, pv)?;
        let (pk, pv) = (pk.as_standard_layout(), pv.as_standard_layout());
        let (pk, pv) = (
            pk.as_slice().expect("standard"),
            pv.as_slice().expect("standard"),
        );
        host.write_f32(l, 0, pk, pv)?;
        if let Some(slot) = quality_layers.iter().position(|&q| q == l) {
            dense.write_f32(slot, 0, pk, pv)?;
        }
        decode_kv.push((
            data.keys.slice(s![.., n..n + t_steps, ..]).to_owned(),
            data.values.slice(s![.., n..n + t_steps, ..]).to_owned(),
        ));
        queries.push(data.queries.slice(s![..t_steps, .., ..]).to_owned());
        if quality_layers.contains(&l) {
            kept.push((l, data.keys));
        }
    }
    for l in 0..layers {
        retrieval.index.wait_trained(l)?;
    }
    println!(
        "prefill of {layers} layers (generate, store, train, encode): {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let per_head_max = acc.policy_split(total as u32);
    let max_per_head = (per_head_max.sink + per_head_max.local + per_head_max.topk) as usize + 64;
    let mut sel = DeviceSelection::new(&gpu, KV_HEADS, max_per_head)?;
    let mut gathered = GatherBuf::new(&gpu, KV_HEADS, max_per_head, d, KvType::Bf16)?;
    let mut cache = HotCache::new(&host)?;
    let mut attention = Attention::new(gpu.clone(), q_heads, KV_HEADS, d)?;
    let mut out = zeros::<f32>(&gpu, q_heads * d)?;
    let mut out_dense = zeros::<f32>(&gpu, q_heads * d)?;

    println!();
    println!("| step | retrieval (us/layer) | gather (us/layer) | attention (us/layer) | layer-step (us) | {layers}-layer step (ms) | hit rate | recall@k | mass | mass, exact top-k | rel. error |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut steps = Vec::new();
    let mut baselines = (Vec::new(), Vec::new());
    for t in 0..t_steps {
        let tokens = n + t + 1;
        let mut step = Step::default();
        for l in 0..layers {
            // The step's token joins the context first (its query attends to itself).
            let (k_new, v_new) = (&decode_kv[l].0, &decode_kv[l].1);
            let k1 = k_new.slice(s![.., t..t + 1, ..]);
            let v1 = v_new.slice(s![.., t..t + 1, ..]);
            retrieval.index.append(l, k1, v1)?;
            let (k1, v1) = (k1.as_standard_layout(), v1.as_standard_layout());
            let (k1, v1) = (
                k1.as_slice().expect("standard"),
                v1.as_slice().expect("standard"),
            );
            host.write_f32(l, n + t, k1, v1)?;
            let slot = quality_layers.iter().position(|&q| q == l);
            if let Some(slot) = slot {
                dense.write_f32(slot, n + t, k1, v1)?;
            }
            let q: Array2<f32> = queries[l].index_axis(Axis(0), t).to_owned();
            let q_dev = upload(&gpu, q.as_slice().expect("owned"))?;
            gpu.synchronize()?;

            let t0 = Instant::now();
            retrieval.select(&gpu, l, q.view(), &mut sel)?;
            gpu.synchronize()?;
            let t1 = Instant::now();
            let rows = if args.no_cache {
                host.gather(l, &sel, &mut gathered)?;
                gathered.rows()
            } else {
                cache.gather(&host, l, &sel)?
            };
            gpu.synchronize()?;
            let t2 = Instant::now();
            attention.run(&q_dev, &rows, &mut out)?;
            gpu.synchronize()?;
            let t3 = Instant::now();
            step.retrieval += (t1 - t0).as_secs_f64() * 1e6;
            step.gather += (t2 - t1).as_secs_f64() * 1e6;
            step.attention += (t3 - t2).as_secs_f64() * 1e6;
            step.middle = sel.split.middle;
            step.topk = sel.split.topk;

            if let Some(slot) = slot {
                let (_, keys) = kept.iter().find(|(kl, _)| *kl == l).expect("kept");
                let ids = sel.to_host(&gpu)?;
                step.quality
                    .push(quality::measure(keys.view(), q.view(), &ids, &sel.split));
                let full = dense.rows(slot, tokens)?;
                let td = Instant::now();
                attention.run(&q_dev, &full, &mut out_dense)?;
                gpu.synchronize()?;
                baselines.0.push(td.elapsed().as_secs_f64() * 1e6);
                let sparse = kvpq_runtime::cuda::download(&gpu, &out)?;
                let reference = kvpq_runtime::cuda::download(&gpu, &out_dense)?;
                step.rel_error
                    .push(quality::relative_error(&sparse, &reference));
            }
        }
        if !args.no_cache {
            step.hit_rate = cache.take_stats()?.rate();
        }
        // The offloaded dense baseline, once per step: copy layer 0's K/V over, attend.
        let q: Array2<f32> = queries[0].index_axis(Axis(0), t).to_owned();
        let q_dev = upload(&gpu, q.as_slice().expect("owned"))?;
        gpu.synchronize()?;
        let tb = Instant::now();
        offloaded.copy_from_host(0, &host, 0, tokens)?;
        attention.run(&q_dev, &offloaded.rows(0, tokens)?, &mut out_dense)?;
        gpu.synchronize()?;
        baselines.1.push(tb.elapsed().as_secs_f64() * 1e6);

        let lf = layers as f64;
        let mean = |v: &[f64]| {
            if v.is_empty() {
                f64::NAN
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        };
        let layer_step = (step.retrieval + step.gather + step.attention) / lf;
        println!(
            "| {t} | {:.1} | {:.1} | {:.1} | {layer_step:.1} | {:.2} | {} | {:.3} | {:.3} | {:.3} | {:.4} |",
            step.retrieval / lf,
            step.gather / lf,
            step.attention / lf,
            (step.retrieval + step.gather + step.attention) / 1e3,
            if args.no_cache { "-".to_string() } else { format!("{:.3}", step.hit_rate) },
            mean(&step.quality.iter().map(|q| q.recall).collect::<Vec<_>>()),
            mean(&step.quality.iter().map(|q| q.mass).collect::<Vec<_>>()),
            mean(&step.quality.iter().map(|q| q.oracle_mass).collect::<Vec<_>>()),
            mean(&step.rel_error),
        );
        steps.push(step);
    }
    summary(&args, &acc, &steps, &baselines);
    Ok(())
}

/// The description, widened for contexts past its `engine.max_tokens` when the device is
/// software (cpu, gpu): the hardware limits of an accelerator do not bind them.
fn accelerator(args: &Args) -> Result<Accelerator> {
    let acc = Accelerator::from_toml_file(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let total = args.tokens + args.steps;
    if total as u64 <= u64::from(acc.config().engine.max_tokens)
        || matches!(args.backend, Backend::Sim | Backend::Xrt)
    {
        return Ok(acc);
    }
    let mut cfg = acc.config().clone();
    cfg.engine.max_tokens = (total as u32).next_power_of_two();
    cfg.topk.k_max = cfg
        .topk
        .k_max
        .max(acc.policy_k(cfg.engine.max_tokens).max(1));
    Accelerator::new(cfg).context("widening the description for a longer context")
}

/// Medians over the steps after the first (the first fills the cache), and the FPGA row.
fn summary(args: &Args, acc: &Accelerator, steps: &[Step], baselines: &(Vec<f64>, Vec<f64>)) {
    let median = |mut v: Vec<f64>| {
        v.retain(|x| x.is_finite());
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let warm: Vec<&Step> = steps.iter().skip(usize::from(steps.len() > 1)).collect();
    let lf = args.layers as f64;
    let m = |f: &dyn Fn(&Step) -> f64| median(warm.iter().map(|s| f(s)).collect());
    let (ret, gat, att) = (
        m(&|s| s.retrieval / lf),
        m(&|s| s.gather / lf),
        m(&|s| s.attention / lf),
    );
    println!();
    println!(
        "medians over steps 1..{} (step 0 fills the cache):",
        steps.len()
    );
    println!("| path | retrieval (us) | gather (us) | attention (us) | layer-step (us) | {}-layer step (ms) |", args.layers);
    println!("|---|---|---|---|---|---|");
    println!(
        "| {:?} retrieval{} | {ret:.1} | {gat:.1} | {att:.1} | {:.1} | {:.2} |",
        args.backend,
        if args.no_cache {
            ", zero-copy gather"
        } else {
            ", hot cache"
        },
        ret + gat + att,
        (ret + gat + att) * lf / 1e3
    );
    if let Some(last) = steps.last() {
        let fpga = projected_fpga_us(acc, last.middle, last.topk, KV_HEADS);
        println!(
            "| FPGA retrieval, projected (cycle model of kvpq_krnl at {} MHz, {} engines; not measured) | {fpga:.1} | {gat:.1} | {att:.1} | {:.1} | {:.2} |",
            acc.config().target.clock_mhz,
            acc.config().target.engines(),
            fpga + gat + att,
            (fpga + gat + att) * lf / 1e3
        );
    }
    println!(
        "| dense attention, K/V on the GPU | - | - | {:.1} | {:.1} | {:.2} |",
        median(baselines.0.clone()),
        median(baselines.0.clone()),
        median(baselines.0.clone()) * lf / 1e3
    );
    println!(
        "| dense attention, K/V offloaded (copy the layer, attend) | - | - | - | {:.1} | {:.2} |",
        median(baselines.1.clone()),
        median(baselines.1.clone()) * lf / 1e3
    );
    let q: Vec<&Quality> = warm.iter().flat_map(|s| s.quality.iter()).collect();
    let e: Vec<f64> = warm
        .iter()
        .flat_map(|s| s.rel_error.iter().copied())
        .collect();
    if !q.is_empty() {
        let measured: Vec<usize> = args
            .quality_layers
            .iter()
            .copied()
            .filter(|&l| l < args.layers)
            .collect();
        let hit_rate = if args.no_cache {
            "-".to_string()
        } else {
            format!("{:.3}", m(&|s| s.hit_rate))
        };
        println!(
            "quality (layers {measured:?}): recall@k {:.3}, attention mass {:.3} (exact top-k: {:.3}), relative error {:.4}; hit rate {hit_rate}",
            median(q.iter().map(|x| x.recall).collect()),
            median(q.iter().map(|x| x.mass).collect()),
            median(q.iter().map(|x| x.oracle_mass).collect()),
            median(e),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Args {
        Args::parse_from(line.split_whitespace())
    }

    #[test]
    fn software_devices_take_contexts_past_the_description() {
        let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../pqcache-llama3.toml");
        let acc = accelerator(&args(&format!(
            "x --config {config} --tokens 524288 --backend gpu"
        )))
        .unwrap();
        let c = acc.config();
        assert!(c.engine.max_tokens as usize >= 524_288 + 8);
        let split = acc.policy_split(524_296);
        assert!(split.topk <= c.topk.k_max && split.middle <= c.engine.max_tokens);
        // Hardware keeps its limits: the folder's description is what the device holds.
        let acc = accelerator(&args(&format!(
            "x --config {config} --tokens 524288 --backend sim"
        )))
        .unwrap();
        assert_eq!(acc.config().engine.max_tokens, 131_072);
    }
}
