//! The accelerator description (DSL): plain config data, typed builders, validation and the
//! derived view every later stage reads.

mod builder;
mod config;
mod derived;
mod error;
mod validate;

pub use builder::AcceleratorBuilder;
pub use config::{
    AcceleratorConfig, DistUnitConfig, EngineConfig, Platform, PqConfig, QuantConfig,
    RetrievalConfig, ScannerConfig, TargetConfig, TopKConfig, TopKStrategy, MAX_DESCRIPTION_BYTES,
};
pub(crate) use derived::one;
pub use derived::{
    bit_length, ceil_log2, unsigned_bits, CodeLayout, CycleModel, Derived, Projection, Storage,
    Widths, DEFAULT_RADIX_BITS,
};
pub use error::{ConfigError, RuleViolation};
pub use validate::{
    check, device_capacity, Accelerator, DeviceCapacity, PolicySplit, LFE5U_85F_DP16KD,
    LFE5U_85F_FF, MAX_ACC_BITS, MAX_CLOCK_MHZ, MAX_GQA_GROUP, MAX_NAME_LEN, MAX_RADIX_BITS,
    MAX_READ_BEATS, MAX_SCORE_BITS, MAX_SYSTOLIC_K, MAX_TOKENS_LIMIT, MIN_CLOCK_MHZ,
};
