//! Every rule of the description refuses a bad value with a message that names the field and
//! the rule.

use kvpq_core::spec::{Accelerator, AcceleratorConfig, TopKStrategy};

/// A valid description (the PQCache reference shape) that each case breaks in one place.
const BASE: &str = r#"
name = "base"
[pq]
head_dim = 128
m = 2
code_bits = 6
[quant]
query_bits = 8
centroid_bits = 8
lut_bits = 16
[dist_unit]
macs = 32
[scanner]
lanes = 42
[topk]
strategy = "select"
k_max = 8192
[engine]
max_tokens = 131072
beat_bits = 512
[target]
platform = "u55c"
clock_mhz = 250.0
[retrieval]
gqa_group = 4
sink_tokens = 32
budget = 0.1
local_fraction = 0.5
"#;

fn base() -> AcceleratorConfig {
    AcceleratorConfig::from_toml_str(BASE).expect("base parses")
}

type Edit = fn(&mut AcceleratorConfig);

/// (what is broken, the edit, the field the message must name, words the message must hold)
const RULE_CASES: &[(&str, Edit, &str, &str)] = &[
    (
        "name empty",
        |c| c.name.clear(),
        "name",
        "must start with a letter",
    ),
    (
        "name with a slash",
        |c| c.name = "a/b".into(),
        "name",
        "only letters, digits",
    ),
    (
        "head_dim zero",
        |c| c.pq.head_dim = 0,
        "pq.head_dim",
        "must be in 1..=4096",
    ),
    ("m zero", |c| c.pq.m = 0, "pq.m", "must be in 1..=1024"),
    (
        "m does not divide head_dim",
        |c| c.pq.m = 3,
        "pq.m",
        "must divide pq.head_dim = 128",
    ),
    (
        "code_bits zero",
        |c| c.pq.code_bits = 0,
        "pq.code_bits",
        "must be in 1..=8",
    ),
    (
        "code_bits above 8",
        |c| c.pq.code_bits = 9,
        "pq.code_bits",
        "must be in 1..=8",
    ),
    (
        "query_bits 1",
        |c| c.quant.query_bits = 1,
        "quant.query_bits",
        "must be in 2..=24",
    ),
    (
        "centroid_bits 30",
        |c| c.quant.centroid_bits = 30,
        "quant.centroid_bits",
        "must be in 2..=24",
    ),
    (
        "accumulator overflows",
        |c| {
            c.quant.query_bits = 24;
            c.quant.centroid_bits = 24;
        },
        "quant.query_bits",
        "= 54 exceeds 48 bits",
    ),
    (
        "lut wider than accumulator",
        |c| {
            c.pq.head_dim = 8;
            c.pq.m = 4;
            c.quant.query_bits = 4;
            c.quant.centroid_bits = 4;
            c.scanner.lanes = 1;
            c.dist_unit.macs = 1;
        },
        "quant.lut_bits",
        "must not exceed the accumulator width 9",
    ),
    (
        "score wider than 32 bits",
        |c| {
            c.quant.query_bits = 16;
            c.quant.centroid_bits = 16;
            c.quant.lut_bits = 32;
        },
        "quant.lut_bits",
        "score width lut_bits + ceil(log2 m) = 33 exceeds 32 bits",
    ),
    (
        "macs zero",
        |c| c.dist_unit.macs = 0,
        "dist_unit.macs",
        "must be a power of two",
    ),
    (
        "macs beyond K",
        |c| c.dist_unit.macs = 128,
        "dist_unit.macs",
        "no larger than K = 2^code_bits = 64",
    ),
    (
        "macs not a power of two",
        |c| c.dist_unit.macs = 48,
        "dist_unit.macs",
        "must be a power of two",
    ),
    (
        "lanes zero",
        |c| c.scanner.lanes = 0,
        "scanner.lanes",
        "must be at least 1",
    ),
    (
        "lanes beyond the beat",
        |c| c.scanner.lanes = 43,
        "scanner.lanes",
        "does not fit the beat: a 512-bit beat holds only 42 tokens",
    ),
    (
        "lanes not dividing the beat",
        |c| c.scanner.lanes = 8,
        "scanner.lanes",
        "must divide the 42 tokens of a beat",
    ),
    (
        "beat not a power of two",
        |c| c.engine.beat_bits = 500,
        "engine.beat_bits",
        "must be a power of two in 32..=4096",
    ),
    (
        "beat too narrow for a token",
        |c| {
            c.pq.m = 32;
            c.pq.code_bits = 8;
            c.dist_unit.macs = 1;
            c.engine.beat_bits = 128;
        },
        "engine.beat_bits",
        "cannot hold one token of m * code_bits = 256 bits",
    ),
    (
        "heads zero",
        |c| c.engine.heads = Some(0),
        "engine.heads",
        "1..=1024",
    ),
    (
        "heads above 1024",
        |c| c.engine.heads = Some(1025),
        "engine.heads",
        "1..=1024",
    ),
    (
        "engines zero",
        |c| c.target.engines = Some(0),
        "target.engines",
        "1..=16",
    ),
    (
        "engines above 16",
        |c| c.target.engines = Some(17),
        "target.engines",
        "1..=16",
    ),
    (
        "16 engines of 2 stripes: 33 pseudo-channels",
        |c| c.target.engines = Some(16),
        "target.engines",
        "= 33 HBM pseudo-channels, the card has 32",
    ),
    (
        "engines on the ECP5",
        |c| {
            c.target.platform = kvpq_core::spec::Platform::Ecp5;
            c.target.engines = Some(2);
        },
        "target.engines",
        "exist only in the Alveo kernel",
    ),
    (
        "max_tokens zero",
        |c| c.engine.max_tokens = 0,
        "engine.max_tokens",
        "must be in 1..=1073741824",
    ),
    (
        "k_max zero",
        |c| c.topk.k_max = 0,
        "topk.k_max",
        "must be at least 1",
    ),
    (
        "k_max above max_tokens",
        |c| c.topk.k_max = 200_000,
        "topk.k_max",
        "must not exceed engine.max_tokens = 131072",
    ),
    (
        "systolic k too large",
        |c| {
            c.topk.strategy = TopKStrategy::Systolic;
            c.engine.max_tokens = 4096;
            c.topk.k_max = 512;
        },
        "topk.k_max",
        "the systolic strategy holds at most 256 entries",
    ),
    (
        "radix_bits on systolic",
        |c| {
            c.topk.strategy = TopKStrategy::Systolic;
            c.engine.max_tokens = 4096;
            c.topk.k_max = 256;
            c.topk.radix_bits = Some(4);
        },
        "topk.radix_bits",
        "applies only to strategy = \"select\"",
    ),
    (
        "radix_bits zero",
        |c| c.topk.radix_bits = Some(0),
        "topk.radix_bits",
        "must be in 1..=8",
    ),
    (
        "radix_bits past 8",
        |c| c.topk.radix_bits = Some(9),
        "topk.radix_bits",
        "must be in 1..=8",
    ),
    (
        "clock zero",
        |c| c.target.clock_mhz = 0.0,
        "target.clock_mhz",
        "must be a clock in [1, 1000] MHz",
    ),
    (
        "clock of 1e-300 MHz (projects 0.0 Mtok/s)",
        |c| c.target.clock_mhz = 1e-300,
        "target.clock_mhz",
        "`target.clock_mhz` = 1e-300: must be a clock in [1, 1000] MHz",
    ),
    (
        "clock NaN",
        |c| c.target.clock_mhz = f64::NAN,
        "target.clock_mhz",
        "must be a clock",
    ),
    (
        "name longer than 64 characters",
        |c| c.name = format!("a{}", "b".repeat(64)),
        "name",
        "must be at most 64 characters",
    ),
    (
        "gqa of u32::MAX (golden would allocate terabytes)",
        |c| c.retrieval.gqa_group = u32::MAX,
        "retrieval.gqa_group",
        "at most 1024",
    ),
    (
        "gqa 2,500,000",
        |c| c.retrieval.gqa_group = 2_500_000,
        "retrieval.gqa_group",
        "at most 1024",
    ),
    (
        "budget 1e-300 leaves k = 0",
        |c| c.retrieval.budget = 1e-300,
        "retrieval.budget",
        "`retrieval.budget` = 1e-300: the retrieval policy retrieves nothing at \
         engine.max_tokens = 131072: budget floor(1e-300 x 131072) = 0 tokens",
    ),
    (
        "local_fraction 1 leaves k = 0",
        |c| c.retrieval.local_fraction = 1.0,
        "retrieval.local_fraction",
        "top-k 13107 - 13107 = 0 capped by the middle",
    ),
    (
        "sinks leave no middle, k = 0",
        |c| c.retrieval.sink_tokens = 131071,
        "retrieval.sink_tokens",
        "131072 - 131071 sinks - 1 local = 0 gives k = 0",
    ),
    (
        "36 Gbit of score banks on ecp5",
        |c| {
            c.target.platform = kvpq_core::spec::Platform::Ecp5;
            c.engine.max_tokens = 1 << 30;
            c.topk.k_max = 1 << 30;
        },
        "engine.max_tokens",
        "the engines need 36507292328 bits of on-chip memory (target.engines = 1 x (two \
         score banks of engine.max_tokens scores = 36507222696",
    ),
    (
        "score buffer beyond the U55C's BRAM and URAM",
        |c| {
            c.engine.max_tokens = 1 << 30;
            c.topk.k_max = 1 << 30;
        },
        "engine.max_tokens",
        "target.platform = u55c holds 357433344 (XCU280",
    ),
    (
        "systolic queues beyond the ECP5's flip-flops",
        |c| {
            c.target.platform = kvpq_core::spec::Platform::Ecp5;
            c.topk.strategy = TopKStrategy::Systolic;
            c.engine.max_tokens = 4096;
            c.topk.k_max = 256;
        },
        "topk.k_max",
        "= 319232 flip-flops but target.platform = ecp5 has 83640",
    ),
    (
        "gqa zero",
        |c| c.retrieval.gqa_group = 0,
        "retrieval.gqa_group",
        "at least 1 query head",
    ),
    (
        "budget above 1",
        |c| c.retrieval.budget = 1.5,
        "retrieval.budget",
        "in (0, 1]",
    ),
    (
        "budget zero",
        |c| c.retrieval.budget = 0.0,
        "retrieval.budget",
        "in (0, 1]",
    ),
    (
        "local fraction negative",
        |c| c.retrieval.local_fraction = -0.1,
        "retrieval.local_fraction",
        "in [0, 1]",
    ),
    (
        "sinks fill the context",
        |c| c.retrieval.sink_tokens = 131072,
        "retrieval.sink_tokens",
        "must be smaller than engine.max_tokens",
    ),
    (
        "policy k beyond k_max",
        |c| c.topk.k_max = 4096,
        "topk.k_max",
        "asks for k = 6554 at engine.max_tokens = 131072",
    ),
];

#[test]
fn base_is_valid() {
    Accelerator::new(base()).expect("base is valid");
}

#[test]
fn every_broken_rule_is_named() {
    assert!(RULE_CASES.len() >= 15);
    for (what, edit, field, words) in RULE_CASES {
        let mut cfg = base();
        edit(&mut cfg);
        let err = Accelerator::new(cfg).expect_err(what);
        let msg = err.to_string();
        assert!(
            err.violations().iter().any(|v| v.field == *field),
            "{what}: no violation names `{field}`:\n{msg}"
        );
        assert!(msg.contains(&format!("`{field}`")), "{what}: {msg}");
        assert!(msg.contains(words), "{what}: expected {words:?} in:\n{msg}");
    }
}

#[test]
fn all_violations_are_reported_together() {
    let mut cfg = base();
    cfg.pq.code_bits = 0;
    cfg.scanner.lanes = 0;
    cfg.retrieval.budget = 2.0;
    let err = Accelerator::new(cfg).unwrap_err();
    let fields: Vec<&str> = err.violations().iter().map(|v| v.field).collect();
    for f in ["pq.code_bits", "scanner.lanes", "retrieval.budget"] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
}

/// (what is broken, text replaced, replacement, words the parser's message must hold)
const PARSE_CASES: &[(&str, &str, &str, &str)] = &[
    (
        "misspelled key",
        "lanes = 42",
        "lane = 42",
        "scanner.lane: unknown field `lane`",
    ),
    (
        "missing section",
        "[pq]\nhead_dim = 128\nm = 2\ncode_bits = 6\n",
        "",
        "missing field `pq`",
    ),
    (
        "negative width",
        "head_dim = 128",
        "head_dim = -128",
        "head_dim",
    ),
    (
        "unknown strategy",
        "strategy = \"select\"",
        "strategy = \"heap\"",
        "unknown variant `heap`",
    ),
    (
        "unknown platform",
        "platform = \"u55c\"",
        "platform = \"vu9p\"",
        "unknown variant `vu9p`",
    ),
    (
        "string for a number",
        "macs = 32",
        "macs = \"32\"",
        "dist_unit.macs: invalid type: string \"32\", expected u32",
    ),
    (
        "string for lanes",
        "lanes = 42",
        "lanes = \"4\"",
        "scanner.lanes: invalid type: string \"4\", expected u32",
    ),
    (
        "negative count",
        "max_tokens = 131072",
        "max_tokens = -1",
        "engine.max_tokens: invalid value: integer `-1`, expected u32",
    ),
    (
        "number for a name",
        "name = \"base\"",
        "name = 7",
        "name: invalid type: integer `7`, expected a string",
    ),
    (
        "unknown key in a section",
        "budget = 0.1",
        "budget = 0.1\nbudgte = 0.2",
        "retrieval.budgte: unknown field `budgte`",
    ),
];

#[test]
fn malformed_toml_names_the_key() {
    for (what, from, to, words) in PARSE_CASES {
        assert!(BASE.contains(from), "{what}: case does not apply");
        let text = BASE.replacen(from, to, 1);
        let err = Accelerator::from_toml_str(&text).expect_err(what);
        let msg = err.to_string();
        assert!(msg.contains(words), "{what}: expected {words:?} in:\n{msg}");
        // The message names the field itself, not only through an echoed TOML line.
        assert!(msg.contains("(line "), "{what}: no location in:\n{msg}");
    }
}

#[test]
fn syntax_errors_keep_their_location() {
    let err = Accelerator::from_toml_str("name = \"a\"\n[pq\n").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("line 2"), "{msg}");
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kvpq-invalid-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn oversize_description_is_refused_without_reading_it_all() {
    let dir = scratch("oversize");
    let path = dir.join("huge.toml");
    // A 20 MB name: valid TOML, far beyond any description.
    let text = BASE.replacen("\"base\"", &format!("\"a{}\"", "b".repeat(20 << 20)), 1);
    std::fs::write(&path, &text).unwrap();
    let err = Accelerator::from_toml_file(&path).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("1048576-byte limit"), "{msg}");
    assert!(msg.contains("huge.toml"), "{msg}");
    assert!(msg.len() < 1000, "message of {} bytes", msg.len());
    let err = Accelerator::from_toml_str(&text).unwrap_err();
    assert!(err.to_string().contains("1048576-byte limit"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn endless_input_is_refused() {
    let zero = std::path::Path::new("/dev/zero");
    if !zero.exists() {
        return;
    }
    let err = Accelerator::from_toml_file(zero).unwrap_err();
    assert!(err.to_string().contains("byte limit"), "{err}");
}

#[test]
fn long_name_is_echoed_short() {
    let mut cfg = base();
    cfg.name = format!("a{}", "b".repeat(20 << 20));
    let err = Accelerator::new(cfg).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("must be at most 64 characters"), "{msg}");
    assert!(msg.len() < 1000, "message of {} bytes", msg.len());
}

#[test]
fn non_utf8_description_is_a_clear_error() {
    let dir = scratch("utf8");
    let path = dir.join("bin.toml");
    std::fs::write(&path, [0xff, 0xfe, b'a']).unwrap();
    let err = Accelerator::from_toml_file(&path).unwrap_err();
    assert!(err.to_string().contains("not UTF-8"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn missing_file_names_the_path() {
    let err = Accelerator::from_toml_file(std::path::Path::new("no/such/config.toml")).unwrap_err();
    assert!(err.to_string().contains("no/such/config.toml"), "{err}");
}
