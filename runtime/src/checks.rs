//! The checks every device runs before it touches anything: a codebook or a search that the
//! accelerator description cannot serve is refused with the field and both values named.

use kvpq_core::golden::packing::words_for;
use kvpq_core::golden::QuantCodebook;
use kvpq_core::spec::Accelerator;

use crate::{HeadQuery, RuntimeError};

/// The codebooks a device was given, by slot, kept on the host: every device checks and
/// stores them the same way.
#[derive(Debug, Clone, Default)]
pub(crate) struct Slots(Vec<Option<QuantCodebook>>);

impl Slots {
    /// Checks `cb` against `acc` and stores it in `slot` (nothing changes on error).
    pub fn load(
        &mut self,
        acc: &Accelerator,
        slot: usize,
        cb: QuantCodebook,
    ) -> Result<(), RuntimeError> {
        codebook(acc, slot, &cb)?;
        if self.0.len() <= slot {
            self.0.resize(slot + 1, None);
        }
        self.0[slot] = Some(cb);
        Ok(())
    }

    /// [`searches`] over these slots.
    pub fn check<'s>(
        &'s self,
        acc: &Accelerator,
        queries: &[HeadQuery<'_>],
    ) -> Result<Vec<&'s QuantCodebook>, RuntimeError> {
        searches(acc, &self.0, queries)
    }
}

/// Most codebook slots a device holds: layers x KV heads of any model it serves (a slot
/// number past it is an error, not an allocation of that many slots).
pub const MAX_SLOTS: usize = 1 << 16;

/// Checks `slot` and that `codebook` has the (M, K, D/M) shape and the centroid width of
/// `acc`.
pub(crate) fn codebook(
    acc: &Accelerator,
    slot: usize,
    codebook: &QuantCodebook,
) -> Result<(), RuntimeError> {
    if slot >= MAX_SLOTS {
        return Err(RuntimeError::Shape {
            what: "codebook slot".into(),
            found: slot.to_string(),
            expected: format!("below {MAX_SLOTS}"),
        });
    }
    let w = &acc.derived().widths;
    let c = acc.config();
    let want = (
        c.pq.m as usize,
        w.codebook_size as usize,
        w.sub_dim as usize,
    );
    if codebook.values.dim() != want {
        return Err(RuntimeError::Shape {
            what: format!("codebook of slot {slot}"),
            found: format!("{:?}", codebook.values.dim()),
            expected: format!("{want:?} (pq.m, 2^pq.code_bits, head_dim / m)"),
        });
    }
    let limit = 1i32 << (c.quant.centroid_bits - 1);
    if let Some(v) = codebook
        .values
        .iter()
        .find(|&&v| !(-limit..limit).contains(&v))
    {
        return Err(RuntimeError::Shape {
            what: format!("codebook of slot {slot}"),
            found: v.to_string(),
            expected: format!(
                "{}-bit signed values (quant.centroid_bits)",
                c.quant.centroid_bits
            ),
        });
    }
    Ok(())
}

/// Checks every search of a call against `acc` and the loaded `slots`; returns each
/// search's codebook, in order.
pub(crate) fn searches<'s>(
    acc: &Accelerator,
    slots: &'s [Option<QuantCodebook>],
    queries: &[HeadQuery<'_>],
) -> Result<Vec<&'s QuantCodebook>, RuntimeError> {
    queries
        .iter()
        .enumerate()
        .map(|(i, q)| search(acc, slots, i, q))
        .collect()
}

/// Checks search `i` of a call; `Err` names what is wrong.
fn search<'s>(
    acc: &Accelerator,
    slots: &'s [Option<QuantCodebook>],
    i: usize,
    q: &HeadQuery<'_>,
) -> Result<&'s QuantCodebook, RuntimeError> {
    let c = acc.config();
    let codebook = slots
        .get(q.slot)
        .and_then(Option::as_ref)
        .ok_or(RuntimeError::NoCodebook {
            slot: q.slot,
            loaded: slots.iter().filter(|h| h.is_some()).count(),
        })?;
    let shape = |what: &str, found: String, expected: String| RuntimeError::Shape {
        what: format!("search {i} (slot {}): {what}", q.slot),
        found,
        expected,
    };
    let d = c.pq.head_dim as usize;
    if q.query.len() != d {
        return Err(shape(
            "query",
            format!("{} values", q.query.len()),
            format!("{d} (pq.head_dim)"),
        ));
    }
    let limit = 1i64 << (c.quant.query_bits - 1);
    if let Some(v) = q
        .query
        .iter()
        .find(|&&v| !(-limit..limit).contains(&i64::from(v)))
    {
        return Err(shape(
            "query value",
            v.to_string(),
            format!("{}-bit signed (quant.query_bits)", c.quant.query_bits),
        ));
    }
    if q.n_tokens > c.engine.max_tokens as usize {
        return Err(shape(
            "n_tokens",
            q.n_tokens.to_string(),
            format!("at most {} (engine.max_tokens)", c.engine.max_tokens),
        ));
    }
    if q.k > c.topk.k_max as usize {
        return Err(shape(
            "k",
            q.k.to_string(),
            format!("at most {} (topk.k_max)", c.topk.k_max),
        ));
    }
    words_for(&acc.derived().layout, q.beats, q.n_tokens)?;
    Ok(codebook)
}
