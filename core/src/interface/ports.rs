//! The port list of `pq_topk_engine`: rendered into the Verilog, written into the manifest,
//! and read by the simulation and runtime drivers, so all of them agree by construction.

use serde::{Deserialize, Serialize};

use super::Streams;

/// Name of the engine's top module.
pub const ENGINE_TOP: &str = "pq_topk_engine";

/// Direction of a port, seen from the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Driven by the environment.
    Input,
    /// Driven by the engine.
    Output,
}

/// One port of the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    /// Verilog name.
    pub name: String,
    /// Direction.
    pub direction: Direction,
    /// Width in bits.
    pub width: u32,
    /// Whether the engine drives it from a register (`output reg`).
    pub registered: bool,
    /// What it carries.
    pub doc: String,
}

/// Every port of the engine, in declaration order.
pub fn engine_ports(s: &Streams) -> Vec<Port> {
    use Direction::{Input as I, Output as O};
    let p = |name: &str, direction, width, registered, doc: &str| Port {
        name: name.into(),
        direction,
        width,
        registered,
        doc: doc.into(),
    };
    vec![
        p("clk", I, 1, false, "clock"),
        p("rst", I, 1, false, "synchronous reset, active high"),
        p("cb_valid", I, 1, false, "codebook stream: valid"),
        p(
            "cb_ready",
            O,
            1,
            false,
            "codebook stream: ready (distance unit idle)",
        ),
        p(
            "cb_data",
            I,
            s.cb_data,
            false,
            "one centroid, entries m*K+c in order, element j at [j*CB +: CB]",
        ),
        p(
            "cb_head",
            I,
            s.head,
            false,
            "codebook (KV head, < engine.heads) the centroid belongs to; whole codebooks per head",
        ),
        p("q_valid", I, 1, false, "query stream: valid"),
        p(
            "q_ready",
            O,
            1,
            false,
            "query stream: ready (a LUT buffer is free)",
        ),
        p(
            "q_data",
            I,
            s.q_data,
            false,
            "quantized query, element i at [i*QB +: QB]",
        ),
        p(
            "q_head",
            I,
            s.head,
            false,
            "codebook (KV head, < engine.heads) the query's LUT is built from",
        ),
        p(
            "start",
            I,
            1,
            false,
            "start a query (sampled while ready is high)",
        ),
        p(
            "n_tokens",
            I,
            s.n_tokens,
            false,
            "tokens to scan (clamped to max_tokens)",
        ),
        p("k", I, s.k, false, "results wanted (clamped to k_max)"),
        p(
            "ready",
            O,
            1,
            false,
            "start is taken: the last scan has ended (its top-k may still run)",
        ),
        p("busy", O, 1, false, "a query is in flight"),
        p("done", O, 1, true, "pulse after the query's last result"),
        p("code_valid", I, 1, false, "code beat stream: valid"),
        p("code_ready", O, 1, false, "code beat stream: ready"),
        p(
            "code_data",
            I,
            s.code_data,
            false,
            "one beat of packed codes (docs/design.md section 4)",
        ),
        p("res_valid", O, 1, false, "result stream: valid"),
        p("res_ready", I, 1, false, "result stream: ready"),
        p(
            "res_n",
            O,
            s.res_n,
            false,
            "results in this beat, in slots 0 .. res_n - 1 (ascending token index)",
        ),
        p(
            "res_index",
            O,
            s.res_lanes * s.res_index,
            false,
            "token index of each result slot",
        ),
        p(
            "res_score",
            O,
            s.res_lanes * s.res_score,
            false,
            "integer score of each result slot (signed)",
        ),
        p(
            "res_last",
            O,
            1,
            false,
            "the beat holds the query's last result",
        ),
        p(
            "res_shift",
            O,
            s.res_shift,
            false,
            "LUT shift of the query whose results stream (held after its done)",
        ),
        p(
            "res_count",
            O,
            s.res_count,
            false,
            "results of the query: min(k, n_tokens)",
        ),
    ]
}
