//! The port list of `pq_topk_engine`: rendered into the Verilog, written into the manifest,
//! and read by the simulation and runtime drivers, so all of them agree by construction.

use serde::Serialize;

use crate::spec::Accelerator;

/// Direction of a port, seen from the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Driven by the environment.
    Input,
    /// Driven by the engine.
    Output,
}

/// One port of the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Port {
    /// Verilog name.
    pub name: &'static str,
    /// Direction.
    pub direction: Direction,
    /// Width in bits.
    pub width: u32,
    /// Whether the engine drives it from a register (`output reg`).
    #[serde(skip)]
    pub registered: bool,
    /// What it carries.
    pub doc: &'static str,
}

impl Port {
    /// The Verilog declaration, e.g. `input  wire [511:0] code_data`.
    pub fn declaration(&self) -> String {
        let kind = match (self.direction, self.registered) {
            (Direction::Input, _) => "input  wire",
            (Direction::Output, false) => "output wire",
            (Direction::Output, true) => "output reg ",
        };
        let range = if self.width > 1 {
            format!("[{}:0]", self.width - 1)
        } else {
            String::new()
        };
        format!("{kind} {range:<10} {}", self.name)
    }
}

/// Every port of the engine, in declaration order.
pub fn engine_ports(acc: &Accelerator) -> Vec<Port> {
    use Direction::{Input as I, Output as O};
    let c = acc.config();
    let w = &acc.derived().widths;
    let p = |name, direction, width, registered, doc| Port {
        name,
        direction,
        width,
        registered,
        doc,
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
            w.sub_dim * w.centroid_bits,
            false,
            "one centroid, entries m*K+c in order, element j at [j*CB +: CB]",
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
            c.pq.head_dim * w.query_bits,
            false,
            "quantized query, element i at [i*QB +: QB]",
        ),
        p(
            "start",
            I,
            1,
            false,
            "start a query (sampled while busy is low)",
        ),
        p(
            "n_tokens",
            I,
            w.count_bits,
            false,
            "tokens to scan (clamped to max_tokens)",
        ),
        p("k", I, w.k_bits, false, "results wanted (clamped to k_max)"),
        p("busy", O, 1, false, "a query is in flight"),
        p("done", O, 1, true, "pulse after the query's last result"),
        p("code_valid", I, 1, false, "code beat stream: valid"),
        p("code_ready", O, 1, false, "code beat stream: ready"),
        p(
            "code_data",
            I,
            c.engine.beat_bits,
            false,
            "one beat of packed codes (DESIGN.md section 4)",
        ),
        p("res_valid", O, 1, false, "result stream: valid"),
        p("res_ready", I, 1, false, "result stream: ready"),
        p(
            "res_index",
            O,
            w.index_bits,
            false,
            "token index of the result",
        ),
        p(
            "res_score",
            O,
            w.score_bits,
            false,
            "integer score of the result (signed)",
        ),
        p("res_last", O, 1, false, "last result of the query"),
        p(
            "res_shift",
            O,
            w.shift_bits,
            true,
            "LUT shift of the query (valid with its results)",
        ),
        p(
            "res_count",
            O,
            w.k_bits,
            true,
            "results of the query: min(k, n_tokens)",
        ),
    ]
}
