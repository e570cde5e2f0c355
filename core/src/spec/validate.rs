//! The rules a description must obey, checked once. A description that passes becomes an
//! [`Accelerator`]; generators and models never re-check parameters.

use serde::Serialize;
use std::path::Path;

use super::config::{AcceleratorConfig, Platform, TopKStrategy};
use super::derived::{ceil_log2, Derived, Projection, DEFAULT_RADIX_BITS};
use super::error::{ConfigError, RuleViolation};

/// Widest accumulator accepted: the golden model, HLS and the runtime carry it in 64-bit
/// integers with room to spare, and wider MACs would not map to FPGA DSPs anyway.
pub const MAX_ACC_BITS: u32 = 48;
/// Widest score accepted: results carry scores as 32-bit signed words.
pub const MAX_SCORE_BITS: u32 = 32;
/// Largest k of the `systolic` strategy (docs/design.md section 5).
pub const MAX_SYSTOLIC_K: u32 = 256;
/// Largest `topk.radix_bits`: a pass decodes every lane's digit into 2^r - 1 bits and keeps
/// 2^r - 1 counters.
pub const MAX_RADIX_BITS: u32 = 8;
/// Largest `topk.read_beats`: the select unit's counting array is 2^r - 1 bits by
/// read_beats x lanes, so it grows with every beat read at once.
pub const MAX_READ_BEATS: u32 = 8;
/// Largest `engine.heads`: codebooks held on chip. Every KV head of every layer of a model
/// stays resident so that a layer call loads none: Llama-3-8B has 32 x 8 = 256, Llama-3-70B
/// 80 x 8 = 640.
pub const MAX_HEADS: u32 = 1024;
/// Largest `target.engines`: the kernel's AXI masters, one per engine plus the job reader,
/// stay within the 32 HBM pseudo-channels of a U55C.
pub const MAX_ENGINES: u32 = 16;
/// Token indices travel as 32-bit words; one bit is kept free for the count.
pub const MAX_TOKENS_LIMIT: u32 = 1 << 30;

/// A validated accelerator: its description and the derived view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Accelerator {
    config: AcceleratorConfig,
    derived: Derived,
}

impl Accelerator {
    /// Validates a description.
    pub fn new(config: AcceleratorConfig) -> Result<Self, ConfigError> {
        let violations = check(&config);
        if !violations.is_empty() {
            return Err(ConfigError::Invalid(violations));
        }
        let derived = Derived::of(&config);
        Ok(Self { config, derived })
    }

    /// Parses and validates TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        Self::new(AcceleratorConfig::from_toml_str(text)?)
    }

    /// Reads, parses and validates a TOML file.
    pub fn from_toml_file(path: &Path) -> Result<Self, ConfigError> {
        Self::new(AcceleratorConfig::from_toml_file(path)?)
    }

    /// The same accelerator for another target platform (`hwgen generate --target`),
    /// validated again: some rules depend on the platform. `target.engines` is dropped for
    /// a platform other than an Alveo card (it has one engine).
    pub fn retarget(&self, platform: Platform) -> Result<Self, ConfigError> {
        let mut config = self.config().clone();
        config.target.platform = platform;
        // Several engines exist only in the Alveo kernel; elsewhere the engine is one.
        if !platform.is_alveo() {
            config.target.engines = None;
        }
        Self::new(config)
    }

    /// The description as given.
    pub fn config(&self) -> &AcceleratorConfig {
        &self.config
    }

    /// Widths, packing, storage and cycle model.
    pub fn derived(&self) -> &Derived {
        &self.derived
    }

    /// Top-k the retrieval policy asks for on a context of `n_tokens` tokens: the budget
    /// minus the local window, capped by the tokens left between sinks and window.
    pub fn policy_k(&self, n_tokens: u32) -> u32 {
        self.policy_split(n_tokens).topk
    }

    /// k the engine runs with on a context of `n_tokens` tokens: the policy's k, clamped to
    /// `topk.k_max` as the engine clamps its `k` port.
    pub fn engine_k(&self, n_tokens: u32) -> u32 {
        self.policy_k(n_tokens).min(self.config.topk.k_max)
    }

    /// The cycle model's projection of one query on a context of `n_tokens` tokens at
    /// `clock_mhz`, with k from [`Self::engine_k`]; `n_tokens` is clamped to
    /// `engine.max_tokens` as the engine clamps its port.
    pub fn project(&self, n_tokens: u32, clock_mhz: f64) -> Projection {
        let n = n_tokens.min(self.config.engine.max_tokens);
        self.derived
            .cycles
            .project(u64::from(n), u64::from(self.engine_k(n)), clock_mhz)
    }

    /// How the retrieval policy splits a context of `n_tokens` tokens.
    pub fn policy_split(&self, n_tokens: u32) -> PolicySplit {
        policy_split(&self.config, n_tokens)
    }
}

/// Sink, local window, searched middle and top-k of one context (PQCache-style).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PolicySplit {
    /// Always-attended first tokens.
    pub sink: u32,
    /// Always-attended last tokens.
    pub local: u32,
    /// Tokens between sink and window: the code stream the engine scans.
    pub middle: u32,
    /// Tokens retrieved from the middle.
    pub topk: u32,
}

fn policy_split(cfg: &AcceleratorConfig, n_tokens: u32) -> PolicySplit {
    let r = &cfg.retrieval;
    let budget = (r.budget * f64::from(n_tokens)).floor() as u32;
    let local_want = (f64::from(budget) * r.local_fraction).floor() as u32;
    let sink = r.sink_tokens.min(n_tokens);
    let local = local_want.min(n_tokens - sink);
    let middle = n_tokens - sink - local;
    PolicySplit {
        sink,
        local,
        middle,
        topk: (budget - local_want).min(middle),
    }
}

/// Collects every violation of the description (empty when valid), one section at a time in
/// the order of the docs' rule table (docs/semantics.md, "Parameter rules"). A rule that needs
/// numbers from an earlier section runs only when that section is valid, so one mistake is
/// reported once.
pub fn check(cfg: &AcceleratorConfig) -> Vec<RuleViolation> {
    let mut v = Rules::default();
    check_name(cfg, &mut v);
    let pq_ok = check_pq(cfg, &mut v);
    let shape_ok = check_quant(cfg, pq_ok, &mut v);
    check_dist_unit(cfg, shape_ok, &mut v);
    check_scanner(cfg, shape_ok, &mut v);
    check_topk(cfg, &mut v);
    check_engine(cfg, shape_ok, &mut v);
    check_target(cfg, &mut v);
    check_retrieval(cfg, &mut v);
    v.0
}

/// Longest `name`: it prefixes every module and names folders, so it must stay readable in
/// tool logs and well inside file-name limits.
pub const MAX_NAME_LEN: usize = 64;
/// Most query heads per KV head: real models group at most a few dozen; the golden model and
/// the simulator hold `gqa_group` query vectors per decoding step.
pub const MAX_GQA_GROUP: u32 = 1024;
/// Slowest clock accepted (MHz): below it every projection rounds to zero tokens per second.
pub const MIN_CLOCK_MHZ: f64 = 1.0;
/// Fastest clock accepted (MHz).
pub const MAX_CLOCK_MHZ: f64 = 1000.0;

fn check_name(cfg: &AcceleratorConfig, v: &mut Rules) {
    let name = &cfg.name;
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    // Echo at most the start of a long name: the message must stay readable.
    let shown = if name.len() > MAX_NAME_LEN {
        let head: String = name.chars().take(16).collect();
        format!("{head:?}... ({} bytes)", name.len())
    } else {
        format!("{name:?}")
    };
    v.require(
        ok,
        "name",
        &shown,
        "must start with a letter and hold only letters, digits, '_' and '-' \
         (it names modules and folders)",
    );
    v.require(
        name.len() <= MAX_NAME_LEN,
        "name",
        &shown,
        format!("must be at most {MAX_NAME_LEN} characters (it names modules and folders)"),
    );
}

/// PQ shape; true when it is valid.
fn check_pq(cfg: &AcceleratorConfig, v: &mut Rules) -> bool {
    let pq = &cfg.pq;
    let before = v.0.len();
    v.range("pq.head_dim", pq.head_dim, 1, 4096);
    v.range("pq.m", pq.m, 1, 1024);
    if pq.m >= 1 && pq.head_dim >= 1 {
        v.require(
            pq.head_dim.is_multiple_of(pq.m),
            "pq.m",
            pq.m,
            format!(
                "must divide pq.head_dim = {} (head_dim % m == 0)",
                pq.head_dim
            ),
        );
    }
    v.range("pq.code_bits", pq.code_bits, 1, 8);
    v.0.len() == before
}

/// Fixed-point widths; true when they and the PQ shape are valid (the datapath widths can be
/// derived).
fn check_quant(cfg: &AcceleratorConfig, pq_ok: bool, v: &mut Rules) -> bool {
    let (pq, q) = (&cfg.pq, &cfg.quant);
    let before = v.0.len();
    v.range("quant.query_bits", q.query_bits, 2, 24);
    v.range("quant.centroid_bits", q.centroid_bits, 2, 24);
    v.range("quant.lut_bits", q.lut_bits, 2, 32);
    if !pq_ok || v.0.len() != before {
        return false;
    }
    let sub_log = ceil_log2(u64::from(pq.head_dim / pq.m));
    let acc_bits = q.query_bits + q.centroid_bits + sub_log;
    v.require(
        acc_bits <= MAX_ACC_BITS,
        "quant.query_bits",
        q.query_bits,
        format!(
            "accumulator width query_bits + centroid_bits + ceil(log2(head_dim/m)) = \
             {} + {} + {sub_log} = {acc_bits} exceeds {MAX_ACC_BITS} bits",
            q.query_bits, q.centroid_bits
        ),
    );
    v.require(
        q.lut_bits <= acc_bits,
        "quant.lut_bits",
        q.lut_bits,
        format!(
            "must not exceed the accumulator width {acc_bits} \
             (wider LUT entries would only repeat the sign bit)"
        ),
    );
    let score_bits = q.lut_bits + ceil_log2(u64::from(pq.m));
    v.require(
        score_bits <= MAX_SCORE_BITS,
        "quant.lut_bits",
        q.lut_bits,
        format!("score width lut_bits + ceil(log2 m) = {score_bits} exceeds {MAX_SCORE_BITS} bits"),
    );
    true
}

/// Distance unit: the MACs of a group share one subspace's query sub-vector, so a group
/// (`macs` consecutive centroids) must not straddle two subspaces.
fn check_dist_unit(cfg: &AcceleratorConfig, shape_ok: bool, v: &mut Rules) {
    if !shape_ok {
        return;
    }
    let k = 1u32 << cfg.pq.code_bits;
    let macs = cfg.dist_unit.macs;
    v.require(
        macs.is_power_of_two() && macs <= k,
        "dist_unit.macs",
        macs,
        format!(
            "must be a power of two no larger than K = 2^code_bits = {k} \
             (the MACs of a group share one subspace)"
        ),
    );
}

/// Scanner: its lanes split a beat into equal groups of tokens.
fn check_scanner(cfg: &AcceleratorConfig, shape_ok: bool, v: &mut Rules) {
    let lanes = cfg.scanner.lanes;
    v.require(lanes >= 1, "scanner.lanes", lanes, "must be at least 1");
    let beat = cfg.engine.beat_bits;
    let token_bits = cfg.pq.m * cfg.pq.code_bits;
    // A beat that holds no token is `engine.beat_bits`'s violation (check_engine).
    if !shape_ok || lanes == 0 || beat < token_bits {
        return;
    }
    let per_beat = beat / token_bits;
    v.require(
        lanes <= per_beat,
        "scanner.lanes",
        lanes,
        format!(
            "does not fit the beat: a {beat}-bit beat holds only {per_beat} tokens \
             of {token_bits} bits"
        ),
    );
    v.require(
        lanes > per_beat || per_beat.is_multiple_of(lanes),
        "scanner.lanes",
        lanes,
        format!("must divide the {per_beat} tokens of a beat, or lanes would idle on every beat"),
    );
}

/// Top-k unit.
fn check_topk(cfg: &AcceleratorConfig, v: &mut Rules) {
    let k_max = cfg.topk.k_max;
    v.require(k_max >= 1, "topk.k_max", k_max, "must be at least 1");
    v.require(
        k_max <= cfg.engine.max_tokens,
        "topk.k_max",
        k_max,
        format!(
            "must not exceed engine.max_tokens = {}",
            cfg.engine.max_tokens
        ),
    );
    match cfg.topk.strategy {
        TopKStrategy::Systolic => {
            v.require(
                k_max <= MAX_SYSTOLIC_K,
                "topk.k_max",
                k_max,
                format!(
                    "the systolic strategy holds at most {MAX_SYSTOLIC_K} entries per lane; \
                     use strategy = \"select\" for large k"
                ),
            );
            if let Some(r) = cfg.topk.radix_bits {
                v.push(
                    "topk.radix_bits",
                    r,
                    "applies only to strategy = \"select\"".to_string(),
                );
            }
            if let Some(b) = cfg.topk.read_beats {
                v.push(
                    "topk.read_beats",
                    b,
                    "applies only to strategy = \"select\"".to_string(),
                );
            }
        }
        TopKStrategy::Select => {
            let r = cfg.topk.radix_bits.unwrap_or(DEFAULT_RADIX_BITS);
            v.range("topk.radix_bits", r, 1, MAX_RADIX_BITS);
            v.range(
                "topk.read_beats",
                cfg.topk.read_beats.unwrap_or(1),
                1,
                MAX_READ_BEATS,
            );
        }
    }
}

/// Engine limits and the code stream.
fn check_engine(cfg: &AcceleratorConfig, shape_ok: bool, v: &mut Rules) {
    let beat = cfg.engine.beat_bits;
    v.require(
        beat.is_power_of_two() && (32..=4096).contains(&beat),
        "engine.beat_bits",
        beat,
        "must be a power of two in 32..=4096 (an AXI/HBM data width)",
    );
    let token_bits = cfg.pq.m * cfg.pq.code_bits;
    if shape_ok {
        v.require(
            beat >= token_bits,
            "engine.beat_bits",
            beat,
            format!("cannot hold one token of m * code_bits = {token_bits} bits"),
        );
    }
    if cfg.target.platform.is_alveo() {
        v.require(
            beat <= 1024,
            "engine.beat_bits",
            beat,
            format!(
                "must be at most 1024 for target.platform = {}: the kernel reads one beat per \
                 AXI4 transfer and Vitis masters are at most 1024 bits wide",
                cfg.target.platform
            ),
        );
    }
    v.range("engine.heads", cfg.engine.heads(), 1, MAX_HEADS);
    v.range(
        "engine.max_tokens",
        cfg.engine.max_tokens,
        1,
        MAX_TOKENS_LIMIT,
    );
}

/// Target clock, and whether the platform can hold the engine's memories. The capacity check
/// runs only on an otherwise valid description: it needs the derived storage.
fn check_target(cfg: &AcceleratorConfig, v: &mut Rules) {
    let mhz = cfg.target.clock_mhz;
    let engines = cfg.target.engines();
    v.range("target.engines", engines, 1, MAX_ENGINES);
    if cfg.target.platform.is_alveo() && v.0.is_empty() {
        let stripes = crate::interface::alveo::code_stripes(cfg);
        let channels = 1 + engines * stripes;
        v.require(
            channels <= crate::interface::alveo::HBM_CHANNELS,
            "target.engines",
            engines,
            format!(
                "the kernel needs 1 + engines x {stripes} code stripes = {channels} HBM \
                 pseudo-channels, the card has {}",
                crate::interface::alveo::HBM_CHANNELS
            ),
        );
    }
    v.require(
        engines == 1 || cfg.target.platform.is_alveo(),
        "target.engines",
        engines,
        format!(
            "several engines exist only in the Alveo kernel; target.platform = {} has one",
            cfg.target.platform
        ),
    );
    v.require(
        mhz.is_finite() && (MIN_CLOCK_MHZ..=MAX_CLOCK_MHZ).contains(&mhz),
        "target.clock_mhz",
        num(mhz),
        format!("must be a clock in [{MIN_CLOCK_MHZ}, {MAX_CLOCK_MHZ}] MHz"),
    );
    if v.0.is_empty() {
        check_capacity(cfg, v);
    }
}

/// On-chip resources of a platform's device that the engine's storage lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceCapacity {
    /// The device, in words (part number and memory blocks).
    pub device: &'static str,
    /// Block memory bits (codebooks, LUTs, the `select` score buffer).
    pub memory_bits: u64,
    /// Flip-flops (the `systolic` priority queues are registers).
    pub flip_flops: u64,
}

/// DP16KD block RAMs (18 Kbit each) of the LFE5U-85F, the ULX3S's ECP5.
pub const LFE5U_85F_DP16KD: u64 = 208;
/// Flip-flops (and LUT4s) of the LFE5U-85F.
pub const LFE5U_85F_FF: u64 = 83_640;

/// What the device of `platform` holds; `None` for `generic` (no device, no limit).
///
/// ECP5: the ULX3S's LFE5U-85F has 208 DP16KD blocks of 18 Kbit and 83,640 flip-flops
/// (Lattice FPGA-DS-02012). U280 and U55C both carry an XCU280-class die with 2,016 RAMB36
/// (36 Kbit) and 960 URAM (288 Kbit) blocks and 2,607,360 flip-flops (AMD DS963). The whole
/// device is counted: a description refused here cannot fit even before the shell takes
/// its share.
pub fn device_capacity(platform: Platform) -> Option<DeviceCapacity> {
    const KBIT: u64 = 1024;
    match platform {
        Platform::Generic => None,
        Platform::Ecp5 => Some(DeviceCapacity {
            device: "LFE5U-85F: 208 DP16KD x 18 Kbit",
            memory_bits: LFE5U_85F_DP16KD * 18 * KBIT,
            flip_flops: LFE5U_85F_FF,
        }),
        Platform::U280 | Platform::U55c => Some(DeviceCapacity {
            device: "XCU280: 2016 RAMB36 x 36 Kbit + 960 URAM x 288 Kbit",
            memory_bits: 2016 * 36 * KBIT + 960 * 288 * KBIT,
            flip_flops: 2_607_360,
        }),
    }
}

fn check_capacity(cfg: &AcceleratorConfig, v: &mut Rules) {
    let Some(cap) = device_capacity(cfg.target.platform) else {
        return;
    };
    let s = Derived::of(cfg).storage;
    let platform = cfg.target.platform;
    let engines = u64::from(cfg.target.engines());
    let memory = engines * (s.codebook_bits + 2 * s.lut_bits + s.score_buffer_bits);
    if memory > cap.memory_bits {
        // Name the field that drives the largest memory: that is the one to lower.
        let field = if s.score_buffer_bits >= s.codebook_bits.max(2 * s.lut_bits) {
            "engine.max_tokens"
        } else {
            "pq.code_bits"
        };
        let value = match field {
            "engine.max_tokens" => cfg.engine.max_tokens,
            _ => cfg.pq.code_bits,
        };
        v.push(
            field,
            value,
            format!(
                "the engines need {memory} bits of on-chip memory (target.engines = \
                 {engines} x (two score banks of engine.max_tokens scores = {}, codebooks = \
                 {}, two LUTs = {})) but target.platform = {platform} holds {} ({})",
                s.score_buffer_bits,
                s.codebook_bits,
                2 * s.lut_bits,
                cap.memory_bits,
                cap.device
            ),
        );
    }
    if s.queue_bits > cap.flip_flops {
        v.push(
            "topk.k_max",
            cfg.topk.k_max,
            format!(
                "the systolic queues need (scanner.lanes + 1) x topk.k_max x (score + index bits) = \
                 {} flip-flops but target.platform = {platform} has {}",
                s.queue_bits, cap.flip_flops
            ),
        );
    }
}

/// Retrieval policy; when it is valid, the k it asks for at `engine.max_tokens` must be at
/// least 1 (a recall of nothing is meaningless) and at most `topk.k_max`.
fn check_retrieval(cfg: &AcceleratorConfig, v: &mut Rules) {
    let r = &cfg.retrieval;
    let before = v.0.len();
    v.require(
        (1..=MAX_GQA_GROUP).contains(&r.gqa_group),
        "retrieval.gqa_group",
        r.gqa_group,
        format!("must be at least 1 query head per KV head and at most {MAX_GQA_GROUP}"),
    );
    v.require(
        r.budget.is_finite() && r.budget > 0.0 && r.budget <= 1.0,
        "retrieval.budget",
        num(r.budget),
        "must be a fraction of the context in (0, 1]",
    );
    v.require(
        r.local_fraction.is_finite() && (0.0..=1.0).contains(&r.local_fraction),
        "retrieval.local_fraction",
        num(r.local_fraction),
        "must be a fraction of the budget in [0, 1]",
    );
    let n = cfg.engine.max_tokens;
    v.require(
        r.sink_tokens < n,
        "retrieval.sink_tokens",
        r.sink_tokens,
        format!("must be smaller than engine.max_tokens = {n}"),
    );
    if v.0.len() != before || n == 0 {
        return;
    }
    let split = policy_split(cfg, n);
    let budget = (r.budget * f64::from(n)).floor() as u32;
    let local_want = (f64::from(budget) * r.local_fraction).floor() as u32;
    if split.topk == 0 {
        // Blame the knob that zeroed k: no budget, a budget all local, or no middle left.
        let (field, value) = if budget == 0 {
            ("retrieval.budget", num(r.budget))
        } else if local_want == budget {
            ("retrieval.local_fraction", num(r.local_fraction))
        } else {
            ("retrieval.sink_tokens", r.sink_tokens.to_string())
        };
        v.push(
            field,
            value,
            format!(
                "the retrieval policy retrieves nothing at engine.max_tokens = {n}: budget \
                 floor({} x {n}) = {budget} tokens, local window floor({budget} x {}) = \
                 {local_want}, top-k {budget} - {local_want} = {} capped by the middle \
                 {n} - {} sinks - {} local = {} gives k = 0",
                num(r.budget),
                num(r.local_fraction),
                budget - local_want,
                split.sink,
                split.local,
                split.middle
            ),
        );
    }
    v.require(
        split.topk <= cfg.topk.k_max,
        "topk.k_max",
        cfg.topk.k_max,
        format!(
            "the retrieval policy (budget {}, local_fraction {}) asks for k = {} at \
             engine.max_tokens = {n}",
            num(r.budget),
            num(r.local_fraction),
            split.topk
        ),
    );
}

/// A float as a person reads it: `1e-300`, not three hundred zeros.
fn num(x: f64) -> String {
    if x != 0.0 && x.is_finite() && !(1e-4..1e9).contains(&x.abs()) {
        format!("{x:e}")
    } else {
        x.to_string()
    }
}

/// Accumulates violations with their field and rule.
#[derive(Default)]
struct Rules(Vec<RuleViolation>);

impl Rules {
    fn push(&mut self, field: &'static str, value: impl ToString, rule: String) {
        self.0.push(RuleViolation {
            field,
            value: value.to_string(),
            rule,
        });
    }

    fn require(
        &mut self,
        ok: bool,
        field: &'static str,
        value: impl ToString,
        rule: impl Into<String>,
    ) {
        if !ok {
            self.push(field, value, rule.into());
        }
    }

    fn range(&mut self, field: &'static str, value: u32, lo: u32, hi: u32) {
        self.require(
            (lo..=hi).contains(&value),
            field,
            value,
            format!("must be in {lo}..={hi}"),
        );
    }
}
