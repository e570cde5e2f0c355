//! What crosses the accelerator's boundary, computed once from the derived view: the data
//! width of every stream, the engine's ports, the board's byte protocol and, for Alveo
//! targets, the kernel's registers, arguments and result layout. Emitters render it, `sim`
//! drives ports by it and the runtime talks to hardware through it.

pub mod alveo;
pub mod bits;
pub mod board;
pub mod ports;

use serde::{Deserialize, Serialize};

use crate::spec::Accelerator;
pub use alveo::{KernelError, KernelInterface};
pub use board::{board_ports, BoardFormat, BOARD_TOP};
pub use ports::{engine_ports, Direction, Port, ENGINE_TOP};

/// Data widths of the engine's streams and control fields, in bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Streams {
    /// One centroid: `D/M` elements of `centroid_bits`.
    pub cb_data: u32,
    /// One quantized query: `head_dim` elements of `query_bits`.
    pub q_data: u32,
    /// One beat of packed codes.
    pub code_data: u32,
    /// `n_tokens`: counts up to `max_tokens`.
    pub n_tokens: u32,
    /// `k`: counts up to `k_max`.
    pub k: u32,
    /// Results per beat of the result stream.
    pub res_lanes: u32,
    /// A result's token index (the port carries `res_lanes` of them).
    pub res_index: u32,
    /// A result's score, signed (the port carries `res_lanes` of them).
    pub res_score: u32,
    /// The number of results in one beat: 1 ..= `res_lanes`.
    pub res_n: u32,
    /// The LUT shift reported with the results.
    pub res_shift: u32,
    /// The number of results of a query.
    pub res_count: u32,
    /// A codebook's number (`cb_head`, `q_head`): 0 .. engine.heads - 1.
    #[serde(default = "crate::spec::one")]
    pub head: u32,
}

impl Streams {
    /// The stream widths of `acc`.
    pub fn of(acc: &Accelerator) -> Self {
        let w = &acc.derived().widths;
        Self {
            cb_data: w.sub_dim * w.centroid_bits,
            q_data: acc.config().pq.head_dim * w.query_bits,
            code_data: acc.config().engine.beat_bits,
            n_tokens: w.count_bits,
            k: w.k_bits,
            res_lanes: w.result_lanes,
            res_index: w.index_bits,
            res_score: w.score_bits,
            res_n: crate::spec::unsigned_bits(u64::from(w.result_lanes)),
            res_shift: w.shift_bits,
            res_count: w.k_bits,
            head: w.head_bits,
        }
    }
}

/// The whole interface of one accelerator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Stream and field widths.
    pub streams: Streams,
    /// Ports of `pq_topk_engine`, in declaration order.
    pub ports: Vec<Port>,
    /// The byte protocol of the board top.
    pub board: BoardFormat,
    /// The Alveo kernel, for Alveo targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelInterface>,
}

impl Interface {
    /// The interface of `acc`; the kernel part when its platform is an Alveo card.
    pub fn of(acc: &Accelerator) -> Result<Self, KernelError> {
        let streams = Streams::of(acc);
        let platform = acc.config().target.platform;
        let kernel = if platform.is_alveo() {
            Some(KernelInterface::new(acc, platform)?)
        } else {
            None
        };
        Ok(Self {
            streams,
            ports: engine_ports(&streams),
            board: BoardFormat::of(&streams),
            kernel,
        })
    }

    /// The engine port called `name`.
    pub fn port(&self, name: &str) -> Option<&Port> {
        self.ports.iter().find(|p| p.name == name)
    }

    /// The ports of generated module `module` when this description covers it: the engine,
    /// the board top and, for Alveo targets, the RTL kernel. Internal units are not described.
    pub fn module_ports(&self, module: &str) -> Option<Vec<Port>> {
        match module {
            ENGINE_TOP => Some(self.ports.clone()),
            BOARD_TOP => Some(board_ports()),
            alveo::RTL_KERNEL => self.kernel.as_ref().map(KernelInterface::ports),
            _ => None,
        }
    }
}
