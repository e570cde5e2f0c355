//! The host KV store: every layer's keys and values as `[head][token][dim]` rows in one
//! allocation per layer and tensor, sized once for the layer's capacity so the memory never
//! moves (a caller may pin it, e.g. `cudaHostRegister` over [`KvStore::layer_ptr`]), and
//! `gather` of a selection's rows into a caller's buffer.

use std::sync::RwLock;

use std::borrow::Cow;

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use ndarray::{s, ArrayView3};
use rayon::prelude::*;

use crate::{RuntimeError, Selection};

/// Element type of stored keys and values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16.
    Bf16,
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::Bf16 => "bf16",
        })
    }
}

/// A float type the store holds: f32, f16 or bf16.
pub trait Element: Copy + Send + Sync + 'static {
    /// The tag of this type.
    const DTYPE: DType;
    /// Widens to f32 (exact for every type here).
    fn to_f32(self) -> f32;
    /// Rounds an f32 to this type (round to nearest even).
    fn from_f32(x: f32) -> Self;
    /// Neither NaN nor infinite (a bit test, no conversion).
    fn is_finite(self) -> bool;
    /// `xs` widened to f32 (borrowed when they are f32), with the slice conversions that
    /// use the CPU's conversion instructions.
    fn widen(xs: &[Self]) -> Cow<'_, [f32]>;
    /// The storage's elements if it holds this type.
    fn view(s: &Storage) -> Option<&[Self]>;
    /// The storage's elements if it holds this type, mutable.
    fn view_mut(s: &mut Storage) -> Option<&mut [Self]>;
}

/// One tensor's elements.
#[derive(Debug, Clone)]
pub enum Storage {
    /// f32 elements.
    F32(Vec<f32>),
    /// f16 elements.
    F16(Vec<f16>),
    /// bf16 elements.
    Bf16(Vec<bf16>),
}

macro_rules! element {
    ($t:ty, $tag:ident, $to:expr, $from:expr, $widen:expr) => {
        impl Element for $t {
            const DTYPE: DType = DType::$tag;
            fn to_f32(self) -> f32 {
                $to(self)
            }
            fn from_f32(x: f32) -> Self {
                $from(x)
            }
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            fn widen(xs: &[Self]) -> Cow<'_, [f32]> {
                $widen(xs)
            }
            fn view(s: &Storage) -> Option<&[Self]> {
                match s {
                    Storage::$tag(v) => Some(v),
                    _ => None,
                }
            }
            fn view_mut(s: &mut Storage) -> Option<&mut [Self]> {
                match s {
                    Storage::$tag(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}
element!(f32, F32, |x| x, |x| x, Cow::Borrowed);
element!(f16, F16, f16::to_f32, f16::from_f32, widen_half);
element!(bf16, Bf16, bf16::to_f32, bf16::from_f32, widen_half);

fn widen_half<H: HalfFloatSliceExt + ?Sized>(xs: &H) -> Cow<'_, [f32]> {
    Cow::Owned(xs.to_f32_vec())
}

impl Storage {
    fn zeros(dtype: DType, len: usize) -> Self {
        match dtype {
            DType::F32 => Storage::F32(vec![0.0; len]),
            DType::F16 => Storage::F16(vec![f16::ZERO; len]),
            DType::Bf16 => Storage::Bf16(vec![bf16::ZERO; len]),
        }
    }

    /// Elements `range` widened to f32.
    fn read_f32(&self, range: std::ops::Range<usize>) -> Vec<f32> {
        match self {
            Storage::F32(v) => v[range].to_vec(),
            Storage::F16(v) => v[range].to_f32_vec(),
            Storage::Bf16(v) => v[range].to_f32_vec(),
        }
    }

    /// Writes head `h`'s rows `heads[h]` at `h * stride + at`, converted to the storage's
    /// type (through f32, which holds every f16 and bf16 exactly); heads in parallel, as
    /// their regions are disjoint.
    fn put_heads<T: Element>(&mut self, stride: usize, at: usize, heads: &[Cow<'_, [T]>]) {
        if let Some(dst) = T::view_mut(self) {
            dst.par_chunks_mut(stride)
                .zip(heads.par_iter())
                .for_each(|(d, xs)| d[at..at + xs.len()].copy_from_slice(xs));
            return;
        }
        match self {
            Storage::F32(v) => narrow_heads(v, stride, at, heads, |d, w| d.copy_from_slice(w)),
            Storage::F16(v) => {
                narrow_heads(v, stride, at, heads, |d, w| d.convert_from_f32_slice(w))
            }
            Storage::Bf16(v) => {
                narrow_heads(v, stride, at, heads, |d, w| d.convert_from_f32_slice(w))
            }
        }
    }

    fn as_ptr(&self) -> (*const u8, usize) {
        match self {
            Storage::F32(v) => (v.as_ptr().cast(), std::mem::size_of_val(v.as_slice())),
            Storage::F16(v) => (v.as_ptr().cast(), std::mem::size_of_val(v.as_slice())),
            Storage::Bf16(v) => (v.as_ptr().cast(), std::mem::size_of_val(v.as_slice())),
        }
    }
}

/// [`Storage::put_heads`] into a storage of another type than the input's.
fn narrow_heads<D: Send, T: Element>(
    v: &mut [D],
    stride: usize,
    at: usize,
    heads: &[Cow<'_, [T]>],
    narrow: impl Fn(&mut [D], &[f32]) + Sync,
) {
    v.par_chunks_mut(stride)
        .zip(heads.par_iter())
        .for_each(|(d, xs)| narrow(&mut d[at..at + xs.len()], &T::widen(xs)));
}

/// One layer's keys and values.
#[derive(Debug)]
struct LayerKv {
    keys: Storage,
    values: Storage,
    tokens: usize,
}

/// Keys and values of every layer, `[layer][head][token][dim]`.
#[derive(Debug)]
pub struct KvStore {
    dtype: DType,
    kv_heads: usize,
    head_dim: usize,
    capacity: usize,
    layers: Vec<RwLock<Option<LayerKv>>>,
}

impl KvStore {
    /// A store for `layers` layers of `kv_heads` heads of `head_dim` elements, each layer
    /// holding up to `capacity` tokens. Memory is allocated per layer at its first write.
    pub fn new(
        dtype: DType,
        layers: usize,
        kv_heads: usize,
        head_dim: usize,
        capacity: usize,
    ) -> Self {
        Self {
            dtype,
            kv_heads,
            head_dim,
            capacity,
            layers: (0..layers).map(|_| RwLock::new(None)).collect(),
        }
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Tokens each layer can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Tokens stored for `layer` (0 before its prefill).
    pub fn tokens(&self, layer: usize) -> usize {
        self.layers
            .get(layer)
            .and_then(|l| l.read().ok().and_then(|g| g.as_ref().map(|kv| kv.tokens)))
            .unwrap_or(0)
    }

    /// Address and byte length of `layer`'s (keys, values) allocations, for pinning; `None`
    /// before the layer's first write. The memory stays put for the store's life.
    pub fn layer_ptr(&self, layer: usize) -> Option<[(*const u8, usize); 2]> {
        let g = self.layers.get(layer)?.read().ok()?;
        g.as_ref().map(|kv| [kv.keys.as_ptr(), kv.values.as_ptr()])
    }

    fn layer_len(&self) -> usize {
        self.kv_heads * self.capacity * self.head_dim
    }

    fn poisoned(&self, layer: usize) -> RuntimeError {
        RuntimeError::Fault {
            backend: "store",
            detail: format!("layer {layer}: a thread panicked while writing it"),
        }
    }

    /// Writes tokens `from..from + n` of `layer` (keys and values `[head][token][dim]`, shapes
    /// checked by the caller) and sets the layer's length to `from + n`; `from = 0` starts a new sequence.
    pub(crate) fn write<T: Element>(
        &self,
        layer: usize,
        from: usize,
        n: usize,
        keys: &ArrayView3<T>,
        values: &ArrayView3<T>,
    ) -> Result<(), RuntimeError> {
        if from + n > self.capacity {
            return Err(RuntimeError::Capacity {
                layer,
                tokens: from + n,
                capacity: self.capacity,
            });
        }
        let mut g = self.layers[layer]
            .write()
            .map_err(|_| self.poisoned(layer))?;
        let len = self.layer_len();
        let kv = g.get_or_insert_with(|| LayerKv {
            keys: Storage::zeros(self.dtype, len),
            values: Storage::zeros(self.dtype, len),
            tokens: 0,
        });
        let d = self.head_dim;
        for (dst, src) in [(&mut kv.keys, keys), (&mut kv.values, values)] {
            // A head's rows are one slice when the input is contiguous; else copied once.
            let heads: Vec<Cow<'_, [T]>> = (0..self.kv_heads)
                .map(|h| {
                    let rows = src.slice_move(s![h, .., ..]);
                    match rows.to_slice() {
                        Some(xs) => Cow::Borrowed(xs),
                        None => Cow::Owned(rows.iter().copied().collect()),
                    }
                })
                .collect();
            dst.put_heads(self.capacity * d, from * d, &heads);
        }
        kv.tokens = from + n;
        Ok(())
    }

    /// Keys of `layer`, head `head`, tokens `range`, widened to f32 (`[token][dim]`).
    pub(crate) fn keys_f32(
        &self,
        layer: usize,
        head: usize,
        range: std::ops::Range<usize>,
    ) -> Result<Vec<f32>, RuntimeError> {
        let g = self.layers[layer]
            .read()
            .map_err(|_| self.poisoned(layer))?;
        let kv = g.as_ref().ok_or(RuntimeError::NotPrefilled { layer })?;
        let d = self.head_dim;
        let base = head * self.capacity * d;
        Ok(kv
            .keys
            .read_f32(base + range.start * d..base + range.end * d))
    }

    /// Copies the selected rows of `layer` into `keys` and `values`, each
    /// `[head][selected][dim]` (`selection.len_per_head()` rows per head), in the selection's
    /// token order. The buffers must have the store's element type and exactly that length.
    pub fn gather<T: Element>(
        &self,
        selection: &Selection,
        keys: &mut [T],
        values: &mut [T],
    ) -> Result<(), RuntimeError> {
        let layer = selection.layer();
        let wrong_type = || RuntimeError::Shape {
            what: "gather buffers".into(),
            found: T::DTYPE.to_string(),
            expected: format!("{} (the store's element type)", self.dtype),
        };
        if T::DTYPE != self.dtype {
            return Err(wrong_type());
        }
        let d = self.head_dim;
        let want = selection.kv_heads() * selection.len_per_head() * d;
        for (what, len) in [("gather keys", keys.len()), ("gather values", values.len())] {
            if len != want {
                return Err(RuntimeError::Shape {
                    what: what.into(),
                    found: format!("{len} elements"),
                    expected: format!(
                        "{want} ({} heads x {} tokens x {d})",
                        selection.kv_heads(),
                        selection.len_per_head()
                    ),
                });
            }
        }
        let lock = self.layers.get(layer).ok_or(RuntimeError::OutOfRange {
            what: "layer",
            value: layer,
            limit: self.layers.len(),
        })?;
        let g = lock.read().map_err(|_| self.poisoned(layer))?;
        let kv = g.as_ref().ok_or(RuntimeError::NotPrefilled { layer })?;
        if selection.kv_heads() != self.kv_heads {
            return Err(RuntimeError::Shape {
                what: "selection".into(),
                found: format!("{} heads", selection.kv_heads()),
                expected: format!("{} (the store's KV heads)", self.kv_heads),
            });
        }
        if let Some(&t) = selection.ids().iter().find(|&&t| t as usize >= kv.tokens) {
            return Err(RuntimeError::OutOfRange {
                what: "selected token",
                value: t as usize,
                limit: kv.tokens,
            });
        }
        let (Some(sk), Some(sv)) = (T::view(&kv.keys), T::view(&kv.values)) else {
            return Err(wrong_type());
        };
        let per = selection.len_per_head();
        for h in 0..self.kv_heads {
            for (i, &t) in selection.head(h).iter().enumerate() {
                let src = (h * self.capacity + t as usize) * d;
                let dst = (h * per + i) * d;
                keys[dst..dst + d].copy_from_slice(&sk[src..src + d]);
                values[dst..dst + d].copy_from_slice(&sv[src..src + d]);
            }
        }
        Ok(())
    }
}
