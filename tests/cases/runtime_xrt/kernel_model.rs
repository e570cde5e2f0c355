//! The kernel behind the fake XRT: what `kvpq_krnl` does with its arguments
//! (docs/design.md 7.1), answered by the golden model. It keeps the codebook on chip between
//! runs, reads it only when `load_codebook != 0`, clamps `n_tokens` and `k`, reads exactly
//! the beats it needs, and writes the results, then the header.

use std::ffi::{c_int, c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use kvpq_core::golden::{GoldenEngine, QuantCodebook};
use kvpq_core::interface::alveo::KernelInterface;
use kvpq_core::spec::Accelerator;
use ndarray::Array3;

use super::fake::{FakeArg, Report};

/// `ERT_CMD_STATE_COMPLETED`.
const COMPLETED: c_int = 4;
/// `ERT_CMD_STATE_ERROR`.
const ERROR: c_int = 5;

/// The kernel's state and what the test reads of it.
pub struct KernelModel {
    acc: Accelerator,
    iface: KernelInterface,
    report: Report,
    on_chip: Option<QuantCodebook>,
    /// Runs executed.
    pub runs: usize,
    /// Runs that read a codebook (`load_codebook != 0`).
    pub loads: usize,
    /// The run (counted from 0 over the model's life) that ends in `ERT_CMD_STATE_ERROR`,
    /// losing the on-chip codebook as a reset would.
    pub fail_run: Option<usize>,
}

impl KernelModel {
    /// The kernel of `acc` with interface `iface`; breaches go to `report`.
    pub fn new(acc: &Accelerator, iface: &KernelInterface, report: Report) -> Self {
        Self {
            acc: acc.clone(),
            iface: iface.clone(),
            report,
            on_chip: None,
            runs: 0,
            loads: 0,
            fail_run: None,
        }
    }

    fn arg<'a>(&self, args: &'a [FakeArg], name: &str) -> Result<&'a FakeArg, String> {
        let id = self
            .iface
            .arg(name)
            .ok_or(format!("no argument {name}"))?
            .id as usize;
        args.get(id)
            .ok_or(format!("argument {name} ({id}) not passed"))
    }

    /// The first `need` bytes of buffer `name`, copied.
    fn read(&self, args: &[FakeArg], name: &str, need: usize) -> Result<Vec<u8>, String> {
        let a = self.arg(args, name)?;
        if a.is_buffer == 0 || (a.size as usize) < need {
            return Err(format!("{name}: {} bytes, the kernel reads {need}", a.size));
        }
        // SAFETY: the fake passes the buffer's device copy of `size >= need` bytes, alive
        // during the handler.
        Ok(unsafe { std::slice::from_raw_parts(a.data, need) }.to_vec())
    }

    /// One run: the `ert_cmd_state` it ends in, or the breach it found.
    fn run(&mut self, args: &[FakeArg]) -> Result<c_int, String> {
        let c = self.acc.config().clone();
        let w = self.acc.derived().widths;
        let layout = self.acc.derived().layout;
        let this = self.runs;
        self.runs += 1;
        if self.arg(args, "load_codebook")?.value != 0 {
            let shape = (
                c.pq.m as usize,
                w.codebook_size as usize,
                w.sub_dim as usize,
            );
            let bytes = self.read(args, "codebook", 4 * shape.0 * shape.1 * shape.2)?;
            let values =
                Array3::from_shape_vec(shape, le_i32(&bytes)).map_err(|e| e.to_string())?;
            self.on_chip = Some(QuantCodebook { values, scale: 1.0 });
            self.loads += 1;
        }
        if self.fail_run == Some(this) {
            self.on_chip = None;
            return Ok(ERROR);
        }
        let codebook = self
            .on_chip
            .clone()
            .ok_or("a run with load_codebook = 0 while no codebook is on chip")?;
        let n = (self.arg(args, "n_tokens")?.value as usize).min(c.engine.max_tokens as usize);
        let k = (self.arg(args, "k")?.value as usize).min(c.topk.k_max as usize);
        let query = le_i32(&self.read(args, "query", 4 * c.pq.head_dim as usize)?);
        let words = layout.beats_for(n) * layout.words_per_beat();
        let beats: Vec<u64> = self
            .read(args, "codes", 8 * words)?
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect();
        let result = GoldenEngine::new(&self.acc, codebook)
            .and_then(|g| g.run(&query, &beats, n, k))
            .map_err(|e| format!("golden model: {e}"))?;
        let out = self.arg(args, "out")?;
        let need = 8 * (1 + c.topk.k_max as usize);
        if (out.size as usize) < need {
            return Err(format!(
                "out: {} bytes, the kernel's layout has {need}",
                out.size
            ));
        }
        if args
            .iter()
            .any(|a| a.is_buffer != 0 && a.data == out.data && !std::ptr::eq(a, out))
        {
            return Err("out shares its buffer with another argument".into());
        }
        // SAFETY: `out` is a buffer of `need` bytes or more, alive during the handler, and no
        // other argument points into it (checked above; the other reads are copies).
        let mem = unsafe { std::slice::from_raw_parts_mut(out.data, need) };
        for (i, h) in result.hits.iter().enumerate() {
            let word = u64::from(h.index) | u64::from(h.score as u32) << 32;
            mem[8 * (1 + i)..8 * (2 + i)].copy_from_slice(&word.to_le_bytes());
        }
        let header = result.hits.len() as u64 | u64::from(result.shift) << 32;
        mem[..8].copy_from_slice(&header.to_le_bytes());
        Ok(COMPLETED)
    }
}

fn le_i32(bytes: &[u8]) -> Vec<i32> {
    bytes
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect()
}

/// The run handler registered with the fake; `user` is a `Mutex<KernelModel>`.
///
/// # Safety
/// `user` must point at a live `Mutex<KernelModel>` and `args` at `nargs` arguments.
pub unsafe extern "C" fn handler(user: *mut c_void, args: *const FakeArg, nargs: c_int) -> c_int {
    // SAFETY: the test registers a `Mutex<KernelModel>` it keeps alive, and the fake passes
    // `nargs` arguments.
    let (model, args) = unsafe {
        (
            &*(user as *const Mutex<KernelModel>),
            std::slice::from_raw_parts(args, nargs.max(0) as usize),
        )
    };
    let mut m = model.lock().unwrap_or_else(|e| e.into_inner());
    // A panic must not unwind into C: it becomes a reported breach.
    let outcome = catch_unwind(AssertUnwindSafe(|| m.run(args)))
        .unwrap_or_else(|_| Err("the kernel model panicked".into()));
    match outcome {
        Ok(state) => state,
        Err(what) => {
            let text = CString::new(what.replace('\0', " ")).unwrap_or_default();
            // SAFETY: a NUL-terminated message; the fake copies it.
            unsafe { (m.report)(text.as_ptr()) };
            ERROR
        }
    }
}
