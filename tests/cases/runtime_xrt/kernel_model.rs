//! The kernel behind the fake XRT: what `kvpq_krnl` does with its arguments
//! (docs/design.md 7.1), every job answered by the golden model. It keeps `engine.heads`
//! codebooks on chip between runs and reads them all only when `load_codebook != 0`; it
//! parses the `jobs` buffer (`n_jobs` clamped to `MAX_JOBS`, `n_tokens` and `k` clamped),
//! runs job j on engine j % E, reads exactly the job's beats from that engine's S stripe
//! buffers (`alveo::code_stripes`: beat b from `engine_arg(e, b % S)` at the job's codes
//! offset + (b / S) beats) and writes its results into stripe 0's buffer (`lane<e>`), then
//! its header, with the flags the RTL sets (bit 61 for a head at or above `engine.heads`:
//! scanned with codebook 0, results withheld, shift kept).
//!
//! What the RTL would get wrong silently is reported as a breach instead: a codes offset off
//! its stripes' beat or an out offset off 8 bytes, beats outside their stripe buffer, a
//! result area whose beats (the RTL writes whole beats with byte strobes) leave stripe 0's
//! buffer, a result area overlapping another area of the run, two arguments sharing a
//! buffer, a job reading a head that was never loaded, a reserved word that is not 0.

use std::ffi::{c_int, c_void, CString};
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use kvpq_core::golden::{GoldenEngine, QuantCodebook};
use kvpq_core::interface::alveo::{
    code_stripes, engine_arg, engine_master, job, job_words, out_flags, KernelInterface,
    JOB_HEADER_WORDS, MAX_JOBS,
};
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
    /// Per engine, per stripe: bytes of its master's data bus.
    lane_align: Vec<Vec<usize>>,
    /// Stripe buffers per engine.
    stripes: usize,
    /// Bytes of one beat in memory (`words_per_beat` 64-bit words).
    beat_bytes: usize,
    on_chip: Vec<Option<QuantCodebook>>,
    /// Runs executed.
    pub runs: usize,
    /// Runs that read the codebooks (`load_codebook != 0`).
    pub loads: usize,
    /// Jobs answered, per engine.
    pub jobs_per_lane: Vec<usize>,
    /// Code beats read, per stripe (over every engine).
    pub beats_per_stripe: Vec<usize>,
    /// `n_jobs` of every run, in order.
    pub n_jobs: Vec<usize>,
    /// The run (counted from 0 over the model's life) that ends in `ERT_CMD_STATE_ERROR`,
    /// losing the on-chip codebooks as a reset would.
    pub fail_run: Option<usize>,
    /// For the next run: job `.0` reports the flags `.1` (`out_flags::READ_ERROR`,
    /// `WRITE_ERROR`) as the RTL does after an error response: a read error withholds the
    /// results (count 0), a write error keeps them.
    pub memory_error: Option<(usize, u64)>,
    /// For the next run: job `.0` is left unanswered (nothing written), as a kernel that
    /// lost it would.
    pub skip_job: Option<usize>,
    /// The kernel's `engine.heads` (the description's unless a test lowers it, as an
    /// xclbin built for fewer heads would have).
    pub heads: usize,
}

/// One parsed job.
struct Job {
    lane: usize,
    n: usize,
    k: usize,
    head: usize,
    /// Its codes offset, the same in every stripe buffer.
    codes: usize,
    /// Its beats: ceil(n / tokens_per_beat).
    beats: usize,
    out: Range<usize>,
    query: Vec<i32>,
}

impl Job {
    /// The bytes of stripe `s`'s buffer the job's beats take (beats s, s + S, ...).
    fn stripe_codes(&self, s: usize, stripes: usize, beat_bytes: usize) -> Range<usize> {
        let beats = self.beats.saturating_sub(s).div_ceil(stripes);
        self.codes..self.codes + beats * beat_bytes
    }
}

impl KernelModel {
    /// The kernel of `acc` with interface `iface`; breaches go to `report`.
    pub fn new(acc: &Accelerator, iface: &KernelInterface, report: Report) -> Self {
        let engines = acc.config().target.engines();
        let heads = acc.config().engine.heads() as usize;
        let stripes = code_stripes(acc.config());
        Self {
            acc: acc.clone(),
            iface: iface.clone(),
            report,
            lane_align: (0..engines)
                .map(|e| {
                    (0..stripes)
                        .map(|s| {
                            let m = iface
                                .master(&engine_master(e, s, stripes))
                                .expect("engine master");
                            m.data_bits as usize / 8
                        })
                        .collect()
                })
                .collect(),
            stripes: stripes as usize,
            beat_bytes: 8 * acc.derived().layout.words_per_beat(),
            beats_per_stripe: vec![0; stripes as usize],
            on_chip: vec![None; heads],
            runs: 0,
            loads: 0,
            jobs_per_lane: vec![0; engines as usize],
            n_jobs: Vec::new(),
            fail_run: None,
            memory_error: None,
            skip_job: None,
            heads,
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

    /// Reads every head's codebook, each value cut to `quant.centroid_bits` as the
    /// engine's codebook memory keeps it.
    fn load(&mut self, args: &[FakeArg]) -> Result<(), String> {
        let c = self.acc.config();
        let w = self.acc.derived().widths;
        let shape = (
            c.pq.m as usize,
            w.codebook_size as usize,
            w.sub_dim as usize,
        );
        let words = shape.0 * shape.1 * shape.2;
        let bytes = self.read(args, "codebooks", 4 * words * self.heads)?;
        let values = le_i32(&bytes, c.quant.centroid_bits);
        self.on_chip = values
            .chunks_exact(words)
            .map(|cb| {
                Array3::from_shape_vec(shape, cb.to_vec())
                    .map(|values| QuantCodebook { values, scale: 1.0 })
                    .ok()
            })
            .collect();
        self.loads += 1;
        Ok(())
    }

    /// The jobs of the run, parsed and checked against the lane buffers (`lanes[e][s]`:
    /// stripe s of engine e).
    fn jobs(&self, args: &[FakeArg], lanes: &[Vec<&FakeArg>]) -> Result<Vec<Job>, String> {
        let c = self.acc.config();
        let layout = self.acc.derived().layout;
        let (stripes, bb) = (self.stripes, self.beat_bytes);
        let n_jobs = (self.arg(args, "n_jobs")?.value as usize).min(MAX_JOBS as usize);
        let jw = job_words(c.pq.head_dim) as usize;
        let words = le_i32(&self.read(args, "jobs", 4 * jw * n_jobs)?, 32);
        let mut jobs = Vec::with_capacity(n_jobs);
        for (j, w) in words.chunks_exact(jw).enumerate() {
            let u = |i: usize| w[i] as u32 as usize;
            let lane = j % lanes.len();
            let n = u(job::N_TOKENS).min(c.engine.max_tokens as usize);
            let k = u(job::K).min(c.topk.k_max as usize);
            if w[job::RESERVED] != 0 {
                return Err(format!("job {j}: reserved word {}", w[job::RESERVED]));
            }
            let out = u(job::OUT) | u(job::OUT + 1) << 32;
            let jb = Job {
                lane,
                n,
                k,
                head: u(job::HEAD),
                codes: u(job::CODES) | u(job::CODES + 1) << 32,
                beats: layout.beats_for(n),
                out: out..out + 8 * (1 + n.min(k)),
                query: sign_cut(&w[JOB_HEADER_WORDS as usize..], c.quant.query_bits),
            };
            for (s, buf) in lanes[lane].iter().enumerate() {
                let align = self.lane_align[lane][s];
                if !jb.codes.is_multiple_of(align) {
                    return Err(format!(
                        "job {j}: codes offset {} off its alignment (lane {lane} stripe {s} \
                         beats are {align} bytes)",
                        jb.codes
                    ));
                }
                // Only the beats the stripe holds are read: a stripe with none is untouched.
                let r = jb.stripe_codes(s, stripes, bb);
                let size = buf.size as usize;
                if !r.is_empty() && r.end > size {
                    return Err(format!(
                        "job {j}: codes {r:?} past lane {lane} stripe {s}'s {size} bytes"
                    ));
                }
            }
            // The results go out as whole beats of stripe 0's master, strobed at the ends.
            let (align, size) = (self.lane_align[lane][0], lanes[lane][0].size as usize);
            if !out.is_multiple_of(8) {
                return Err(format!("job {j}: out offset {out} off its alignment"));
            }
            let beats = jb.out.start / align * align..jb.out.end.div_ceil(align) * align;
            if beats.end > size {
                return Err(format!(
                    "job {j}: out {:?} (written as beats {beats:?}) past lane {lane}'s {size} \
                     bytes",
                    jb.out
                ));
            }
            jobs.push(jb);
        }
        // Results written over codes or results of the run would corrupt them: sweep each
        // buffer's areas by start, remembering how far earlier areas reach.
        for lane in 0..lanes.len() {
            for s in 0..stripes {
                let mut areas: Vec<(Range<usize>, bool, usize)> = jobs
                    .iter()
                    .enumerate()
                    .filter(|(_, jb)| jb.lane == lane)
                    .flat_map(|(j, jb)| {
                        let out = (s == 0).then(|| (jb.out.clone(), true, j));
                        [Some((jb.stripe_codes(s, stripes, bb), false, j)), out]
                    })
                    .flatten()
                    .filter(|(r, _, _)| !r.is_empty())
                    .collect();
                areas.sort_by_key(|(r, _, _)| r.start);
                let (mut reach, mut out_reach) = (0, 0);
                for (r, is_out, j) in areas {
                    if r.start < out_reach || (is_out && r.start < reach) {
                        return Err(format!(
                            "job {j}: lane {lane} stripe {s} area {r:?} overlaps a result \
                             area of the run"
                        ));
                    }
                    reach = reach.max(r.end);
                    if is_out {
                        out_reach = out_reach.max(r.end);
                    }
                }
            }
        }
        Ok(jobs)
    }

    /// One run: the `ert_cmd_state` it ends in, or the breach it found.
    fn run(&mut self, args: &[FakeArg]) -> Result<c_int, String> {
        let this = self.runs;
        self.runs += 1;
        let memory_error = self.memory_error.take();
        let skip_job = self.skip_job.take();
        if self.arg(args, "load_codebook")?.value != 0 {
            self.load(args)?;
        }
        if self.fail_run == Some(this) {
            self.on_chip = vec![None; self.heads];
            return Ok(ERROR);
        }
        let lanes = (0..self.lane_align.len() as u32)
            .map(|e| {
                (0..self.stripes as u32)
                    .map(|s| self.arg(args, &engine_arg(e, s)))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let buffers: Vec<*mut u8> = args
            .iter()
            .filter(|a| a.is_buffer != 0)
            .map(|a| a.data)
            .collect();
        if (1..buffers.len()).any(|i| buffers[..i].contains(&buffers[i])) {
            return Err("two arguments share a buffer".into());
        }
        let jobs = self.jobs(args, &lanes)?;
        self.n_jobs.push(jobs.len());
        // SAFETY: each stripe of each lane is its own buffer of `size` bytes (checked above),
        // alive during the handler; the other reads are copies.
        let mut mem: Vec<Vec<&mut [u8]>> = lanes
            .iter()
            .map(|bufs| {
                bufs.iter()
                    .map(|a| unsafe { std::slice::from_raw_parts_mut(a.data, a.size as usize) })
                    .collect()
            })
            .collect();
        let (stripes, bb) = (self.stripes, self.beat_bytes);
        for (j, jb) in jobs.iter().enumerate() {
            if skip_job == Some(j) {
                continue;
            }
            let mut flags = 0;
            let mut head = jb.head;
            if head >= self.heads {
                // Scanned with codebook 0 so the engine stays in step; results withheld.
                flags |= out_flags::REQUEST_ERROR;
                head = 0;
            }
            let codebook = self
                .on_chip
                .get(head)
                .cloned()
                .flatten()
                .ok_or(format!("job {j} reads head {head}, never loaded"))?;
            // Beat b from stripe b % S, (b / S) beats past the codes offset.
            let mut beats = Vec::with_capacity(jb.beats * bb / 8);
            for b in 0..jb.beats {
                let at = jb.codes + b / stripes * bb;
                let beat = &mem[jb.lane][b % stripes][at..at + bb];
                beats.extend(
                    beat.chunks_exact(8)
                        .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes"))),
                );
                self.beats_per_stripe[b % stripes] += 1;
            }
            let result = GoldenEngine::new(&self.acc, codebook)
                .and_then(|g| g.run(&jb.query, &beats, jb.n, jb.k))
                .map_err(|e| format!("job {j}: golden model: {e}"))?;
            if let Some((_, f)) = memory_error.filter(|&(at, _)| at == j) {
                flags |= f;
            }
            let out = &mut mem[jb.lane][0][jb.out.clone()];
            let mut count = 0;
            if flags & (out_flags::READ_ERROR | out_flags::REQUEST_ERROR) == 0 {
                for (i, h) in result.hits.iter().enumerate() {
                    let word = u64::from(h.index) | u64::from(h.score as u32) << 32;
                    out[8 * (1 + i)..8 * (2 + i)].copy_from_slice(&word.to_le_bytes());
                }
                count = result.hits.len() as u64;
            }
            let header = count | u64::from(result.shift) << 32 | flags;
            out[..8].copy_from_slice(&header.to_le_bytes());
            self.jobs_per_lane[jb.lane] += 1;
        }
        Ok(COMPLETED)
    }
}

/// Little-endian int32 words, each cut to its low `bits` bits, sign extended (what the
/// kernel keeps of a codebook or query word).
fn le_i32(bytes: &[u8], bits: u32) -> Vec<i32> {
    let words: Vec<i32> = bytes
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect();
    sign_cut(&words, bits)
}

fn sign_cut(words: &[i32], bits: u32) -> Vec<i32> {
    let drop = 32 - bits;
    words.iter().map(|&v| (v << drop) >> drop).collect()
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
