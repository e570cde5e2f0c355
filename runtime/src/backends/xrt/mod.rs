//! The `xrt` device: the generated Alveo kernel (`kvpq_krnl`, or the HLS `pq_topk_kernel`)
//! in an xclbin, driven through XRT's C API loaded at run time (docs/runtime-xrt.md).
//!
//! A layer call is one kernel run (docs/design.md 7.1): the host writes one job per search
//! into the `jobs` buffer and job j's code beats and result area into the buffers of engine
//! j % E (the beats striped over its S buffers `lane<e>`, `lane<e>_1`, ..., S =
//! `alveo::code_stripes`; the results in `lane<e>`), starts the run, waits, and reads every
//! job's results back. The codebooks live in one device buffer, `engine.heads` of them
//! head-major (slot s in head s % heads); a run asks the kernel to read them
//! (`load_codebook = 1`) only when a head it reads holds another codebook on chip. A call
//! whose slots would need two codebooks in one head is split into consecutive runs at
//! those points.

mod api;
mod args;
mod codebooks;
mod handles;
mod layout;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kvpq_core::golden::{QuantCodebook, QueryResult};
use kvpq_core::interface::alveo::{code_stripes, MAX_JOBS};
use kvpq_core::spec::Accelerator;

pub use api::{DEFAULT_LIBRARY, LIBRARY_ENV};

use self::api::{state_name, Api, STATE_COMPLETED};
use self::args::KernelArgs;
use self::codebooks::CodebookBuffer;
use self::handles::{fault, Bo, Kernel, Run, XrtHandle};
use self::layout::{decode, place, push_job, split_runs, stage_codes, Striping, UNANSWERED};
use crate::{checks, open_folder, Device, HeadQuery, ModelShape, RuntimeError};

/// Smallest buffer allocated: XRT rounds every buffer up to a 4 KiB page anyway, and every
/// stripe of every lane needs a buffer to pass even in a run that gives it no job.
const MIN_BUFFER_BYTES: usize = 4096;

/// Environment variable with the index of the card to open (`xbutil examine` lists them);
/// 0 when unset.
pub const DEVICE_ENV: &str = "KVPQ_XRT_DEVICE";

/// Which of the folder's two kernels the xclbin holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KernelKind {
    /// The RTL kernel (`make` in the folder's `vitis/`).
    #[default]
    Rtl,
    /// The HLS kernel (`make KERNEL=hls`).
    Hls,
}

impl KernelKind {
    /// Where the folder's `vitis/Makefile` writes the hardware xclbin of this kernel.
    pub fn default_xclbin(self, folder: &Path) -> PathBuf {
        let kernel = match self {
            Self::Rtl => "rtl",
            Self::Hls => "hls",
        };
        folder
            .join("vitis")
            .join(format!("build_{kernel}_hw"))
            .join(format!("kvpq_{kernel}.xclbin"))
    }
}

/// How to open the card. `Default` loads [`LIBRARY_ENV`] (else [`DEFAULT_LIBRARY`]), opens
/// card [`DEVICE_ENV`] (else 0) and the folder's RTL xclbin.
#[derive(Debug, Clone, Default)]
pub struct XrtOptions {
    /// XRT library to load, overriding [`LIBRARY_ENV`].
    pub library: Option<PathBuf>,
    /// Card index, overriding [`DEVICE_ENV`].
    pub device_index: Option<u32>,
    /// The xclbin; default [`KernelKind::default_xclbin`] of the folder.
    pub xclbin: Option<PathBuf>,
    /// Which kernel the xclbin holds.
    pub kernel: KernelKind,
}

/// An Alveo card programmed with a generated kernel.
///
/// Fields are dropped in declaration order: the run, then the buffers, then the kernel, then
/// the device (XRT wants handles released in that order).
#[derive(Debug)]
pub struct XrtDevice {
    run: Run,
    /// Per engine, per stripe: its `lane<e>` (stripe 0) and `lane<e>_<s>` buffers, each
    /// grown (doubling) when a run needs more.
    lanes: Vec<Vec<Bo>>,
    /// The jobs of a run, grown like the lanes.
    jobs: Bo,
    codebooks: CodebookBuffer,
    /// Held open for the run, closed after it and the buffers.
    _kernel: Kernel,
    device: XrtHandle,
    /// The codebooks given to [`Device::load_codebook`], by slot.
    slots: Vec<Option<QuantCodebook>>,
    args: KernelArgs,
    /// How code beats are spread over an engine's stripe buffers.
    striping: Striping,
    acc: Accelerator,
    xclbin: PathBuf,
    scratch: Vec<u8>,
}

/// The card index: `given`, else `env` (the value of [`DEVICE_ENV`]; blank counts as unset),
/// else 0.
fn device_index(given: Option<u32>, env: Option<String>) -> Result<u32, RuntimeError> {
    match (given, env.as_deref().map(str::trim)) {
        (Some(i), _) => Ok(i),
        (None, Some(v)) if !v.is_empty() => v.parse().map_err(|_| RuntimeError::Unavailable {
            backend: "xrt",
            reason: format!("{DEVICE_ENV}={v} is not a card index (0, 1, ...)"),
        }),
        _ => Ok(0),
    }
}

impl XrtDevice {
    /// Opens the generated folder `folder` (checked against `shape` by
    /// [`open_folder`]), loads XRT, programs card `options.device_index` with the xclbin and
    /// opens the kernel. `Unavailable` when XRT, the card or the xclbin is missing (or the
    /// xclbin was built from another interface), `Fault` when an XRT call fails, `Mismatch`
    /// when the folder is not an Alveo one.
    pub fn open(
        folder: &Path,
        shape: &ModelShape,
        options: &XrtOptions,
    ) -> Result<Self, RuntimeError> {
        let opened = open_folder(folder, shape)?;
        let acc = opened.accelerator;
        let iface = opened
            .manifest
            .interface
            .kernel
            .ok_or_else(|| RuntimeError::Mismatch {
                folder: folder.to_path_buf(),
                field: "target.platform",
                found: acc.config().target.platform.to_string(),
                requested: "an Alveo platform (u280 or u55c) for the xrt device".into(),
            })?;
        let stripes = code_stripes(acc.config());
        let mut args = KernelArgs::new(&iface, acc.config().target.engines(), stripes)?;
        let striping = Striping {
            count: stripes.max(1) as usize,
            beat_bytes: 8 * acc.derived().layout.words_per_beat(),
        };
        let api = Arc::new(Api::load(options.library.as_deref())?);
        let xclbin = options
            .xclbin
            .clone()
            .unwrap_or_else(|| options.kernel.default_xclbin(folder));
        if !xclbin.is_file() {
            return Err(RuntimeError::Unavailable {
                backend: "xrt",
                reason: format!(
                    "no xclbin at {}: build it with `make` in {} (docs/runtime-xrt.md) or \
                     pass XrtOptions::xclbin",
                    xclbin.display(),
                    folder.join("vitis").display()
                ),
            });
        }
        let index = device_index(options.device_index, std::env::var(DEVICE_ENV).ok())?;
        let device = XrtHandle::open(&api, index)?;
        let uuid = device.load_xclbin(&xclbin)?;
        let name = match options.kernel {
            KernelKind::Rtl => &iface.rtl_kernel,
            KernelKind::Hls => &iface.hls_kernel,
        };
        let kernel = Kernel::open(&device, &uuid, name)?;
        args.bind(&kernel, &iface)?;
        let c = acc.config();
        let w = acc.derived().widths;
        let codebook_bytes = 4 * c.pq.m as usize * w.codebook_size as usize * w.sub_dim as usize;
        let codebooks = CodebookBuffer::open(
            &device,
            args.codebooks.group,
            c.engine.heads() as usize,
            codebook_bytes,
        )?;
        let jobs = Bo::alloc(&device, MIN_BUFFER_BYTES, args.jobs.group)?;
        let lanes = args
            .lanes
            .iter()
            .map(|stripes| {
                stripes
                    .iter()
                    .map(|a| Bo::alloc(&device, MIN_BUFFER_BYTES, a.group))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let run = Run::open(&kernel)?;
        Ok(Self {
            run,
            lanes,
            jobs,
            codebooks,
            _kernel: kernel,
            device,
            slots: Vec::new(),
            args,
            striping,
            acc,
            xclbin,
            scratch: Vec::new(),
        })
    }

    /// The description the folder was generated from.
    pub fn accelerator(&self) -> &Accelerator {
        &self.acc
    }

    /// The xclbin the card runs.
    pub fn xclbin(&self) -> &Path {
        &self.xclbin
    }

    /// Runs the checked, non-empty `queries`: one kernel run, or one per stretch of searches
    /// whose slots share no engine head ([`split_runs`]). On `Err` every started run has
    /// ended (its buffers are free to reuse).
    fn run_layer(&mut self, queries: &[HeadQuery<'_>]) -> Result<Vec<QueryResult>, RuntimeError> {
        let heads = self.acc.config().engine.heads() as usize;
        let slots: Vec<usize> = queries.iter().map(|q| q.slot).collect();
        let mut results = Vec::with_capacity(queries.len());
        for range in split_runs(&slots, heads) {
            let first = range.start;
            results.extend(self.run_once(first, &queries[range])?);
        }
        Ok(results)
    }

    /// One kernel run over `queries` (searches `first..` of the call): stage the codebooks
    /// it needs, the jobs and the lanes, start, wait, read every job's results.
    fn run_once(
        &mut self,
        first: usize,
        queries: &[HeadQuery<'_>],
    ) -> Result<Vec<QueryResult>, RuntimeError> {
        let load = self.codebooks.stage(
            queries.iter().map(|q| q.slot),
            &self.slots,
            &mut self.scratch,
        )?;
        let layout = self.acc.derived().layout;
        let striping = self.striping;
        // Each search's code words: exactly the ceil(n_tokens / tokens_per_beat) beats the
        // kernel reads.
        let words = queries
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let need = layout.beats_for(q.n_tokens) * layout.words_per_beat();
                q.beats.get(..need).ok_or_else(|| {
                    fault(format!(
                        "search {} (slot {}) holds {} code words, {need} needed",
                        first + i,
                        q.slot,
                        q.beats.len()
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sizes: Vec<(usize, usize)> = queries
            .iter()
            .map(|q| (layout.beats_for(q.n_tokens), q.n_tokens.min(q.k)))
            .collect();
        let (places, lanes) = place(&sizes, &self.args.lane_align, striping);

        // The checks bound n_tokens by max_tokens and k by k_max, both u32.
        let scalar = |v: usize, name: &str| {
            u32::try_from(v).map_err(|_| fault(format!("{name} = {v} does not fit 32 bits")))
        };
        self.scratch.clear();
        for (q, p) in queries.iter().zip(&places) {
            let head = self.codebooks.head(q.slot) as u32;
            let (n, k) = (scalar(q.n_tokens, "n_tokens")?, scalar(q.k, "k")?);
            push_job(&mut self.scratch, n, k, head, p, q.query);
        }
        grow(
            &self.device,
            &mut self.jobs,
            self.scratch.len(),
            self.args.jobs.group,
        )?;
        self.jobs.upload(&self.scratch)?;

        // Per lane and stripe, one image of the bytes the run uses: stripe 0's from 0 (the
        // result headers set to UNANSWERED, then its beats), the others' from the first
        // beat. Every stripe buffer is grown to the lane's end, so each job's codes offset
        // lies inside all of them.
        for (e, span) in lanes.iter().enumerate() {
            if span.end == 0 {
                continue;
            }
            for s in 0..striping.count {
                let base = if s == 0 { 0 } else { span.code_start };
                self.scratch.clear();
                self.scratch.resize(span.end - base, 0);
                for (p, w) in places.iter().zip(&words).filter(|(p, _)| p.lane == e) {
                    if s == 0 {
                        self.scratch[p.out..p.out + 8].copy_from_slice(&UNANSWERED.to_le_bytes());
                    }
                    stage_codes(&mut self.scratch, base, s, striping, p, w);
                }
                grow(
                    &self.device,
                    &mut self.lanes[e][s],
                    span.end,
                    self.args.lanes[e][s].group,
                )?;
                self.lanes[e][s].upload_at(base, &self.scratch)?;
            }
        }

        self.start(queries.len(), load)?;
        let state = self.run.wait();
        if state != STATE_COMPLETED {
            return Err(fault(format!(
                "xrtRunWait: the run of searches {first}..{} ended in state {state} ({})",
                first + queries.len(),
                state_name(state)
            )));
        }
        if load {
            self.codebooks.loaded();
        }

        // Every lane's result areas (in its stripe 0 buffer), one after the other, then
        // decoded in call order so an error names the first search that has one.
        let mut base = vec![0; lanes.len()];
        self.scratch.clear();
        for (e, span) in lanes.iter().enumerate() {
            base[e] = self.scratch.len();
            self.scratch.resize(base[e] + span.out_end, 0);
            self.lanes[e][0].download(&mut self.scratch[base[e]..])?;
        }
        queries
            .iter()
            .zip(&places)
            .enumerate()
            .map(|(i, (q, p))| {
                let at = base[p.lane] + p.out;
                decode(&self.scratch[at..at + 8 * (1 + p.count)], q.n_tokens, q.k)
                    .map_err(|e| fault(format!("search {} (slot {}): {e}", first + i, q.slot)))
            })
            .collect()
    }

    /// Sets every argument of the run and starts it; `load` makes the kernel read the
    /// codebooks before the jobs.
    fn start(&self, n_jobs: usize, load: bool) -> Result<(), RuntimeError> {
        let (r, a) = (&self.run, &self.args);
        r.set_buffer(a.codebooks.id, &a.codebooks.name, self.codebooks.bo())?;
        r.set_buffer(a.jobs.id, &a.jobs.name, &self.jobs)?;
        for (arg, bo) in a.lanes.iter().flatten().zip(self.lanes.iter().flatten()) {
            r.set_buffer(arg.id, &arg.name, bo)?;
        }
        // `search` refuses more than MAX_JOBS searches, so the count fits.
        r.set_scalar(a.n_jobs.id, &a.n_jobs.name, n_jobs as u32)?;
        r.set_scalar(a.load_codebook.id, &a.load_codebook.name, u32::from(load))?;
        r.start()
    }
}

/// Replaces `bo` by a buffer of at least `need` bytes when it is smaller: doubling, since
/// contexts grow a token per step.
fn grow(device: &XrtHandle, bo: &mut Bo, need: usize, group: u32) -> Result<(), RuntimeError> {
    if need > bo.size {
        *bo = Bo::alloc(device, need.max(2 * bo.size), group)?;
    }
    Ok(())
}

impl Device for XrtDevice {
    fn name(&self) -> &'static str {
        "xrt"
    }

    fn load_codebook(&mut self, slot: usize, codebook: QuantCodebook) -> Result<(), RuntimeError> {
        checks::codebook(&self.acc, slot, &codebook)?;
        // Sent now, so a decoding step whose slots fit the heads sends no codebook. On
        // `Err` the slot keeps its previous codebook (the region is rewritten when read).
        self.codebooks.write(slot, &codebook, &mut self.scratch)?;
        if self.slots.len() <= slot {
            self.slots.resize(slot + 1, None);
        }
        self.slots[slot] = Some(codebook);
        self.codebooks.replaced(slot);
        Ok(())
    }

    fn search(&mut self, queries: &[HeadQuery<'_>]) -> Result<Vec<QueryResult>, RuntimeError> {
        if queries.len() > MAX_JOBS as usize {
            return Err(RuntimeError::Shape {
                what: "searches in one call".into(),
                found: queries.len().to_string(),
                expected: format!("at most {MAX_JOBS} (alveo::MAX_JOBS, the kernel's n_jobs)"),
            });
        }
        checks::searches(&self.acc, &self.slots, queries)?;
        if queries.is_empty() {
            return Ok(Vec::new());
        }
        let outcome = self.run_layer(queries);
        if outcome.is_err() {
            // What the kernel holds after a failed run is unknown (a codebook read may
            // have failed half way): the next run loads the codebooks again.
            self.codebooks.forget();
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_card_index_comes_from_the_caller_then_the_environment() {
        assert_eq!(device_index(Some(2), Some("5".into())).unwrap(), 2);
        assert_eq!(device_index(None, Some(" 5 ".into())).unwrap(), 5);
        assert_eq!(device_index(None, Some(" ".into())).unwrap(), 0);
        assert_eq!(device_index(None, None).unwrap(), 0);
        match device_index(None, Some("card1".into())) {
            Err(RuntimeError::Unavailable { reason, .. }) => {
                assert!(reason.contains(DEVICE_ENV), "{reason}")
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[test]
    fn default_xclbins_are_where_the_makefile_writes_them() {
        let dir = Path::new("out/llama3");
        assert_eq!(
            KernelKind::Rtl.default_xclbin(dir),
            dir.join("vitis/build_rtl_hw/kvpq_rtl.xclbin")
        );
        assert_eq!(
            KernelKind::Hls.default_xclbin(dir),
            dir.join("vitis/build_hls_hw/kvpq_hls.xclbin")
        );
    }
}
