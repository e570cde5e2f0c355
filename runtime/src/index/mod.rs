//! The model-level retrieval index (PQCache-style, docs/design.md section 2): for L layers x
//! H_kv KV heads it trains codebooks at prefill (in the background), encodes appended
//! tokens, answers `select` with one device call per layer, and keeps the host KV store that
//! `gather` reads.

mod layer;
mod options;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kvpq_core::golden::fixed::quantize;
use kvpq_core::golden::{PqCodebook, QuantCodebook};
use kvpq_core::spec::Accelerator;
use ndarray::{ArrayView2, ArrayView3};
use rayon::prelude::*;

use crate::backends::cpu::CpuDevice;
use crate::selection::{Selection, Split};
use crate::store::{Element, KvStore};
use crate::{Device, HeadQuery, RuntimeError};
use layer::{encode_range, stream_start, Layer, LayerState};
pub use options::{IndexOptions, Sharding, TrainingOptions};

/// A layer's searches at one decoding step, as [`Index::with_searches`] lends them.
#[derive(Debug)]
pub struct LayerSearches<'a> {
    /// One search per KV head, in head order.
    pub searches: Vec<HeadQuery<'a>>,
    /// Each head's integer codebook (the search's slot holds it once loaded).
    pub codebooks: Vec<&'a QuantCodebook>,
    /// The layer's training stamp: codebooks and streams change only with it.
    pub stamp: u64,
    /// How the policy split the context.
    pub split: Split,
}

/// One head's codebooks and code stream, as [`Index::head_codes`] returns them.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadCodes {
    /// Float codebooks (M, K, D/M).
    pub codebook: PqCodebook,
    /// Integer codebooks the device holds.
    pub quant: QuantCodebook,
    /// Packed codes of the stream (docs/design.md section 4).
    pub beats: Vec<u64>,
    /// Tokens in the stream (the context minus the sinks).
    pub stream_tokens: usize,
}

/// A device and the codebook stamps loaded in its slots.
struct Served {
    device: Box<dyn Device>,
    loaded: Vec<u64>,
}

/// The retrieval index of one model: see the [module docs](self). `Send + Sync`: threads may
/// prefill, append and select on different layers at once and get the answers one thread
/// would.
pub struct Index {
    acc: Accelerator,
    opts: IndexOptions,
    store: Arc<KvStore>,
    layers: Vec<Arc<Layer>>,
    devices: Vec<Mutex<Served>>,
    pool: rayon::ThreadPool,
    stamps: AtomicU64,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("accelerator", &self.acc.config().name)
            .field("options", &self.opts)
            .field("devices", &self.devices.len())
            .finish()
    }
}

impl Index {
    /// An index served by the CPU device.
    pub fn cpu(acc: Accelerator, opts: IndexOptions) -> Result<Self, RuntimeError> {
        let device = CpuDevice::new(acc.clone());
        Self::new(acc, opts, vec![Box::new(device)])
    }

    /// An index served by `devices` (at least one), spread by `opts.sharding`.
    pub fn new(
        acc: Accelerator,
        opts: IndexOptions,
        devices: Vec<Box<dyn Device>>,
    ) -> Result<Self, RuntimeError> {
        let bad = |what: &str, found: String, expected: &str| {
            Err(RuntimeError::Shape {
                what: what.into(),
                found,
                expected: expected.into(),
            })
        };
        if opts.layers == 0 || opts.kv_heads == 0 {
            return bad(
                "index shape",
                format!("{} layers x {} KV heads", opts.layers, opts.kv_heads),
                "at least one layer and one KV head",
            );
        }
        if devices.is_empty() {
            return bad("devices", "none".into(), "at least one device");
        }
        let capacity = opts
            .capacity
            .unwrap_or(stream_start(&acc) + acc.config().engine.max_tokens as usize);
        let threads = opts.training.threads;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("kvpq-train-{i}"))
            .build()
            .map_err(|e| RuntimeError::Unavailable {
                backend: "index",
                reason: format!("cannot start the training threads: {e}"),
            })?;
        let store = KvStore::new(
            opts.dtype,
            opts.layers,
            opts.kv_heads,
            acc.config().pq.head_dim as usize,
            capacity,
        );
        Ok(Self {
            layers: (0..opts.layers).map(|_| Arc::default()).collect(),
            devices: devices
                .into_iter()
                .map(|device| {
                    Mutex::new(Served {
                        device,
                        loaded: Vec::new(),
                    })
                })
                .collect(),
            store: Arc::new(store),
            acc,
            opts,
            pool,
            stamps: AtomicU64::new(1),
        })
    }

    /// The accelerator description (widths and retrieval policy).
    pub fn accelerator(&self) -> &Accelerator {
        &self.acc
    }

    /// The options it was built with.
    pub fn options(&self) -> &IndexOptions {
        &self.opts
    }

    /// The host KV store.
    pub fn store(&self) -> &KvStore {
        &self.store
    }

    /// Names of the devices, in index order.
    pub fn device_names(&self) -> Vec<&'static str> {
        self.devices
            .iter()
            .map(|d| d.lock().map_or("poisoned", |s| s.device.name()))
            .collect()
    }

    /// Context length of `layer`.
    pub fn tokens(&self, layer: usize) -> Result<usize, RuntimeError> {
        Ok(self.layer(layer)?.lock(layer)?.tokens)
    }

    fn layer(&self, layer: usize) -> Result<&Arc<Layer>, RuntimeError> {
        self.layers.get(layer).ok_or(RuntimeError::OutOfRange {
            what: "layer",
            value: layer,
            limit: self.layers.len(),
        })
    }

    /// Checks keys and values of `call`: each [`Self::check_kv`], and the same shape;
    /// returns their token count.
    fn check_pair<T: Element>(
        &self,
        call: &str,
        keys: &ArrayView3<T>,
        values: &ArrayView3<T>,
    ) -> Result<usize, RuntimeError> {
        self.check_kv(&format!("{call} keys"), keys)?;
        self.check_kv(&format!("{call} values"), values)?;
        if values.dim() != keys.dim() {
            return Err(RuntimeError::Shape {
                what: format!("{call} values"),
                found: format!("{:?}", values.dim()),
                expected: format!("{:?} (the keys' shape)", keys.dim()),
            });
        }
        Ok(keys.dim().1)
    }

    /// Checks a `[kv_heads][tokens][head_dim]` tensor: shape and finite values.
    fn check_kv<T: Element>(&self, what: &str, x: &ArrayView3<T>) -> Result<(), RuntimeError> {
        let d = self.acc.config().pq.head_dim as usize;
        let (h, n, dim) = x.dim();
        if h != self.opts.kv_heads || dim != d {
            return Err(RuntimeError::Shape {
                what: what.into(),
                found: format!("({h}, {n}, {dim})"),
                expected: format!(
                    "({}, tokens, {d}) (kv_heads, tokens, head_dim)",
                    self.opts.kv_heads
                ),
            });
        }
        // Contiguous input is tested as one slice (the common case, and fast).
        let bad = match x.as_slice() {
            // A branch-free test per block (it vectorizes), blocks in parallel; the position
            // only on failure.
            Some(xs) => xs
                .par_chunks(1024)
                .position_first(|c| !c.iter().fold(true, |ok, v| ok & v.is_finite()))
                .and_then(|block| {
                    let at = block * 1024;
                    xs[at..].iter().position(|v| !v.is_finite()).map(|i| at + i)
                }),
            None => x.iter().position(|v| !v.is_finite()),
        };
        if let Some(position) = bad {
            let value = x.iter().nth(position).map_or(f32::NAN, |v| v.to_f32());
            return Err(RuntimeError::NonFinite {
                what: what.into(),
                position,
                value,
            });
        }
        Ok(())
    }

    /// Starts a new sequence on `layer` with its prompt's keys and values
    /// (`[kv_heads][tokens][head_dim]`): stores them and trains the layer's codebooks on a
    /// background thread pool, so the call returns while the GPU prefills the next layers.
    /// `select` on the layer waits for the training. The prompt needs at least K = 2^b
    /// tokens (k-means does not invent centroids).
    pub fn prefill<T: Element>(
        &self,
        layer: usize,
        keys: ArrayView3<T>,
        values: ArrayView3<T>,
    ) -> Result<(), RuntimeError> {
        let slot = self.layer(layer)?;
        let n = self.check_pair("prefill", &keys, &values)?;
        let k = 1usize << self.acc.config().pq.code_bits;
        if n < k {
            return Err(RuntimeError::Shape {
                what: "prefill keys".into(),
                found: format!("{n} tokens"),
                expected: format!("at least {k} (2^pq.code_bits centroids to train)"),
            });
        }
        let mut g = slot.lock(layer)?;
        self.store.write(layer, 0, n, &keys, &values)?;
        g.generation += 1;
        g.tokens = n;
        g.pq = None;
        g.failed = None;
        g.appended_since = 0;
        g.prompt = n;
        self.spawn_training(layer, &mut g, 0);
        Ok(())
    }

    /// Queues a training of `layer` on its first `g.tokens` tokens
    /// (`recent`: the first token that training favours, 0 for none).
    fn spawn_training(&self, layer: usize, g: &mut LayerState, recent: usize) {
        g.training = true;
        g.appended_since = 0;
        let (generation, tokens) = (g.generation, g.tokens);
        let stamp = self.stamps.fetch_add(1, Ordering::Relaxed);
        let (acc, store, slot) = (
            self.acc.clone(),
            self.store.clone(),
            self.layers[layer].clone(),
        );
        let (heads, opts) = (self.opts.kv_heads, self.opts.training);
        self.pool.spawn(move || {
            let result = layer::train(&acc, &store, layer, heads, tokens, recent, &opts, stamp);
            let Ok(mut g) = slot.state.lock() else {
                return;
            };
            if g.generation != generation {
                return; // a newer prefill started another sequence
            }
            g.training = false;
            let result = result.and_then(|mut trained| {
                // Tokens appended while training ran: encode them with the new codebooks.
                for (h, head) in trained.heads.iter_mut().enumerate() {
                    let keys = store.keys_f32(layer, h, tokens..g.tokens)?;
                    encode_range(&acc, head, &keys, tokens, g.tokens)?;
                }
                Ok(trained)
            });
            match result {
                Ok(trained) => g.pq = Some(trained),
                // Keep the codebooks a re-training meant to replace; report only when none.
                Err(e) => g.failed = Some(e.to_string()),
            }
            slot.trained.notify_all();
        });
    }

    /// Blocks until no training of `layer` is in flight (a prefill's or a re-training's);
    /// `Err` if the layer has no codebooks then. `select` needs only the first: it waits for
    /// a prefill's training and keeps using the old codebooks during a re-training.
    pub fn wait_trained(&self, layer: usize) -> Result<(), RuntimeError> {
        let slot = self.layer(layer)?;
        let mut g = slot.lock(layer)?;
        while g.training {
            g = slot.trained.wait(g).map_err(|_| layer::poisoned(layer))?;
        }
        self.trained_or_err(layer, &g).map(|_| ())
    }

    fn trained_or_err<'g>(
        &self,
        layer: usize,
        g: &'g LayerState,
    ) -> Result<&'g layer::Trained, RuntimeError> {
        if g.tokens == 0 {
            return Err(RuntimeError::NotPrefilled { layer });
        }
        g.pq.as_ref().ok_or_else(|| RuntimeError::Training {
            layer,
            detail: g
                .failed
                .clone()
                .unwrap_or_else(|| "no codebooks".to_string()),
        })
    }

    /// A copy of one head's codebooks and packed code stream (stream position `i` is token
    /// `sink_tokens + i`), waiting for a pending training: what the devices are given, for
    /// checks against the golden model and for export.
    pub fn head_codes(&self, layer: usize, head: usize) -> Result<HeadCodes, RuntimeError> {
        let slot = self.layer(layer)?;
        if head >= self.opts.kv_heads {
            return Err(RuntimeError::OutOfRange {
                what: "head",
                value: head,
                limit: self.opts.kv_heads,
            });
        }
        let g = slot.wait_trained(layer, slot.lock(layer)?)?;
        let h = &self.trained_or_err(layer, &g)?.heads[head];
        Ok(HeadCodes {
            codebook: h.codebook.clone(),
            quant: h.quant.clone(),
            beats: h.beats.clone(),
            stream_tokens: h.encoded,
        })
    }

    /// Appends decoded tokens' keys and values (`[kv_heads][tokens][head_dim]`) to `layer`
    /// and encodes them with the current codebooks (waiting for a prefill's training). With
    /// `retrain_every`, a background re-training starts when enough tokens were appended;
    /// `select` keeps using the old codebooks until the new ones are ready.
    pub fn append<T: Element>(
        &self,
        layer: usize,
        keys: ArrayView3<T>,
        values: ArrayView3<T>,
    ) -> Result<(), RuntimeError> {
        let slot = self.layer(layer)?;
        let n = self.check_pair("append", &keys, &values)?;
        let mut g = slot.wait_trained(layer, slot.lock(layer)?)?;
        let from = g.tokens;
        let tokens = from + n;
        // Encode every head before anything changes: a refused append changes nothing.
        let codes = self
            .trained_or_err(layer, &g)?
            .heads
            .iter()
            .enumerate()
            .map(|(h, head)| {
                let rows: Vec<f32> = keys
                    .index_axis(ndarray::Axis(0), h)
                    .iter()
                    .map(|x| x.to_f32())
                    .collect();
                layer::new_codes(&self.acc, head, &rows, from, tokens)
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.store.write(layer, from, n, &keys, &values)?;
        if let Some(trained) = g.pq.as_mut() {
            for (head, codes) in trained.heads.iter_mut().zip(&codes) {
                if let Some(codes) = codes {
                    // Codes of the encoder (right shape, each below K) always pack.
                    layer::push_codes(&self.acc, head, codes)?;
                }
            }
        }
        g.tokens = tokens;
        g.appended_since += n;
        if let Some(every) = self.opts.retrain_every {
            if g.appended_since >= every && !g.training {
                let prompt = g.prompt;
                self.spawn_training(layer, &mut g, prompt);
            }
        }
        Ok(())
    }

    /// The tokens `layer` attends at this decoding step for the queries `[q_heads][head_dim]`
    /// (q_heads = kv_heads x gqa_group; query heads `h*g..(h+1)*g` share KV head `h` and are
    /// summed in that order): per KV head the sinks, the policy's top-k of the middle by PQ
    /// score and the local window, ascending. One device call per layer (per device when
    /// heads are sharded).
    pub fn select(
        &self,
        layer: usize,
        queries: ArrayView2<f32>,
    ) -> Result<Selection, RuntimeError> {
        self.select_inner(layer, queries, None)
    }

    /// Like [`select`](Self::select) with `k` tokens from the middle instead of the
    /// policy's; `k` larger than the middle is refused.
    pub fn select_k(
        &self,
        layer: usize,
        queries: ArrayView2<f32>,
        k: usize,
    ) -> Result<Selection, RuntimeError> {
        self.select_inner(layer, queries, Some(k))
    }

    /// Runs `f` on the layer's searches for the queries `[q_heads][head_dim]` under the
    /// policy (or `k` from the middle), without calling a device: for engines that keep the
    /// selection where the attention runs (`cuda::GpuRetrieval::select_into`). The searches
    /// are in KV-head order with slots `layer * kv_heads + head` and the layer's training
    /// stamp as stream; `codebooks[h]` is head h's codebook, to load when `stamp` is new to
    /// the engine. `f` runs under the layer's lock, so appends to it wait.
    pub fn with_searches<R>(
        &self,
        layer: usize,
        queries: ArrayView2<f32>,
        k: Option<usize>,
        f: impl FnOnce(&LayerSearches<'_>) -> R,
    ) -> Result<R, RuntimeError> {
        self.prepared(layer, queries, k, |qs, trained, split| {
            let searches = (0..self.opts.kv_heads)
                .map(|h| self.head_query(layer, h, qs, trained, &split))
                .collect();
            Ok(f(&LayerSearches {
                searches,
                codebooks: trained.heads.iter().map(|h| &h.quant).collect(),
                stamp: trained.stamp,
                split,
            }))
        })
    }

    /// Runs `f` on what a layer's searches need: the quantized queries, and, under the
    /// layer's lock once it is trained, its codebooks and codes and the policy's split.
    fn prepared<R>(
        &self,
        layer: usize,
        queries: ArrayView2<f32>,
        k: Option<usize>,
        f: impl FnOnce(&[Vec<i32>], &layer::Trained, Split) -> Result<R, RuntimeError>,
    ) -> Result<R, RuntimeError> {
        let slot = self.layer(layer)?;
        let qs = self.quantize_queries(queries)?;
        let g = slot.wait_trained(layer, slot.lock(layer)?)?;
        let trained = self.trained_or_err(layer, &g)?;
        let split = self.split(g.tokens, k)?;
        f(&qs, trained, split)
    }

    /// The search of KV head `h` of `layer`: its slot, query and codes, the split's middle
    /// and top-k, the layer's training stamp as its stream.
    fn head_query<'a>(
        &self,
        layer: usize,
        h: usize,
        queries: &'a [Vec<i32>],
        trained: &'a layer::Trained,
        split: &Split,
    ) -> HeadQuery<'a> {
        HeadQuery {
            slot: layer * self.opts.kv_heads + h,
            query: &queries[h],
            beats: &trained.heads[h].beats,
            n_tokens: split.middle,
            k: split.topk,
            stream: Some(trained.stamp),
        }
    }

    fn select_inner(
        &self,
        layer: usize,
        queries: ArrayView2<f32>,
        k: Option<usize>,
    ) -> Result<Selection, RuntimeError> {
        self.prepared(layer, queries, k, |qs, trained, split| {
            self.select_trained(layer, qs, trained, split)
        })
    }

    /// The layer's selection from its devices, once its searches are prepared.
    fn select_trained(
        &self,
        layer: usize,
        qs: &[Vec<i32>],
        trained: &layer::Trained,
        split: Split,
    ) -> Result<Selection, RuntimeError> {
        let heads = self.opts.kv_heads;
        let mut hits: Vec<Vec<u32>> = vec![Vec::new(); heads];
        if split.topk > 0 {
            // Device d serves these heads of this layer.
            let groups: Vec<(usize, Vec<usize>)> = match self.opts.sharding {
                Sharding::Layers => vec![(layer % self.devices.len(), (0..heads).collect())],
                Sharding::Heads => (0..self.devices.len().min(heads))
                    .map(|d| (d, (d..heads).step_by(self.devices.len()).collect()))
                    .collect(),
            };
            let results = if let [(d, hs)] = &groups[..] {
                // One device: call it on this thread (its rayon work runs on the caller's pool).
                vec![self.call(*d, layer, hs, qs, trained, &split)?]
            } else {
                // Several devices at once, each on its own OS thread: not rayon jobs, which
                // could be stolen by a thread holding another device's lock.
                std::thread::scope(|scope| {
                    let calls: Vec<_> = groups
                        .iter()
                        .map(|(d, hs)| {
                            let split = &split;
                            scope.spawn(move || self.call(*d, layer, hs, qs, trained, split))
                        })
                        .collect();
                    calls
                        .into_iter()
                        .map(|c| {
                            c.join().unwrap_or_else(|_| {
                                Err(RuntimeError::Fault {
                                    backend: "index",
                                    detail: "a device call panicked".into(),
                                })
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                })?
            };
            for ((_, hs), res) in groups.iter().zip(results) {
                for (&h, ids) in hs.iter().zip(res) {
                    hits[h] = ids;
                }
            }
        }
        Ok(assemble(layer, heads, &split, &hits))
    }

    /// The policy's split of a context of `tokens`, with an explicit top-k if given.
    fn split(&self, tokens: usize, k: Option<usize>) -> Result<Split, RuntimeError> {
        let p = self
            .acc
            .policy_split(u32::try_from(tokens).unwrap_or(u32::MAX));
        let sink = (p.sink as usize).min(stream_start(&self.acc)).min(tokens);
        let local = p.local as usize;
        let middle = tokens - sink - local;
        let topk = match k {
            None => p.topk as usize,
            Some(k) if k > middle => return Err(RuntimeError::Budget { k, middle, tokens }),
            Some(k) => k,
        };
        Ok(Split {
            tokens,
            sink,
            local,
            middle,
            topk,
        })
    }

    /// Sums each KV head's GQA group and quantizes the sum (docs/design.md section 3).
    fn quantize_queries(&self, q: ArrayView2<f32>) -> Result<Vec<Vec<i32>>, RuntimeError> {
        let c = self.acc.config();
        let (d, g, heads) = (
            c.pq.head_dim as usize,
            c.retrieval.gqa_group as usize,
            self.opts.kv_heads,
        );
        if q.dim() != (heads * g, d) {
            return Err(RuntimeError::Shape {
                what: "queries".into(),
                found: format!("{:?}", q.dim()),
                expected: format!(
                    "({}, {d}) (kv_heads x retrieval.gqa_group, head_dim)",
                    heads * g
                ),
            });
        }
        if let Some((position, &value)) = q.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(RuntimeError::NonFinite {
                what: "queries".into(),
                position,
                value,
            });
        }
        (0..heads)
            .map(|h| {
                let mut sum = vec![0f32; d];
                for j in 0..g {
                    for (s, &x) in sum.iter_mut().zip(q.row(h * g + j)) {
                        *s += x;
                    }
                }
                Ok(quantize("query", &sum, c.quant.query_bits)?.values)
            })
            .collect()
    }

    /// One device call: the searches of `heads` of `layer`; returns their token ids.
    fn call(
        &self,
        device: usize,
        layer: usize,
        heads: &[usize],
        queries: &[Vec<i32>],
        trained: &layer::Trained,
        split: &Split,
    ) -> Result<Vec<Vec<u32>>, RuntimeError> {
        let mut served = self.devices[device]
            .lock()
            .map_err(|_| RuntimeError::Fault {
                backend: "index",
                detail: format!("device {device}: a thread panicked while using it"),
            })?;
        let slot_of = |h: usize| layer * self.opts.kv_heads + h;
        for &h in heads {
            let slot = slot_of(h);
            if served.loaded.get(slot) != Some(&trained.stamp) {
                let cb = trained.heads[h].quant.clone();
                served.device.load_codebook(slot, cb)?;
                if served.loaded.len() <= slot {
                    served.loaded.resize(slot + 1, 0);
                }
                served.loaded[slot] = trained.stamp;
            }
        }
        let searches: Vec<HeadQuery> = heads
            .iter()
            .map(|&h| self.head_query(layer, h, queries, trained, split))
            .collect();
        let results = served.device.search(&searches)?;
        let s = split.sink as u32;
        results
            .into_iter()
            .zip(heads)
            .map(|(r, h)| {
                if r.hits.len() != split.topk {
                    return Err(RuntimeError::Fault {
                        backend: served.device.name(),
                        detail: format!(
                            "layer {layer} head {h}: {} results for k = {}",
                            r.hits.len(),
                            split.topk
                        ),
                    });
                }
                Ok(r.hits.iter().map(|hit| s + hit.index).collect())
            })
            .collect()
    }
}

/// Sinks, the top-k ids (from the middle) and the window, per head, ascending.
fn assemble(layer: usize, heads: usize, split: &Split, hits: &[Vec<u32>]) -> Selection {
    let per_head = split.sink + split.topk + split.local;
    let mut ids = Vec::with_capacity(heads * per_head);
    for h in hits.iter().take(heads) {
        ids.extend(0..split.sink as u32);
        // Every device returns the top-k in ascending token index, as the golden model does
        // (each is tested bit-exact against it, order included).
        debug_assert!(h.is_sorted(), "device top-k out of order");
        ids.extend_from_slice(h);
        let end = split.tokens as u32;
        ids.extend(end - split.local as u32..end);
    }
    Selection {
        layer,
        kv_heads: heads,
        per_head,
        ids,
        split: *split,
    }
}
