//! The `codebooks` buffer: `engine.heads` codebooks head-major (`[head][m][c][j]` int32), as
//! the kernel reads them into every engine when a run has `load_codebook != 0`. Slot `s`
//! lives in head `s % heads` (direct-mapped, as the `sim` device maps it). The host tracks
//! which slot each head's region holds and which the kernel holds on chip, so a run asks
//! for a load only when a head it reads holds another slot's, or an older, codebook.

use kvpq_core::golden::QuantCodebook;

use super::handles::{fault, Bo, XrtHandle};
use crate::RuntimeError;

/// The buffer and what the host knows of it and of the kernel.
#[derive(Debug)]
pub(crate) struct CodebookBuffer {
    bo: Bo,
    /// Bytes of one codebook (M*K*SUB int32).
    bytes: usize,
    /// Per head: the slot whose current codebook the head's region holds on the device.
    staged: Vec<Option<usize>>,
    /// Per head: the slot whose codebook the kernel holds; `None` when unknown (at open,
    /// after a fault), which makes the next run load.
    on_chip: Option<Vec<Option<usize>>>,
}

impl CodebookBuffer {
    /// Allocates the buffer for `heads` codebooks of `bytes` bytes in memory group `group`.
    pub(crate) fn open(
        device: &XrtHandle,
        group: u32,
        heads: usize,
        bytes: usize,
    ) -> Result<Self, RuntimeError> {
        let heads = heads.max(1);
        Ok(Self {
            bo: Bo::alloc(device, heads * bytes, group)?,
            bytes,
            staged: vec![None; heads],
            on_chip: None,
        })
    }

    /// The engine head slot `slot` lives in.
    pub(crate) fn head(&self, slot: usize) -> usize {
        slot % self.staged.len()
    }

    /// Writes `codebook` as `slot`'s into the slot's head region and sends it to the device.
    /// On `Err` the region's content is unknown (the next run that reads it rewrites it).
    pub(crate) fn write(
        &mut self,
        slot: usize,
        codebook: &QuantCodebook,
        scratch: &mut Vec<u8>,
    ) -> Result<(), RuntimeError> {
        let head = self.head(slot);
        self.staged[head] = None;
        scratch.clear();
        // Logical order of the (M, K, SUB) array is the kernel's [m][c][j].
        scratch.extend(codebook.values.iter().flat_map(|v| v.to_le_bytes()));
        if scratch.len() != self.bytes {
            return Err(fault(format!(
                "slot {slot}'s codebook is {} bytes, the kernel reads {}",
                scratch.len(),
                self.bytes
            )));
        }
        self.bo.upload_at(head * self.bytes, scratch)?;
        self.staged[head] = Some(slot);
        Ok(())
    }

    /// `slot`'s codebook changed on the host: the kernel's copy, if it holds it, is stale.
    pub(crate) fn replaced(&mut self, slot: usize) {
        let head = self.head(slot);
        if let Some(chip) = &mut self.on_chip {
            if chip[head] == Some(slot) {
                chip[head] = None;
            }
        }
    }

    /// Prepares a run whose searches read `slots` (no two in one head, see
    /// `layout::split_runs`): writes each region that does not hold its slot's codebook
    /// (`codebooks`, by slot) and returns whether the kernel must load the codebooks.
    pub(crate) fn stage(
        &mut self,
        slots: impl Iterator<Item = usize>,
        codebooks: &[Option<QuantCodebook>],
        scratch: &mut Vec<u8>,
    ) -> Result<bool, RuntimeError> {
        let mut load = false;
        for slot in slots {
            let head = self.head(slot);
            if self.staged[head] != Some(slot) {
                // The checks found every slot's codebook before the call got here.
                let codebook = codebooks
                    .get(slot)
                    .and_then(Option::as_ref)
                    .ok_or_else(|| fault(format!("slot {slot} has no codebook to send")))?;
                self.write(slot, codebook, scratch)?;
            }
            load |= self
                .on_chip
                .as_ref()
                .is_none_or(|chip| chip[head] != Some(slot));
        }
        Ok(load)
    }

    /// The buffer, for the run's `codebooks` argument.
    pub(crate) fn bo(&self) -> &Bo {
        &self.bo
    }

    /// A run that loaded the codebooks completed: the kernel holds what the buffer holds.
    pub(crate) fn loaded(&mut self) {
        self.on_chip = Some(self.staged.clone());
    }

    /// What the kernel holds is unknown (a run failed or reported an error).
    pub(crate) fn forget(&mut self) {
        self.on_chip = None;
    }
}
