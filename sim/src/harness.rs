//! The layer every driver stands on: a loaded model whose ports are resolved by name from the
//! interface description (widths checked against the model), a clock with a cycle count, one
//! seeded source of stalls, one cycle budget, and valid/ready handshakes.
//!
//! Drivers resolve names to [`PortId`]s once and use those in their per-cycle loops; the
//! by-name accessors ([`Harness::drive`], [`Harness::sample`]) suit tests that poke a unit.

use std::collections::HashMap;
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::build::BuiltModel;
use crate::error::{Result, SimError};
use crate::model::Model;
use crate::ports::PortSpec;
use kvpq_core::interface::Port;

/// How often the environment stalls: the probability that it offers data on an input stream
/// in a cycle, and that it accepts a result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stalls {
    /// Probability that an input stream is valid when the driver has data.
    pub input_valid: f64,
    /// Probability that the result stream is ready.
    pub output_ready: f64,
}

impl Stalls {
    /// No stalls at all.
    pub const NONE: Self = Self {
        input_valid: 1.0,
        output_ready: 1.0,
    };

    /// The slower of the two rates, floored so a budget stays finite.
    fn rate(&self) -> f64 {
        self.input_valid.min(self.output_ready).max(0.05)
    }
}

/// Cycles of slack every budget starts with: reset, pipeline fill, protocol overhead.
const BUDGET_BASE: u64 = 10_000;
/// Slack factor on the work a budget covers: only a hung design should ever run out.
const BUDGET_FACTOR: u64 = 20;

/// A port of the model, resolved by name and checked against the description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortId(usize);

/// A valid/ready stream the harness drives: it raises `valid` with `data`, the design
/// answers `ready`.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    /// Valid, driven by the harness.
    pub valid: PortId,
    /// Ready, driven by the design.
    pub ready: PortId,
    /// Payload, driven by the harness.
    pub data: PortId,
}

/// A valid/ready stream the design drives: it raises `valid`, the harness answers `ready`
/// (payload ports are read by the driver, since streams carry different fields).
#[derive(Debug, Clone, Copy)]
pub struct Sink {
    /// Valid, driven by the design.
    pub valid: PortId,
    /// Ready, driven by the harness.
    pub ready: PortId,
}

/// A model with named ports, a clock, stalls and handshakes.
pub struct Harness {
    model: Model,
    names: HashMap<String, usize>,
    rng: ChaCha8Rng,
    stalls: Stalls,
    cycle: u64,
    cycle_limit: Option<u64>,
}

impl Harness {
    /// Loads `built` and resolves the `described` ports in it: each must exist in the model
    /// with the same direction and width. Only described ports can be named later.
    pub fn new(built: &BuiltModel, described: &[Port], seed: u64, stalls: Stalls) -> Result<Self> {
        let model = Model::load(built)?;
        let mut names = HashMap::with_capacity(described.len());
        for d in described {
            let want = PortSpec::from(d);
            let id = model.port(&d.name)?;
            let have = &model.ports()[id];
            if *have != want {
                return Err(SimError::Interface {
                    module: built.top.clone(),
                    what: format!(
                        "port `{}`: described as {} bits ({}), the model has {} bits ({})",
                        d.name,
                        want.width,
                        direction(want.input),
                        have.width,
                        direction(have.input)
                    ),
                });
            }
            names.insert(d.name.clone(), id);
        }
        Ok(Self::with_names(model, names, seed, stalls))
    }

    /// Loads `built` with every port its model has: for internal units, which the interface
    /// description does not cover, so their ports come from their Verilog.
    pub fn unit(built: &BuiltModel, seed: u64, stalls: Stalls) -> Result<Self> {
        let model = Model::load(built)?;
        let names = model
            .ports()
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.clone(), i))
            .collect();
        Ok(Self::with_names(model, names, seed, stalls))
    }

    fn with_names(model: Model, names: HashMap<String, usize>, seed: u64, stalls: Stalls) -> Self {
        Self {
            model,
            names,
            rng: ChaCha8Rng::seed_from_u64(seed),
            stalls,
            cycle: 0,
            cycle_limit: None,
        }
    }

    /// The port called `name`.
    pub fn port(&self, name: &str) -> Result<PortId> {
        self.names
            .get(name)
            .map(|&i| PortId(i))
            .ok_or_else(|| SimError::Interface {
                module: self.model.top().to_string(),
                what: format!("no port `{name}`"),
            })
    }

    /// The stream `<prefix>_valid`, `<prefix>_ready`, `<prefix>_data` the harness drives.
    pub fn source(&self, prefix: &str) -> Result<Source> {
        Ok(Source {
            valid: self.port(&format!("{prefix}_valid"))?,
            ready: self.port(&format!("{prefix}_ready"))?,
            data: self.port(&format!("{prefix}_data"))?,
        })
    }

    /// The stream `<prefix>_valid`, `<prefix>_ready` the design drives.
    pub fn sink(&self, prefix: &str) -> Result<Sink> {
        Ok(Sink {
            valid: self.port(&format!("{prefix}_valid"))?,
            ready: self.port(&format!("{prefix}_ready"))?,
        })
    }

    /// Name of a port.
    pub fn name(&self, port: PortId) -> &str {
        &self.model.ports()[port.0].name
    }

    /// Width of a port in bits.
    pub fn width(&self, port: PortId) -> u32 {
        self.model.ports()[port.0].width
    }

    /// Drives an input of at most 64 bits.
    pub fn set(&mut self, port: PortId, value: u64) {
        self.model.set_u64(port.0, value);
    }

    /// Drives an input with little-endian 32-bit words.
    pub fn set_words(&mut self, port: PortId, words: &[u32]) {
        self.model.set(port.0, words);
    }

    /// Reads a port of at most 64 bits as it is now (no settling: see [`Self::eval`]).
    pub fn get(&self, port: PortId) -> u64 {
        self.model.get_u64(port.0)
    }

    /// Reads a port into little-endian 32-bit words as it is now.
    pub fn get_words(&self, port: PortId) -> Vec<u32> {
        let mut words = vec![0; self.model.ports()[port.0].words()];
        self.model.get(port.0, &mut words);
        words
    }

    /// Drives input `name` (at most 64 bits).
    pub fn drive(&mut self, name: &str, value: u64) -> Result<()> {
        let port = self.port(name)?;
        self.set(port, value);
        Ok(())
    }

    /// Drives input `name` with little-endian 32-bit words.
    pub fn drive_words(&mut self, name: &str, words: &[u32]) -> Result<()> {
        let port = self.port(name)?;
        self.set_words(port, words);
        Ok(())
    }

    /// Settles the model, then reads `name` (at most 64 bits).
    pub fn sample(&mut self, name: &str) -> Result<u64> {
        let port = self.port(name)?;
        self.eval();
        Ok(self.get(port))
    }

    /// Settles the model, then reads `name` as little-endian 32-bit words.
    pub fn sample_words(&mut self, name: &str) -> Result<Vec<u32>> {
        let port = self.port(name)?;
        self.eval();
        Ok(self.get_words(port))
    }

    /// Drives every input of the model with zeros.
    pub fn zero_inputs(&mut self) {
        for (i, p) in self.model.ports().to_vec().iter().enumerate() {
            if p.input {
                self.model.set(i, &vec![0; p.words()]);
            }
        }
    }

    /// Settles combinational logic after inputs changed.
    pub fn eval(&mut self) {
        self.model.eval();
    }

    /// One clock cycle.
    pub fn tick(&mut self) {
        self.model.tick();
        self.cycle += 1;
    }

    /// Cycles simulated so far.
    pub fn cycle(&self) -> u64 {
        self.cycle
    }

    /// Holds `port` at `level` for `cycles` clock cycles (each one `step`), then releases it;
    /// the model is settled after both changes.
    pub fn pulse(
        &mut self,
        port: PortId,
        level: u64,
        cycles: u64,
        mut step: impl FnMut(&mut Self),
    ) {
        self.set(port, level);
        self.eval();
        for _ in 0..cycles {
            step(self);
        }
        self.set(port, level ^ 1);
        self.eval();
    }

    /// Writes a VCD trace of everything from now on.
    pub fn trace(&mut self, path: &Path) -> Result<()> {
        self.model.trace(path)
    }

    /// The stall pattern.
    pub fn stalls(&self) -> Stalls {
        self.stalls
    }

    /// Changes the stall pattern.
    pub fn set_stalls(&mut self, stalls: Stalls) {
        self.stalls = stalls;
    }

    /// True with probability `p`; certain events (`p >= 1`) draw nothing, so a run without
    /// stalls does not depend on the seed.
    pub fn chance(&mut self, p: f64) -> bool {
        p >= 1.0 || self.rng.random_bool(p.max(0.0))
    }

    /// The harness's random source, for environment choices other than stalls (latencies,
    /// buffer placement); drawing from it shifts later stalls, like any other draw.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// The cycle by which `work` cycles of the design's own work must be done under the
    /// current stalls: generous slack, stretched by the slower stall rate, so that only a
    /// design that stopped making progress runs out.
    /// A cycle limit set with [`Self::set_cycle_limit`] caps it.
    pub fn deadline(&self, work: u64) -> u64 {
        let budget = (BUDGET_BASE + BUDGET_FACTOR * work) as f64 / self.stalls.rate();
        let budget = (budget as u64).min(self.cycle_limit.unwrap_or(u64::MAX));
        self.cycle.saturating_add(budget)
    }

    /// Caps every later budget at `limit` cycles (`None`: only the work-derived budget), so
    /// a caller can bound how long one operation may simulate.
    pub fn set_cycle_limit(&mut self, limit: Option<u64>) {
        self.cycle_limit = limit;
    }

    /// A timeout error if the clock is past `deadline`; `what` names what the driver waits for.
    pub fn check(&self, deadline: u64, what: impl FnOnce() -> String) -> Result<()> {
        if self.cycle > deadline {
            return Err(SimError::Timeout {
                cycles: self.cycle,
                what: what(),
            });
        }
        Ok(())
    }

    /// Raises `valid` of `stream` this cycle when the driver `has` data, as the stalls allow;
    /// returns whether it is raised.
    pub fn offer(&mut self, stream: &Source, has: bool) -> bool {
        let valid = has && self.chance(self.stalls.input_valid);
        self.set(stream.valid, u64::from(valid));
        valid
    }

    /// Raises `ready` of `stream` this cycle as the stalls allow; returns whether it is raised.
    pub fn accept(&mut self, stream: &Sink) -> bool {
        let ready = self.chance(self.stalls.output_ready);
        self.set(stream.ready, u64::from(ready));
        ready
    }

    /// Whether a handshake half raised by the harness (`mine`) meets the design's half on
    /// `theirs` (read as it is now: settle first when it may depend on this cycle's inputs).
    pub fn fires(&self, mine: bool, theirs: PortId) -> bool {
        mine && self.get(theirs) == 1
    }

    /// Sends one transfer of `words` on `stream`: offers it each cycle as the stalls allow
    /// until the design takes it, calling `step` to clock each cycle. `valid` stays as the
    /// last cycle left it; the caller lowers it after its last transfer.
    pub fn send(
        &mut self,
        stream: &Source,
        words: &[u32],
        deadline: u64,
        mut step: impl FnMut(&mut Self),
    ) -> Result<()> {
        self.set_words(stream.data, words);
        loop {
            let valid = self.offer(stream, true);
            self.eval();
            let fire = self.fires(valid, stream.ready);
            step(self);
            if fire {
                return Ok(());
            }
            self.check(deadline, || self.name(stream.ready).to_string())?;
        }
    }
}

fn direction(input: bool) -> &'static str {
    if input {
        "input"
    } else {
        "output"
    }
}
