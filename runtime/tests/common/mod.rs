//! What the GPU tests share.

use std::sync::Arc;

use kvpq_runtime::cuda::Gpu;
use kvpq_runtime::RuntimeError;

/// The GPU, or `None` after checking that its absence is reported as `Unavailable`.
pub fn gpu() -> Option<Arc<Gpu>> {
    match Gpu::open(0) {
        Ok(g) => {
            eprintln!(
                "GPU: {} (sm_{}{})",
                g.name(),
                g.capability().0,
                g.capability().1
            );
            Some(g)
        }
        Err(RuntimeError::Unavailable { backend, reason }) => {
            assert_eq!(backend, "gpu");
            assert!(!reason.is_empty());
            eprintln!("no GPU, skipped: {reason}");
            None
        }
        Err(e) => panic!("opening a GPU must succeed or be Unavailable: {e}"),
    }
}
