//! The `sim` device: the Verilator model of a folder's RTL engine (`pq_topk_engine`), driven
//! through the `sim` crate, for co-simulating whole decode loops against the other devices.
//! Behind the `sim` cargo feature: it needs Verilator and a C++ compiler at run time.

use std::path::Path;

use hwgen::emit::verilog::SourceFile;
use hwgen::emit::Design;
use kvpq_core::golden::{QuantCodebook, QueryResult};
use kvpq_core::interface::ENGINE_TOP;
use kvpq_core::spec::Accelerator;
use sim::{build_model, default_cache, EngineSim, Job, SimError, Stalls};

use crate::checks::Slots;
use crate::{open_folder, Device, HeadQuery, ModelShape, RuntimeError};

/// The engine's Verilator model behind the [`Device`] trait. The engine holds
/// `engine.heads` codebooks; slot s lives in engine head `s % heads` (direct-mapped), so a
/// search on a slot whose codebook is not there streams it in first, as the host of a real
/// engine would. The queries of one search run back to back (the next scan overlaps this
/// query's top-k) until one needs a head that a query of the batch still reads.
pub struct SimDevice {
    acc: Accelerator,
    engine: EngineSim,
    slots: Slots,
    /// Per engine head: the slot whose codebook it holds.
    loaded: Vec<Option<usize>>,
    cycles: u64,
}

impl std::fmt::Debug for SimDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimDevice")
            .field("accelerator", &self.acc.config().name)
            .field("loaded", &self.loaded)
            .field("cycles", &self.cycles)
            .finish()
    }
}

fn fault(e: SimError) -> RuntimeError {
    match e {
        SimError::Tool(_) | SimError::Io { .. } | SimError::Load { .. } => {
            RuntimeError::Unavailable {
                backend: "sim",
                reason: e.to_string(),
            }
        }
        // A run past its cycle limit, a protocol violation or a wrong result count.
        other => RuntimeError::Fault {
            backend: "sim",
            detail: other.to_string(),
        },
    }
}

impl SimDevice {
    /// Opens a generated RTL folder (its manifest and every file's hash checked, its
    /// parameters checked against `shape`) and builds (or finds in the cache,
    /// `$KVPQ_SIM_CACHE`) the Verilator model of its engine.
    pub fn open(dir: &Path, shape: &ModelShape) -> Result<Self, RuntimeError> {
        let folder = open_folder(dir, shape)?;
        let sources = folder
            .manifest
            .files
            .iter()
            .filter(|f| f.name.ends_with(".v"))
            .map(|f| {
                let path = dir.join(&f.name);
                std::fs::read_to_string(&path)
                    .map(|text| SourceFile {
                        module: f.module.clone(),
                        file_name: f.name.clone(),
                        text,
                    })
                    .map_err(|e| RuntimeError::Unavailable {
                        backend: "sim",
                        reason: format!("{}: {e}", path.display()),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let design = Design {
            sources,
            manifest: folder.manifest,
        };
        Self::from_design(&design, folder.accelerator)
    }

    /// Renders the RTL of `acc` in memory and builds its model (no folder needed).
    pub fn new(acc: Accelerator) -> Result<Self, RuntimeError> {
        let design = Design::render(&acc).map_err(|e| RuntimeError::Unavailable {
            backend: "sim",
            reason: format!("generating the RTL: {e}"),
        })?;
        Self::from_design(&design, acc)
    }

    fn from_design(design: &Design, acc: Accelerator) -> Result<Self, RuntimeError> {
        let built = build_model(design, ENGINE_TOP, &default_cache()).map_err(fault)?;
        let engine = EngineSim::new(&built, &acc, 0, Stalls::NONE).map_err(fault)?;
        let heads = acc.config().engine.heads() as usize;
        Ok(Self {
            acc,
            engine,
            slots: Slots::default(),
            loaded: vec![None; heads],
            cycles: 0,
        })
    }

    /// Caps the cycles one codebook load or one search may simulate; a search past it fails
    /// with [`RuntimeError::Fault`] (the engine is reset for the next call). `None` leaves
    /// only the model's own budget, generous enough that only a hung design runs out.
    pub fn set_cycle_limit(&mut self, limit: Option<u64>) {
        self.engine.set_cycle_limit(limit);
    }

    /// Clock cycles simulated by searches so far (codebook loads included).
    pub fn cycles(&self) -> u64 {
        self.cycles
    }
}

impl Device for SimDevice {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn load_codebook(&mut self, slot: usize, codebook: QuantCodebook) -> Result<(), RuntimeError> {
        self.slots.load(&self.acc, slot, codebook)?;
        for held in &mut self.loaded {
            if *held == Some(slot) {
                *held = None; // replaced: stream it in again before the next search
            }
        }
        Ok(())
    }

    fn search(&mut self, queries: &[HeadQuery<'_>]) -> Result<Vec<QueryResult>, RuntimeError> {
        let codebooks = self.slots.check(&self.acc, queries)?;
        let start = self.engine.cycle();
        let result = run(&mut self.engine, &mut self.loaded, queries, codebooks);
        self.cycles += self.engine.cycle() - start;
        if result.is_err() {
            // A query may be stuck inside: start the next call from reset, codebooks unknown.
            self.engine.reset();
            self.loaded.fill(None);
        }
        result
    }
}

/// Runs the searches in order, in batches of back-to-back jobs; a slot's codebook is streamed
/// into its engine head first when the head holds another (after the batch's jobs that read
/// that head have run).
fn run(
    engine: &mut EngineSim,
    loaded: &mut [Option<usize>],
    queries: &[HeadQuery<'_>],
    codebooks: Vec<&QuantCodebook>,
) -> Result<Vec<QueryResult>, RuntimeError> {
    let heads = loaded.len();
    let mut out = Vec::with_capacity(queries.len());
    let mut batch: Vec<Job> = Vec::new();
    for (q, codebook) in queries.iter().zip(codebooks) {
        let head = q.slot % heads;
        if loaded[head] != Some(q.slot) {
            if batch.iter().any(|j| j.head as usize == head) {
                flush(engine, &mut batch, &mut out)?;
            }
            // A failed load leaves the head's codebook unknown.
            loaded[head] = None;
            engine
                .load_head_codebook(head as u32, codebook)
                .map_err(fault)?;
            loaded[head] = Some(q.slot);
        }
        batch.push(Job {
            query: q.query,
            beats: q.beats,
            n_tokens: q.n_tokens,
            k: q.k,
            head: head as u32,
        });
    }
    flush(engine, &mut batch, &mut out)?;
    Ok(out)
}

/// Runs the batch back to back and appends its results in order.
fn flush(
    engine: &mut EngineSim,
    batch: &mut Vec<Job>,
    out: &mut Vec<QueryResult>,
) -> Result<(), RuntimeError> {
    if batch.is_empty() {
        return Ok(());
    }
    let outcomes = engine.run(batch).map_err(fault)?;
    if outcomes.len() != batch.len() {
        return Err(RuntimeError::Fault {
            backend: "sim",
            detail: format!(
                "the engine returned {} outcomes for {} queries",
                outcomes.len(),
                batch.len()
            ),
        });
    }
    out.extend(outcomes.into_iter().map(|o| o.result));
    batch.clear();
    Ok(())
}
