//! The golden model: the software reference every hardware implementation is bit-exact to
//! (docs/design.md section 3), plus the float reference and recall used to judge quality.

pub mod attention;
pub mod codebook;
pub mod engine;
pub mod error;
pub mod fixed;
pub mod kmeans;
pub mod lut;
pub mod packing;
pub mod reference;
pub mod scan;
pub mod topk;

pub use attention::GroupScores;
pub use codebook::{PqCodebook, QuantCodebook, TrainOptions};
pub use engine::{GoldenEngine, QueryResult};
pub use error::GoldenError;
pub use lut::Lut;
pub use topk::Hit;
