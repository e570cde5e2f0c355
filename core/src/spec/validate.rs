//! The rules a description must obey, checked once. A description that passes becomes an
//! [`Accelerator`]; generators and models never re-check parameters.

use serde::Serialize;
use std::path::Path;

use super::config::{AcceleratorConfig, Platform, TopKStrategy};
use super::derived::{ceil_log2, Derived, DEFAULT_RADIX_BITS};
use super::error::{ConfigError, RuleViolation};

/// Widest accumulator accepted: the golden model, HLS and the runtime carry it in 64-bit
/// integers with room to spare, and wider MACs would not map to FPGA DSPs anyway.
pub const MAX_ACC_BITS: u32 = 48;
/// Widest score accepted: results carry scores as 32-bit signed words.
pub const MAX_SCORE_BITS: u32 = 32;
/// Largest k of the `systolic` strategy (docs/design.md section 5).
pub const MAX_SYSTOLIC_K: u32 = 256;
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
    /// validated again: some rules depend on the platform.
    pub fn retarget(&self, platform: Platform) -> Result<Self, ConfigError> {
        let mut config = self.config().clone();
        config.target.platform = platform;
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

/// Collects every violation of the description (empty when valid).
pub fn check(cfg: &AcceleratorConfig) -> Vec<RuleViolation> {
    let mut v = Rules::default();
    let pq = &cfg.pq;
    let q = &cfg.quant;

    let name_ok = cfg
        .name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && cfg
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    v.require(
        name_ok,
        "name",
        format!("{:?}", cfg.name),
        "must start with a letter and hold only letters, digits, '_' and '-' \
         (it names modules and folders)",
    );

    // PQ shape.
    let before_shape = v.0.len();
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

    // Widths.
    v.range("quant.query_bits", q.query_bits, 2, 24);
    v.range("quant.centroid_bits", q.centroid_bits, 2, 24);
    v.range("quant.lut_bits", q.lut_bits, 2, 32);
    let shape_ok = v.0.len() == before_shape;
    if shape_ok {
        let sub_dim = pq.head_dim / pq.m;
        let acc_bits = q.query_bits + q.centroid_bits + ceil_log2(u64::from(sub_dim));
        v.require(
            acc_bits <= MAX_ACC_BITS,
            "quant.query_bits",
            q.query_bits,
            format!(
                "accumulator width query_bits + centroid_bits + ceil(log2(head_dim/m)) = \
                 {} + {} + {} = {acc_bits} exceeds {MAX_ACC_BITS} bits",
                q.query_bits,
                q.centroid_bits,
                ceil_log2(u64::from(sub_dim))
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
            format!(
                "score width lut_bits + ceil(log2 m) = {score_bits} exceeds {MAX_SCORE_BITS} bits"
            ),
        );
    }

    // Distance unit: the MACs of a group share one subspace's query sub-vector, so a group
    // (macs consecutive centroids) must not straddle two subspaces.
    if shape_ok {
        let k = 1u32 << pq.code_bits;
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

    // Engine and code stream.
    let beat = cfg.engine.beat_bits;
    v.require(
        beat.is_power_of_two() && (32..=4096).contains(&beat),
        "engine.beat_bits",
        beat,
        "must be a power of two in 32..=4096 (an AXI/HBM data width)",
    );
    v.range(
        "engine.max_tokens",
        cfg.engine.max_tokens,
        1,
        MAX_TOKENS_LIMIT,
    );

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

    // Scanner.
    v.require(
        cfg.scanner.lanes >= 1,
        "scanner.lanes",
        cfg.scanner.lanes,
        "must be at least 1",
    );
    if shape_ok && cfg.scanner.lanes >= 1 {
        let token_bits = pq.m * pq.code_bits;
        let per_beat = beat / token_bits;
        if per_beat == 0 {
            v.push(
                "engine.beat_bits",
                beat,
                format!("cannot hold one token of m * code_bits = {token_bits} bits"),
            );
        } else {
            v.require(
                cfg.scanner.lanes <= per_beat,
                "scanner.lanes",
                cfg.scanner.lanes,
                format!(
                    "does not fit the beat: a {beat}-bit beat holds only {per_beat} tokens \
                     of {token_bits} bits"
                ),
            );
            v.require(
                cfg.scanner.lanes > per_beat || per_beat.is_multiple_of(cfg.scanner.lanes),
                "scanner.lanes",
                cfg.scanner.lanes,
                format!(
                    "must divide the {per_beat} tokens of a beat, or lanes would idle on \
                     every beat"
                ),
            );
        }
    }

    // Top-k.
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
        }
        TopKStrategy::Select => {
            let r = cfg.topk.radix_bits.unwrap_or(DEFAULT_RADIX_BITS);
            v.range("topk.radix_bits", r, 1, 4);
        }
    }

    // Target.
    let mhz = cfg.target.clock_mhz;
    v.require(
        mhz.is_finite() && mhz > 0.0 && mhz <= 1000.0,
        "target.clock_mhz",
        mhz,
        "must be a clock in (0, 1000] MHz",
    );

    // Retrieval policy.
    let r = &cfg.retrieval;
    let before_policy = v.0.len();
    v.require(
        r.gqa_group >= 1,
        "retrieval.gqa_group",
        r.gqa_group,
        "must be at least 1 query head per KV head",
    );
    v.require(
        r.budget.is_finite() && r.budget > 0.0 && r.budget <= 1.0,
        "retrieval.budget",
        r.budget,
        "must be a fraction of the context in (0, 1]",
    );
    v.require(
        r.local_fraction.is_finite() && (0.0..=1.0).contains(&r.local_fraction),
        "retrieval.local_fraction",
        r.local_fraction,
        "must be a fraction of the budget in [0, 1]",
    );
    v.require(
        r.sink_tokens < cfg.engine.max_tokens,
        "retrieval.sink_tokens",
        r.sink_tokens,
        format!(
            "must be smaller than engine.max_tokens = {}",
            cfg.engine.max_tokens
        ),
    );
    if v.0.len() == before_policy && cfg.engine.max_tokens >= 1 {
        let split = policy_split(cfg, cfg.engine.max_tokens);
        v.require(
            split.topk <= k_max,
            "topk.k_max",
            k_max,
            format!(
                "the retrieval policy (budget {}, local_fraction {}) asks for k = {} at \
                 engine.max_tokens = {}",
                r.budget, r.local_fraction, split.topk, cfg.engine.max_tokens
            ),
        );
    }
    v.0
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
