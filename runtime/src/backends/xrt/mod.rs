//! The `xrt` device: the generated Alveo kernel (`kvpq_krnl`, or the HLS `pq_topk_kernel`)
//! in an xclbin, driven through XRT's C API loaded at run time (docs/runtime-xrt.md).
//!
//! A layer call stages every search's query and code beats, starts one run per search
//! (all in flight on the single compute unit, which takes them in order), then waits for
//! all and reads the results back. Codebooks live in device memory, one buffer per slot,
//! sent once by [`Device::load_codebook`]; a run asks the kernel to read its codebook
//! (`load_codebook = 1`) only when its slot differs from the one the kernel holds.

mod api;
mod args;
mod handles;
mod lane;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kvpq_core::golden::{QuantCodebook, QueryResult};
use kvpq_core::spec::Accelerator;

pub use api::{DEFAULT_LIBRARY, LIBRARY_ENV};

use self::api::{state_name, Api, STATE_COMPLETED};
use self::args::KernelArgs;
use self::handles::{fault, Bo, Kernel, XrtHandle};
use self::lane::Lane;
use crate::{checks, open_folder, Device, HeadQuery, ModelShape, RuntimeError};

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
/// Fields are dropped in declaration order: runs and their buffers, then the codebook
/// buffers, then the kernel, then the device (XRT wants handles released in that order).
#[derive(Debug)]
pub struct XrtDevice {
    lanes: Vec<Lane>,
    codebook_bos: Vec<Option<Bo>>,
    kernel: Kernel,
    device: XrtHandle,
    codebooks: Vec<Option<QuantCodebook>>,
    /// Slot whose codebook the kernel holds on chip; `None` when unknown (after a fault).
    on_card: Option<usize>,
    args: KernelArgs,
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
        let mut args = KernelArgs::new(&iface)?;
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
        Ok(Self {
            lanes: Vec::new(),
            codebook_bos: Vec::new(),
            kernel,
            device,
            codebooks: Vec::new(),
            on_card: None,
            args,
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

    /// Runs the checked `queries`: stage all, start all, wait for all, read all. On `Err`
    /// every started run has ended (its buffers are free to reuse).
    fn run_layer(&mut self, queries: &[HeadQuery<'_>]) -> Result<Vec<QueryResult>, RuntimeError> {
        while self.lanes.len() < queries.len() {
            let lane = Lane::open(&self.device, &self.kernel, &self.args, &self.acc)?;
            self.lanes.push(lane);
        }
        for (lane, q) in self.lanes.iter_mut().zip(queries) {
            lane.stage(&self.device, &self.args, &self.acc, q, &mut self.scratch)?;
        }
        // Every run starts before any is waited for, so the compute unit never idles while
        // the host turns around between searches.
        let mut loaded = self.on_card;
        let mut started = 0;
        let mut failure = None;
        for (lane, q) in self.lanes.iter().zip(queries) {
            let Some(codebook) = self.codebook_bos.get(q.slot).and_then(Option::as_ref) else {
                failure = Some(RuntimeError::NoCodebook {
                    slot: q.slot,
                    loaded: self.codebook_bos.iter().flatten().count(),
                });
                break;
            };
            let load = loaded != Some(q.slot);
            if let Err(e) = lane.start(&self.args, codebook, q, load) {
                failure = Some(e);
                break;
            }
            loaded = Some(q.slot);
            started += 1;
        }
        // Wait even after a failure: a run in flight still reads its buffers.
        for (i, (lane, q)) in self.lanes.iter().zip(queries).take(started).enumerate() {
            let state = lane.wait();
            if state != STATE_COMPLETED && failure.is_none() {
                failure = Some(fault(format!(
                    "xrtRunWait: search {i} (slot {}) ended in state {state} ({})",
                    q.slot,
                    state_name(state)
                )));
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        let results = self
            .lanes
            .iter()
            .zip(queries)
            .map(|(lane, q)| lane.result(q, &mut self.scratch))
            .collect::<Result<Vec<_>, _>>()?;
        self.on_card = loaded;
        Ok(results)
    }
}

impl Device for XrtDevice {
    fn name(&self) -> &'static str {
        "xrt"
    }

    fn load_codebook(&mut self, slot: usize, codebook: QuantCodebook) -> Result<(), RuntimeError> {
        checks::codebook(&self.acc, slot, &codebook)?;
        // Logical order of the (M, K, SUB) array is the kernel's [m][c][j].
        let bytes: Vec<u8> = codebook
            .values
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        // A new buffer, so a failing upload leaves the slot's previous codebook in place.
        let bo = Bo::alloc(&self.device, bytes.len(), self.args.codebook.group)?;
        bo.upload(&bytes)?;
        if self.codebooks.len() <= slot {
            self.codebooks.resize(slot + 1, None);
            self.codebook_bos.resize_with(slot + 1, || None);
        }
        self.codebooks[slot] = Some(codebook);
        self.codebook_bos[slot] = Some(bo);
        if self.on_card == Some(slot) {
            self.on_card = None;
        }
        Ok(())
    }

    fn search(&mut self, queries: &[HeadQuery<'_>]) -> Result<Vec<QueryResult>, RuntimeError> {
        checks::searches(&self.acc, &self.codebooks, queries)?;
        let outcome = self.run_layer(queries);
        if outcome.is_err() {
            // Which codebook the kernel holds after a failed call is unknown.
            self.on_card = None;
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
