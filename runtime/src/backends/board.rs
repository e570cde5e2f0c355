//! The board device: a ULX3S (ECP5) programmed with the bitstream of `hwgen build --target
//! ecp5`, driven through `kvpq_board_top`'s byte protocol over the board's UART
//! (docs/design.md section 7.2, docs/board.md).
//!
//! The board holds one codebook. The device keeps every slot's codebook on the host and sends
//! a slot's centroids again whenever a search needs another slot than the one on the board; a
//! call runs its searches grouped by slot, the slot on the board first, so each slot crosses
//! the link at most once per call. Searches that return nothing (`min(k, n_tokens) = 0`)
//! never reach the board: their result is only the LUT shift, which the host computes as the
//! golden model does. For the others the host also checks the shift the board reports, so a
//! board that holds another codebook than the device believes is caught.
//!
//! A fault (a timeout, a malformed record, a wrong count) can leave the board in the middle of
//! a command, and the protocol has no way back to a command boundary: the device then refuses
//! every later search. Reprogram the board and open the device again.

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use kvpq_core::golden::lut::build_lut;
use kvpq_core::golden::{Hit, QuantCodebook, QueryResult};
use kvpq_core::interface::board::{uart, BoardFormat, Record};
use kvpq_core::spec::Accelerator;
use serialport::{ClearBuffer, DataBits, FlowControl, Parity, SerialPort, StopBits};

use crate::checks::Slots;
use crate::{open_folder, Device, HeadQuery, ModelShape, RuntimeError};

/// How long the board may stay silent past the time a reply is expected, unless changed with
/// [`BoardDevice::with_timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest wait the device computes; keeps deadline arithmetic finite.
const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

/// A ULX3S running a kvpq bitstream, behind its serial port.
///
/// ```no_run
/// use std::path::Path;
/// use kvpq_runtime::backends::board::BoardDevice;
/// use kvpq_runtime::{Device, ModelShape};
///
/// let shape = ModelShape { head_dim: Some(128), ..ModelShape::default() };
/// let board = BoardDevice::open(Path::new("bitstreams/pqcache-ulx3s-0123456789ab"), &shape,
///     "/dev/ttyUSB0")?;
/// assert_eq!(board.name(), "board");
/// # Ok::<(), kvpq_runtime::RuntimeError>(())
/// ```
pub struct BoardDevice {
    acc: Accelerator,
    link: Link,
    slots: Slots,
    /// The slot whose codebook the board holds, if known.
    on_board: Option<usize>,
    /// The fault that ended this device's use, if any.
    fault: Option<String>,
}

/// The serial port and what the device knows about time on it.
struct Link {
    port: Box<dyn SerialPort>,
    path: String,
    format: BoardFormat,
    /// Core clock of the bitstream, MHz.
    clock_mhz: f64,
    timeout: Duration,
}

impl BoardDevice {
    /// Opens the bitstream folder `dir` with [`open_folder`] (checked against `shape`) and the
    /// board's serial port `port` (e.g. `/dev/ttyUSB0`) with the UART's settings.
    ///
    /// The folder gives the accelerator and the byte protocol; its ECP5 build record, when
    /// present, the core clock (otherwise `target.clock_mhz`), used to expect replies. The board
    /// must run that folder's bitstream: the protocol cannot tell. A port that cannot be opened
    /// is [`RuntimeError::Unavailable`], naming it.
    pub fn open(dir: &Path, shape: &ModelShape, port: &str) -> Result<Self, RuntimeError> {
        let folder = open_folder(dir, shape)?;
        let unavailable = |what: &str, e: serialport::Error| RuntimeError::Unavailable {
            backend: "board",
            reason: format!(
                "{what} serial port {port}: {e} (is the board plugged in and is the port free? \
                 see docs/board.md)"
            ),
        };
        let serial = serialport::new(port, uart::BAUD)
            .data_bits(DataBits::Eight)
            .parity(Parity::None)
            .stop_bits(StopBits::One)
            .flow_control(FlowControl::None)
            .timeout(DEFAULT_TIMEOUT)
            .open()
            .map_err(|e| unavailable("cannot open", e))?;
        // Bytes from before this device (an earlier session, the adapter's power-up) are not
        // replies to anything it sends.
        serial
            .clear(ClearBuffer::All)
            .map_err(|e| unavailable("cannot clear", e))?;
        let clock_mhz = folder
            .manifest
            .ecp5
            .as_ref()
            .map_or(folder.accelerator.config().target.clock_mhz, |r| {
                r.fmax.constraint
            });
        Ok(Self {
            link: Link {
                port: serial,
                path: port.to_string(),
                format: folder.manifest.interface.board,
                clock_mhz,
                timeout: DEFAULT_TIMEOUT,
            },
            acc: folder.accelerator,
            slots: Slots::default(),
            on_board: None,
            fault: None,
        })
    }

    /// Sets how long the board may stay silent past the time a reply is expected (and how long
    /// a write may wait for the port) before a call fails with [`RuntimeError::Fault`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.link.timeout = timeout.min(MAX_WAIT);
        self
    }

    /// The description it serves.
    pub fn accelerator(&self) -> &Accelerator {
        &self.acc
    }

    /// The serial port it talks through.
    pub fn port(&self) -> &str {
        &self.link.path
    }

    /// Records a fault: later searches are refused, the board's codebook is unknown.
    fn fail(&mut self, detail: String) -> RuntimeError {
        self.on_board = None;
        self.fault = Some(detail.clone());
        RuntimeError::Fault {
            backend: "board",
            detail,
        }
    }

    /// Runs search `i` of a call (`frames` already encoded) on the board and checks its
    /// records; returns its hits.
    fn run(
        &mut self,
        i: usize,
        q: &HeadQuery<'_>,
        frames: &[u8],
        shift: u32,
    ) -> Result<Vec<Hit>, RuntimeError> {
        let records = self.link.query(&self.acc, q, frames, shift).map_err(|e| {
            self.fail(format!(
                "{}: search {i} (slot {}): {e}",
                self.link.path, q.slot
            ))
        })?;
        Ok(records
            .iter()
            .map(|r| Hit {
                index: r.index,
                score: r.score,
            })
            .collect())
    }
}

impl fmt::Debug for BoardDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoardDevice")
            .field("accelerator", &self.acc.config().name)
            .field("port", &self.link.path)
            .field("on_board", &self.on_board)
            .field("fault", &self.fault)
            .finish_non_exhaustive()
    }
}

impl Device for BoardDevice {
    fn name(&self) -> &'static str {
        "board"
    }

    /// Stores the codebook on the host; it crosses the link when a search needs it.
    fn load_codebook(&mut self, slot: usize, codebook: QuantCodebook) -> Result<(), RuntimeError> {
        self.slots.load(&self.acc, slot, codebook)?;
        if self.on_board == Some(slot) {
            self.on_board = None;
        }
        Ok(())
    }

    fn search(&mut self, queries: &[HeadQuery<'_>]) -> Result<Vec<QueryResult>, RuntimeError> {
        if let Some(f) = &self.fault {
            return Err(RuntimeError::Fault {
                backend: "board",
                detail: format!(
                    "an earlier fault left the board in an unknown state ({f}); reprogram it \
                     and open the device again"
                ),
            });
        }
        let checked = self.slots.check(&self.acc, queries)?;
        let cfg = self.acc.config();
        let (lut_bits, query_bits) = (cfg.quant.lut_bits, cfg.quant.query_bits);
        let centroid_bits = cfg.quant.centroid_bits;
        let layout = self.acc.derived().layout;
        // Every result starts with the host's shift; the board adds the hits.
        let mut results: Vec<QueryResult> = queries
            .iter()
            .zip(&checked)
            .map(|(q, codebook)| QueryResult {
                hits: Vec::new(),
                shift: build_lut(q.query, codebook, lut_bits).shift,
            })
            .collect();
        // Grouped by slot, the one on the board first; the stable sort keeps call order within
        // a slot.
        let mut order: Vec<usize> = (0..queries.len()).collect();
        let on_board = self.on_board;
        order.sort_by_key(|&i| (Some(queries[i].slot) != on_board, queries[i].slot));
        // Everything is encoded before the first byte goes out: a refused search sends nothing.
        let mut plan = Vec::with_capacity(queries.len());
        let mut loaded = on_board;
        for i in order {
            let q = &queries[i];
            if q.k.min(q.n_tokens) == 0 {
                continue;
            }
            let codebook = (loaded != Some(q.slot))
                .then(|| self.link.format.codebook_frames(checked[i], centroid_bits));
            loaded = Some(q.slot);
            let frames = self
                .link
                .format
                .query_frames(q.query, query_bits, &layout, q.beats, q.n_tokens, q.k)?;
            plan.push((i, codebook, frames));
        }
        for (i, codebook, frames) in plan {
            let q = &queries[i];
            if let Some(bytes) = codebook {
                self.on_board = None;
                self.link.send(&bytes).map_err(|e| {
                    self.fail(format!(
                        "{}: codebook of slot {}: {e}",
                        self.link.path, q.slot
                    ))
                })?;
                self.on_board = Some(q.slot);
            }
            results[i].hits = self.run(i, q, &frames, results[i].shift)?;
        }
        Ok(results)
    }
}

impl Link {
    /// Time `bytes` bytes take on the wire.
    fn wire(bytes: usize) -> Duration {
        secs(bytes as f64 * f64::from(uart::BITS_PER_BYTE) / f64::from(uart::BAUD))
    }

    /// Time the core takes for `cycles` cycles.
    fn cycles(&self, cycles: u64) -> Duration {
        secs(cycles as f64 / (self.clock_mhz * 1e6))
    }

    /// Writes `bytes`; each write may wait `timeout` for room in the port's buffer.
    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.port
            .set_timeout(self.timeout)
            .map_err(|e| format!("cannot set the port's timeout: {e}"))?;
        self.port.write_all(bytes).map_err(|e| match e.kind() {
            ErrorKind::TimedOut => format!(
                "the port took no more bytes for {:?} ({} to send)",
                self.timeout,
                bytes.len()
            ),
            _ => format!("writing {} bytes: {e}", bytes.len()),
        })
    }

    /// Sends the frames of search `q` (with at least one result, its LUT's shift `shift`) and
    /// reads its records, each checked as it arrives.
    fn query(
        &mut self,
        acc: &Accelerator,
        q: &HeadQuery<'_>,
        frames: &[u8],
        shift: u32,
    ) -> Result<Vec<Record>, String> {
        let f = self.format;
        let expected = q.k.min(q.n_tokens);
        // Bytes waiting now answer nothing this device sent: an earlier query returned more
        // records than it should have.
        let stray = self
            .port
            .bytes_to_read()
            .map_err(|e| format!("cannot poll the port: {e}"))?;
        if stray > 0 {
            return Err(format!(
                "{stray} unexpected byte(s) waiting before the query (an earlier query returned \
                 more records than min(k, n_tokens))"
            ));
        }
        // The UART has no flow control and holds one byte while the board waits, so the first
        // code beat must not arrive long before the LUT is built: with a LUT build longer than
        // a beat's bytes on the wire, the beats wait until the query and start frames are out
        // and the build is done.
        let d = acc.derived();
        let head = 2 + (f.query_bits.div_ceil(8) + f.start_bits().div_ceil(8)) as usize;
        let beat_frame = 1 + f.beat_bits.div_ceil(8) as usize;
        let lut = self.cycles(d.cycles.lut_build);
        let head = head.min(frames.len());
        if lut > Self::wire(beat_frame) {
            self.send(&frames[..head])?;
            std::thread::sleep(Self::wire(head) + lut);
            self.send(&frames[head..])?;
        } else {
            self.send(frames)?;
        }
        // The reply is due once the frames are on the wire, the core has run the query and
        // the records are back; the timeout is the slack on top.
        let rb = f.record_bytes();
        let total = expected * rb;
        let work = d.cycles.lut_build + d.cycles.query_latency(q.n_tokens as u64, q.k as u64);
        let wait =
            (Self::wire(frames.len() + total) + self.cycles(work) + self.timeout).min(MAX_WAIT);
        let deadline = Instant::now() + wait;
        let mut buf = vec![0u8; total];
        let mut records = Vec::with_capacity(expected);
        let mut got = 0;
        while got < total {
            let left = deadline.saturating_duration_since(Instant::now());
            let timed_out = || {
                format!(
                    "no reply within {wait:?}: {} of {expected} result records ({got} of {total} \
                     bytes) received",
                    got / rb
                )
            };
            if left.is_zero() {
                return Err(timed_out());
            }
            self.port
                .set_timeout(left)
                .map_err(|e| format!("cannot set the port's timeout: {e}"))?;
            match self.port.read(&mut buf[got..]) {
                Ok(0) => return Err("the port closed".into()),
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::TimedOut => return Err(timed_out()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("reading: {e}")),
            }
            // Checked as they come, so a board that ends early is named at once, not after
            // the timeout.
            while records.len() < got / rb {
                let at = records.len() * rb;
                let r = f.decode(&buf[at..at + rb]);
                check_record(records.len(), &r, expected, q.n_tokens, shift)?;
                records.push(r);
            }
        }
        Ok(records)
    }
}

/// Checks record `i` (0-based) of a search over `n` tokens that expects `expected` results
/// and whose LUT has shift `shift`; `Err` says what the protocol wanted instead.
fn check_record(i: usize, r: &Record, expected: usize, n: usize, shift: u32) -> Result<(), String> {
    let (rank, last) = (i + 1, i + 1 == expected);
    if r.last != last {
        return Err(format!(
            "result record {rank} has last = {}, expected {last}: {expected} results are due              (min(k, n_tokens))",
            r.last
        ));
    }
    if r.index as usize >= n {
        return Err(format!(
            "result record {rank} names token {}, beyond the {n} tokens scanned",
            r.index
        ));
    }
    if r.shift != shift {
        return Err(format!(
            "result record {rank} carries LUT shift {}, expected {shift} (the LUT of this query \
             and codebook): does the board hold another codebook?",
            r.shift
        ));
    }
    Ok(())
}

/// `s` seconds as a duration, capped at [`MAX_WAIT`] (and 0 for what is not a positive number).
fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s)
        .unwrap_or(if s > 0.0 { MAX_WAIT } else { Duration::ZERO })
        .min(MAX_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(index: u32, shift: u32, last: bool) -> Record {
        Record {
            index,
            score: -3,
            shift,
            last,
        }
    }

    #[test]
    fn records_that_break_the_protocol_are_named() {
        // Three results due over 10 tokens, LUT shift 2.
        assert!(check_record(0, &record(9, 2, false), 3, 10, 2).is_ok());
        assert!(check_record(2, &record(0, 2, true), 3, 10, 2).is_ok());
        let early = check_record(1, &record(4, 2, true), 3, 10, 2).unwrap_err();
        assert!(early.contains("record 2 has last = true") && early.contains("3 results"));
        let late = check_record(2, &record(4, 2, false), 3, 10, 2).unwrap_err();
        assert!(late.contains("last = false, expected true"), "{late}");
        let beyond = check_record(0, &record(10, 2, false), 3, 10, 2).unwrap_err();
        assert!(
            beyond.contains("token 10, beyond the 10 tokens"),
            "{beyond}"
        );
        let shift = check_record(0, &record(1, 5, false), 3, 10, 2).unwrap_err();
        assert!(shift.contains("LUT shift 5, expected 2"), "{shift}");
    }

    #[test]
    fn waits_stay_finite() {
        assert_eq!(secs(1.5), Duration::from_millis(1500));
        assert_eq!(secs(f64::INFINITY), MAX_WAIT);
        assert_eq!(secs(1e300), MAX_WAIT);
        assert_eq!(secs(f64::NAN), Duration::ZERO);
        assert_eq!(secs(-1.0), Duration::ZERO);
        // 10 bits a byte at 1 Mbaud.
        assert_eq!(Link::wire(100), Duration::from_millis(1));
    }
}
