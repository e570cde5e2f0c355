//! The `gpu` device (feature `cuda`): a layer's searches on an NVIDIA GPU, bit-exact with
//! the golden model. The fallback for users without an FPGA, and the number the
//! accelerator is compared with (docs/runtime.md).

use std::sync::Arc;

use kvpq_core::golden::{QuantCodebook, QueryResult};
use kvpq_core::spec::Accelerator;

use crate::cuda::{Gpu, GpuRetrieval};
use crate::{Device, HeadQuery, RuntimeError};

/// Retrieval on a GPU behind the [`Device`] trait: results come back to the host. The
/// decoding loop keeps them on the GPU with [`GpuRetrieval::select_into`] instead.
pub struct GpuDevice {
    engine: GpuRetrieval,
}

impl GpuDevice {
    /// Opens GPU `ordinal` and compiles the kernels for `acc`.
    pub fn open(acc: Accelerator, ordinal: usize) -> Result<Self, RuntimeError> {
        Self::on(Gpu::open(ordinal)?, acc)
    }

    /// Runs on an opened GPU (shared with the decoding loop's other kernels).
    pub fn on(gpu: Arc<Gpu>, acc: Accelerator) -> Result<Self, RuntimeError> {
        Ok(Self {
            engine: GpuRetrieval::new(gpu, acc)?,
        })
    }

    /// The retrieval engine, for device-side selections.
    pub fn engine(&mut self) -> &mut GpuRetrieval {
        &mut self.engine
    }
}

impl Device for GpuDevice {
    fn name(&self) -> &'static str {
        "gpu"
    }

    fn load_codebook(&mut self, slot: usize, codebook: QuantCodebook) -> Result<(), RuntimeError> {
        self.engine.load_codebook(slot, codebook)
    }

    fn search(&mut self, queries: &[HeadQuery<'_>]) -> Result<Vec<QueryResult>, RuntimeError> {
        self.engine.search(queries)
    }
}
