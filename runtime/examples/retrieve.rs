//! A short retrieval run through the runtime: a Llama-3-8B-shaped model's first layers
//! (8 KV heads, GQA 4) prefilled with structured synthetic keys, then decoding steps that
//! select (sinks + top-k + window), gather the selected rows and append the new token, on
//! every device asked for; prints per step the time of each device's select, recall@k of
//! the top-k against the exact float top-k, and whether the devices agree.
//!
//! `cargo run --release -p kvpq-runtime --features sim --example retrieve -- \
//!     examples/pqcache-llama3.toml --folder out/pqcache-llama3 --devices cpu,sim`

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use kvpq_core::spec::{Accelerator, AcceleratorConfig};
use kvpq_core::workload::synthetic::{SyntheticKv, SyntheticSpec};
use kvpq_runtime::backends::cpu::CpuDevice;
use kvpq_runtime::{Device, Index, IndexOptions, ModelShape};
use ndarray::{s, Array2, Array3};

#[derive(Parser)]
struct Args {
    /// Accelerator description (TOML).
    config: PathBuf,
    /// Generated RTL folder the `sim` device opens (default: the RTL rendered in memory).
    #[arg(long)]
    folder: Option<PathBuf>,
    /// Devices to run side by side: cpu, sim.
    #[arg(long, default_value = "cpu", value_delimiter = ',')]
    devices: Vec<String>,
    /// Layers.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Prompt tokens.
    #[arg(long, default_value_t = 8192)]
    tokens: usize,
    /// Decoding steps.
    #[arg(long, default_value_t = 4)]
    steps: usize,
}

const HEADS: usize = 8;

fn device(name: &str, acc: &Accelerator, args: &Args) -> Result<Box<dyn Device>, String> {
    match name {
        "cpu" => Ok(Box::new(CpuDevice::new(acc.clone()))),
        #[cfg(feature = "sim")]
        "sim" => {
            use kvpq_runtime::backends::sim::SimDevice;
            let c = acc.config();
            let shape = ModelShape {
                head_dim: Some(c.pq.head_dim),
                max_tokens: Some((args.tokens + args.steps) as u32),
                gqa_group: Some(c.retrieval.gqa_group),
            };
            let dev = match &args.folder {
                Some(dir) => SimDevice::open(dir, &shape),
                None => SimDevice::new(acc.clone()),
            };
            dev.map(|d| Box::new(d) as Box<dyn Device>)
                .map_err(|e| e.to_string())
        }
        other => Err(format!(
            "unknown device `{other}` (cpu{})",
            if cfg!(feature = "sim") {
                ", sim"
            } else {
                "; sim needs --features sim"
            }
        )),
    }
}

/// Keys `[heads][n][d]` and `steps` steps of queries `[heads * g][d]`.
fn workload(
    n: usize,
    d: usize,
    g: usize,
    steps: usize,
    seed: u64,
) -> (Array3<f32>, Vec<Array2<f32>>) {
    let mut spec = SyntheticSpec::new(n, d, steps, g);
    spec.seed = seed;
    SyntheticKv::layer(&spec, HEADS)
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.config)
        .map_err(|e| format!("{}: {e}", args.config.display()))?;
    let config = AcceleratorConfig::from_toml_str(&text).map_err(|e| e.to_string())?;
    let acc = Accelerator::new(config).map_err(|e| e.to_string())?;
    let (d, g) = (
        acc.config().pq.head_dim as usize,
        acc.config().retrieval.gqa_group as usize,
    );
    let opts = IndexOptions::new(args.layers, HEADS).with_capacity(args.tokens + args.steps);
    let indexes: Vec<(String, Index)> = args
        .devices
        .iter()
        .map(|name| {
            let dev = device(name, &acc, &args)?;
            Index::new(acc.clone(), opts.clone(), vec![dev])
                .map(|i| (name.clone(), i))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, String>>()?;
    println!(
        "retrieval through kvpq-runtime: {} layers x {HEADS} KV heads, D = {d}, GQA {g}, {} prompt tokens, devices {}",
        args.layers,
        args.tokens,
        args.devices.join(", ")
    );
    let mut layers = Vec::new();
    let start = Instant::now();
    for layer in 0..args.layers {
        let (keys, qs) = workload(args.tokens + args.steps, d, g, args.steps, layer as u64);
        let prompt = keys.slice(s![.., ..args.tokens, ..]);
        for (_, index) in &indexes {
            index
                .prefill(layer, prompt, prompt)
                .map_err(|e| e.to_string())?;
        }
        layers.push((keys, qs));
    }
    for (_, index) in &indexes {
        for layer in 0..args.layers {
            index.wait_trained(layer).map_err(|e| e.to_string())?;
        }
    }
    println!(
        "prefill (store + codebook training + encoding): {:.2} s",
        start.elapsed().as_secs_f64()
    );
    println!(
        "\n| step | layer | context | selected per head | {} | recall@k | devices agree |",
        args.devices
            .iter()
            .map(|n| format!("{n} select ms"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!(
        "|---|---|---|---|{}---|---|",
        "---|".repeat(args.devices.len())
    );
    for step in 0..args.steps {
        for (layer, (keys, qs)) in layers.iter().enumerate() {
            let mut times = Vec::new();
            let mut selections = Vec::new();
            for (_, index) in &indexes {
                let t = Instant::now();
                let sel = index
                    .select(layer, qs[step].view())
                    .map_err(|e| e.to_string())?;
                times.push(format!("{:.2}", t.elapsed().as_secs_f64() * 1e3));
                selections.push(sel);
            }
            let first = &selections[0];
            let agree = selections.iter().all(|s| s == first);
            // Gather the selected rows, as the attention kernel would read them.
            let per = first.len_per_head();
            let mut gk = vec![0f32; HEADS * per * d];
            let mut gv = gk.clone();
            indexes[0]
                .1
                .store()
                .gather(first, &mut gk, &mut gv)
                .map_err(|e| e.to_string())?;
            let context = args.tokens + step;
            println!(
                "| {step} | {layer} | {context} | {per} | {} | {:.3} | {} |",
                times.join(" | "),
                first.recall(keys.view(), qs[step].view()),
                if agree { "yes" } else { "NO" }
            );
            if !agree {
                return Err(format!(
                    "step {step} layer {layer}: the devices selected different tokens"
                ));
            }
            let new = keys.slice(s![.., context..context + 1, ..]);
            for (_, index) in &indexes {
                index.append(layer, new, new).map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}
