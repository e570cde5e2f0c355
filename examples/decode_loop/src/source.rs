//! Where a layer's keys, values and queries come from: the structured generator of
//! `kvpq_core::workload::decode`, or `.npy` files of real activations
//! (`DIR/layer_<l>/{keys,values,queries}.npy`, or one set in `DIR` used for every layer).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use kvpq_core::workload::npy::layer_dir;
use kvpq_core::workload::{load_layer, DecodeSpec, DecodeWorkload, LayerData};

/// The data of a run.
pub enum Source {
    /// Generated: prefill `tokens`, `steps` decoding steps.
    Synthetic(DecodeSpec),
    /// Loaded from files: keys and values `[kv_heads][N + T][D]`, queries `[T][q_heads][D]`.
    Npy(PathBuf),
}

impl Source {
    /// Layer `layer`'s keys, values and queries, checked against the model shape.
    pub fn layer(
        &self,
        layer: usize,
        kv_heads: usize,
        q_heads: usize,
        d: usize,
    ) -> Result<LayerData> {
        let data = match self {
            Source::Synthetic(spec) => DecodeWorkload::layer(spec, layer),
            Source::Npy(root) => {
                let dir = layer_dir(root, layer);
                load_layer(&dir).with_context(|| format!("layer {layer} from {}", dir.display()))?
            }
        };
        let (h, _, dim) = data.keys.dim();
        let (_, qh, qd) = data.queries.dim();
        if h != kv_heads || dim != d || qh != q_heads || qd != d {
            bail!(
                "layer {layer}: keys [{h}][..][{dim}] and queries [..][{qh}][{qd}] do not fit \
                 the model ({kv_heads} KV heads, {q_heads} query heads, head_dim {d})"
            );
        }
        Ok(data)
    }
}
