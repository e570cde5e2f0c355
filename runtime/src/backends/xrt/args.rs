//! The kernel's arguments as the folder's interface numbers them, checked against what XRT
//! reads from the xclbin: the same register offsets (so the xclbin was built from this
//! interface) and a memory group per buffer (to allocate it where the kernel's AXI master
//! is connected).

use kvpq_core::interface::alveo::{ArgKind, KernelInterface};

use super::handles::Kernel;
use crate::RuntimeError;

/// One argument: its position in `xrtRunSetArg`, its name and (buffers) its memory group.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arg {
    /// Argument index.
    pub(crate) id: u32,
    /// Name in the interface.
    pub(crate) name: &'static str,
    /// Memory group (`xrtKernelArgGroupId`) of a buffer; 0 for scalars.
    pub(crate) group: u32,
}

/// Every argument of the kernel, by role.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KernelArgs {
    /// Centroid integers (buffer).
    pub(crate) codebook: Arg,
    /// Quantized query (buffer).
    pub(crate) query: Arg,
    /// Packed code beats (buffer).
    pub(crate) codes: Arg,
    /// Results (buffer).
    pub(crate) out: Arg,
    /// Tokens to scan (scalar).
    pub(crate) n_tokens: Arg,
    /// Results wanted (scalar).
    pub(crate) k: Arg,
    /// Read the codebook first (scalar).
    pub(crate) load_codebook: Arg,
}

/// `Unavailable` for an interface this runtime cannot drive.
fn unusable(what: String) -> RuntimeError {
    RuntimeError::Unavailable {
        backend: "xrt",
        reason: format!("the folder's kernel interface {what}"),
    }
}

impl KernelArgs {
    /// The arguments of `iface`: exactly the ones this runtime sets, of the right kinds (a
    /// run with an argument left unset would not start).
    pub(crate) fn new(iface: &KernelInterface) -> Result<Self, RuntimeError> {
        let find = |name: &'static str, kind: ArgKind| -> Result<Arg, RuntimeError> {
            let arg = iface
                .arg(name)
                .ok_or_else(|| unusable(format!("has no argument `{name}`")))?;
            if arg.kind != kind {
                return Err(unusable(format!(
                    "has `{name}` as {:?}, this runtime passes a {kind:?}",
                    arg.kind
                )));
            }
            Ok(Arg {
                id: arg.id,
                name,
                group: 0,
            })
        };
        let args = Self {
            codebook: find("codebook", ArgKind::Buffer)?,
            query: find("query", ArgKind::Buffer)?,
            codes: find("codes", ArgKind::Buffer)?,
            out: find("out", ArgKind::Buffer)?,
            n_tokens: find("n_tokens", ArgKind::Scalar)?,
            k: find("k", ArgKind::Scalar)?,
            load_codebook: find("load_codebook", ArgKind::Scalar)?,
        };
        if let Some(extra) = iface
            .args
            .iter()
            .find(|a| !args.all().iter().any(|b| b.name == a.name))
        {
            return Err(unusable(format!(
                "has an argument `{}` this runtime does not set",
                extra.name
            )));
        }
        Ok(args)
    }

    /// Every argument, buffers first.
    pub(crate) fn all(&self) -> [Arg; 7] {
        [
            self.codebook,
            self.query,
            self.codes,
            self.out,
            self.n_tokens,
            self.k,
            self.load_codebook,
        ]
    }

    /// Checks the register offsets XRT reports for `kernel` against `iface` and reads the
    /// buffers' memory groups.
    pub(crate) fn bind(
        &mut self,
        kernel: &Kernel,
        iface: &KernelInterface,
    ) -> Result<(), RuntimeError> {
        for arg in self.all() {
            let want = iface.arg(arg.name).map_or(0, |a| a.offset);
            let found = kernel.arg_offset(arg.id);
            if found != want {
                return Err(RuntimeError::Unavailable {
                    backend: "xrt",
                    reason: format!(
                        "the xclbin's kernel places argument {} `{}` at register {found:#x}, \
                         the folder's interface at {want:#x}: the xclbin was not built from \
                         this folder",
                        arg.id, arg.name
                    ),
                });
            }
        }
        for arg in [
            &mut self.codebook,
            &mut self.query,
            &mut self.codes,
            &mut self.out,
        ] {
            arg.group = kernel.group_id(arg.id)?;
        }
        Ok(())
    }
}
