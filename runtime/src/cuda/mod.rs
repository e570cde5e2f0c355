//! NVIDIA GPUs (feature `cuda`): the `gpu` retrieval device and the parts of a decoding
//! loop whose old K/V live in host memory. cudarc loads the CUDA driver and NVRTC at run
//! time and every kernel is compiled for the device it runs on, so the crate builds, and its
//! host parts test, on machines without CUDA.

pub mod attention;
mod context;
pub mod kv;
pub mod retrieval;

pub use attention::Attention;
pub use context::Gpu;
pub use kv::{
    download, upload, zeros, DeviceKv, GatherBuf, HitStats, HostKv, HotCache, KvRows, KvShape,
    KvType,
};
pub use retrieval::{DeviceSelection, GpuRetrieval};
