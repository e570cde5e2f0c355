//! The kernel's arguments as the folder's interface numbers them, checked against what XRT
//! reads from the xclbin: the same register offsets (so the xclbin was built from this
//! interface) and a memory group per buffer (to allocate it where the kernel's AXI master
//! is connected).

use kvpq_core::interface::alveo::{engine_arg, ArgKind, KernelInterface};

use super::handles::Kernel;
use crate::RuntimeError;

/// One argument: its position in `xrtRunSetArg`, its name and (buffers) its memory group.
#[derive(Debug, Clone)]
pub(crate) struct Arg {
    /// Argument index.
    pub(crate) id: u32,
    /// Name in the interface.
    pub(crate) name: String,
    /// Memory group (`xrtKernelArgGroupId`) of a buffer; 0 for scalars.
    pub(crate) group: u32,
}

/// Every argument of the kernel, by role.
#[derive(Debug, Clone)]
pub(crate) struct KernelArgs {
    /// Every head's centroid integers (buffer on gmem0).
    pub(crate) codebooks: Arg,
    /// The jobs of a run (buffer on gmem0).
    pub(crate) jobs: Arg,
    /// Per engine, per stripe: the buffers its jobs' code beats are striped over
    /// (`lane<e>` for stripe 0, which also holds the results; `lane<e>_<s>` after it).
    pub(crate) lanes: Vec<Vec<Arg>>,
    /// Per engine: bytes of its masters' data bus (the same for every stripe), to which
    /// code offsets are aligned and result areas' beats rounded.
    pub(crate) lane_align: Vec<usize>,
    /// Jobs in the run (scalar).
    pub(crate) n_jobs: Arg,
    /// Read the codebooks first (scalar).
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
    /// The arguments of `iface` for a kernel of `engines` engines whose codes are striped
    /// over `stripes` buffers each: exactly the ones this runtime sets, of the right kinds
    /// (a run with an argument left unset would not start).
    pub(crate) fn new(
        iface: &KernelInterface,
        engines: u32,
        stripes: u32,
    ) -> Result<Self, RuntimeError> {
        let find = |name: &str, kind: ArgKind| -> Result<Arg, RuntimeError> {
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
                name: name.into(),
                group: 0,
            })
        };
        // Bytes of the data bus of the master behind buffer argument `name`.
        let bus = |name: &str| -> Result<usize, RuntimeError> {
            iface
                .arg(name)
                .and_then(|a| a.master.as_deref())
                .and_then(|m| iface.master(m))
                .map(|m| (m.data_bits / 8).max(8) as usize)
                .ok_or_else(|| unusable(format!("has no AXI master for `{name}`")))
        };
        let mut lanes = Vec::new();
        let mut lane_align = Vec::new();
        for e in 0..engines {
            let mut stripe_args = Vec::new();
            let align = bus(&engine_arg(e, 0))?;
            for s in 0..stripes.max(1) {
                let name = engine_arg(e, s);
                stripe_args.push(find(&name, ArgKind::Buffer)?);
                // One code offset serves every stripe (docs/design.md 7.1), so their
                // masters must agree on the beat it is aligned to.
                let bytes = bus(&name)?;
                if bytes != align {
                    return Err(unusable(format!(
                        "has `{name}` on a {bytes}-byte master and `{}` on a {align}-byte one",
                        engine_arg(e, 0)
                    )));
                }
            }
            lanes.push(stripe_args);
            lane_align.push(align);
        }
        let args = Self {
            codebooks: find("codebooks", ArgKind::Buffer)?,
            jobs: find("jobs", ArgKind::Buffer)?,
            lanes,
            lane_align,
            n_jobs: find("n_jobs", ArgKind::Scalar)?,
            load_codebook: find("load_codebook", ArgKind::Scalar)?,
        };
        if let Some(extra) = iface
            .args
            .iter()
            .find(|a| !args.all().any(|b| b.name == a.name))
        {
            return Err(unusable(format!(
                "has an argument `{}` this runtime does not set (the folder's target.engines \
                 is {engines}, its codes are striped over {stripes} buffers per engine)",
                extra.name
            )));
        }
        Ok(args)
    }

    /// Every argument: buffers, then scalars.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Arg> {
        [&self.codebooks, &self.jobs]
            .into_iter()
            .chain(self.lanes.iter().flatten())
            .chain([&self.n_jobs, &self.load_codebook])
    }

    /// Checks the register offsets XRT reports for `kernel` against `iface` and reads the
    /// buffers' memory groups.
    pub(crate) fn bind(
        &mut self,
        kernel: &Kernel,
        iface: &KernelInterface,
    ) -> Result<(), RuntimeError> {
        for arg in self.all() {
            let want = iface.arg(&arg.name).map_or(0, |a| a.offset);
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
        for arg in [&mut self.codebooks, &mut self.jobs]
            .into_iter()
            .chain(self.lanes.iter_mut().flatten())
        {
            arg.group = kernel.group_id(arg.id)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvpq_core::interface::alveo::{code_stripes, kernel_args};
    use kvpq_core::spec::Accelerator;

    /// 2 subspaces of 2-bit codes in 128-bit beats: 32 tokens a beat. `lanes` of them a
    /// cycle at `clock_mhz` make 16 * 32 / lanes bytes per cycle.
    fn acc(engines: u32, lanes: u32, clock_mhz: f64) -> Accelerator {
        use kvpq_core::spec::{
            AcceleratorBuilder, EngineConfig, Platform, PqConfig, ScannerConfig, TargetConfig,
            TopKConfig,
        };
        AcceleratorBuilder::new("args", PqConfig::new(8, 2, 2))
            .scanner(ScannerConfig::new(lanes))
            .topk(TopKConfig::select(128))
            .engine(EngineConfig::new(1024).with_beat_bits(128))
            .target(TargetConfig::new(Platform::U55c, clock_mhz).with_engines(engines))
            .build()
            .expect("a valid description")
    }

    fn iface(acc: &Accelerator) -> KernelInterface {
        KernelInterface::new(acc, acc.config().target.platform).expect("an Alveo interface")
    }

    #[test]
    fn every_argument_of_the_interface_is_set() {
        // One stripe (0.4 GB/s a engine), then two (16 GB/s: more than a pseudo-channel).
        for (lanes, clock, stripes) in [(4, 200.0, 1), (32, 1000.0, 2)] {
            let a = acc(3, lanes, clock);
            assert_eq!(code_stripes(a.config()), stripes);
            let args = KernelArgs::new(&iface(&a), 3, stripes).unwrap();
            let names: Vec<&str> = args.all().map(|a| a.name.as_str()).collect();
            let want: Vec<String> = kernel_args(3, stripes)
                .into_iter()
                .map(|a| a.name)
                .collect();
            assert_eq!(names, want);
            assert_eq!(args.lane_align, vec![16; 3]);
            assert!(args.lanes.iter().all(|l| l.len() == stripes as usize));
            assert_eq!(
                args.lanes[2][stripes as usize - 1].name,
                want[1 + 3 * stripes as usize]
            );
        }
    }

    #[test]
    fn an_interface_of_other_engines_or_stripes_is_unusable() {
        for (built, asked) in [(2, 1), (1, 2)] {
            match KernelArgs::new(&iface(&acc(built, 4, 200.0)), asked, 1) {
                Err(RuntimeError::Unavailable { reason, .. }) => {
                    assert!(reason.contains("lane"), "{reason}")
                }
                other => panic!("expected Unavailable, got {other:?}"),
            }
        }
        for (built, asked) in [(2, 1), (1, 2)] {
            let a = if built == 2 {
                acc(2, 32, 1000.0)
            } else {
                acc(2, 4, 200.0)
            };
            match KernelArgs::new(&iface(&a), 2, asked) {
                Err(RuntimeError::Unavailable { reason, .. }) => {
                    assert!(reason.contains("lane0_1"), "{reason}")
                }
                other => panic!("expected Unavailable, got {other:?}"),
            }
        }
    }
}
