//! Which device selects a layer's tokens, and how its selection reaches the GPU: the `gpu`
//! device writes it there directly; `cpu`, `sim` and `xrt` select on the host (bit-exact with
//! each other and with `gpu`) and the ids are copied up. Also the FPGA row: a layer call's
//! time projected from the accelerator's cycle model.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use kvpq_core::spec::Accelerator;
use kvpq_runtime::backends::cpu::CpuDevice;
use kvpq_runtime::cuda::{DeviceSelection, Gpu, GpuRetrieval};
use kvpq_runtime::{Device, Index, IndexOptions};
use ndarray::ArrayView2;

/// The retrieval device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// The integer path on the host's cores.
    Cpu,
    /// LUT build, scan and exact top-k on the GPU; the selection stays there.
    Gpu,
    /// The Verilator model of the accelerator's RTL (feature `sim`; slow: for checks).
    Sim,
    /// An Alveo card through XRT, from a generated and built folder (`--folder`).
    Xrt,
}

/// An index served by the chosen device.
pub struct Retrieval {
    pub index: Index,
    gpu_engine: Option<GpuRetrieval>,
    backend: Backend,
}

impl Retrieval {
    /// The index of `layers` x `kv_heads` with room for `capacity` tokens per layer.
    pub fn new(
        backend: Backend,
        acc: &Accelerator,
        gpu: &Arc<Gpu>,
        opts: IndexOptions,
        folder: Option<&PathBuf>,
    ) -> Result<Self> {
        let device: Box<dyn Device> = match backend {
            // The gpu backend never calls the index's device: a cpu one stands in.
            Backend::Cpu | Backend::Gpu => Box::new(CpuDevice::new(acc.clone())),
            Backend::Sim => sim_device(acc)?,
            Backend::Xrt => {
                let Some(folder) = folder else {
                    bail!("--backend xrt needs --folder (a generated Alveo folder with its xclbin)")
                };
                let shape = kvpq_runtime::ModelShape {
                    head_dim: Some(acc.config().pq.head_dim),
                    max_tokens: None,
                    gqa_group: Some(acc.config().retrieval.gqa_group),
                };
                Box::new(
                    kvpq_runtime::backends::xrt::XrtDevice::open(
                        folder,
                        &shape,
                        &kvpq_runtime::backends::xrt::XrtOptions::default(),
                    )
                    .context("opening the xrt device")?,
                )
            }
        };
        let gpu_engine = match backend {
            Backend::Gpu => Some(GpuRetrieval::new(gpu.clone(), acc.clone())?),
            _ => None,
        };
        Ok(Self {
            index: Index::new(acc.clone(), opts, vec![device])?,
            gpu_engine,
            backend,
        })
    }

    /// Selects `layer`'s tokens for `queries` (`[q_heads][D]`) into `out` on the GPU.
    pub fn select(
        &mut self,
        gpu: &Gpu,
        layer: usize,
        queries: ArrayView2<f32>,
        out: &mut DeviceSelection,
    ) -> Result<()> {
        match (&mut self.gpu_engine, self.backend) {
            (Some(engine), _) => self
                .index
                .with_searches(layer, queries, None, |s| engine.select_layer(s, out))??,
            _ => out.upload(gpu, &self.index.select(layer, queries)?)?,
        }
        Ok(())
    }
}

#[cfg(feature = "sim")]
fn sim_device(acc: &Accelerator) -> Result<Box<dyn Device>> {
    Ok(Box::new(
        kvpq_runtime::backends::sim::SimDevice::new(acc.clone())
            .context("building the Verilator model")?,
    ))
}

#[cfg(not(feature = "sim"))]
fn sim_device(_: &Accelerator) -> Result<Box<dyn Device>> {
    bail!("--backend sim needs the `sim` feature: cargo run --release -p kvpq-decode-loop --features sim")
}

/// A layer call (one search per KV head over `middle` tokens, `topk` results each) on the
/// accelerator's Alveo kernel, in microseconds at the description's clock: the cycle model
/// of `kvpq_krnl` (co-simulated in Verilator within 0.3 % at 128K tokens), not a measurement.
pub fn projected_fpga_us(acc: &Accelerator, middle: usize, topk: usize, kv_heads: usize) -> f64 {
    let c = acc.config();
    let cycles = acc.derived().cycles.call_cycles(
        middle as u64,
        topk as u64,
        kv_heads as u64,
        u64::from(c.target.engines()),
        u64::from(kvpq_core::interface::alveo::job_words(c.pq.head_dim)),
    );
    cycles as f64 / c.target.clock_mhz
}
