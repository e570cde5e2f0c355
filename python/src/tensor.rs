//! Array arguments without a copy: numpy arrays (read through rust-numpy) and any object with
//! `__dlpack__` (torch CPU tensors, JAX and CuPy host arrays, ...), both described as raw
//! strided views of host memory that the argument keeps alive for the call.
//!
//! Validation (element type, alignment, strides, writability) happens here with the GIL held;
//! the [`Strided`] a check returns is `Send`, so the views are built inside `Python::detach`.

use std::marker::PhantomData;
use std::ptr::NonNull;

use ndarray::{ArrayView, ArrayViewMut, Axis, Dimension, ShapeBuilder};
use numpy::npyffi::NPY_ARRAY_WRITEABLE;
use numpy::{PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyTypeMethods;

use crate::dlpack;
use crate::errors::input_error;

/// Element types an argument may hold, named as numpy names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Elem {
    F16,
    Bf16,
    F32,
    F64,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    Bool,
}

impl Elem {
    /// numpy's (and torch's) name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Elem::F16 => "float16",
            Elem::Bf16 => "bfloat16",
            Elem::F32 => "float32",
            Elem::F64 => "float64",
            Elem::I8 => "int8",
            Elem::I16 => "int16",
            Elem::I32 => "int32",
            Elem::I64 => "int64",
            Elem::U8 => "uint8",
            Elem::U16 => "uint16",
            Elem::U32 => "uint32",
            Elem::U64 => "uint64",
            Elem::Bool => "bool",
        }
    }

    /// Bytes per element.
    pub(crate) fn size(self) -> usize {
        match self {
            Elem::I8 | Elem::U8 | Elem::Bool => 1,
            Elem::F16 | Elem::Bf16 | Elem::I16 | Elem::U16 => 2,
            Elem::F32 | Elem::I32 | Elem::U32 => 4,
            Elem::F64 | Elem::I64 | Elem::U64 => 8,
        }
    }

    /// From a numpy kind character and item size.
    fn from_numpy(kind: u8, size: usize) -> Option<Self> {
        Some(match (kind, size) {
            (b'f', 2) => Elem::F16,
            (b'f', 4) => Elem::F32,
            (b'f', 8) => Elem::F64,
            (b'i', 1) => Elem::I8,
            (b'i', 2) => Elem::I16,
            (b'i', 4) => Elem::I32,
            (b'i', 8) => Elem::I64,
            (b'u', 1) => Elem::U8,
            (b'u', 2) => Elem::U16,
            (b'u', 4) => Elem::U32,
            (b'u', 8) => Elem::U64,
            (b'b', 1) => Elem::Bool,
            _ => return None,
        })
    }

    /// From DLPack's type code and bits (lanes are checked by the caller).
    pub(crate) fn from_dlpack(code: u8, bits: u8) -> Option<Self> {
        // kDLInt = 0, kDLUInt = 1, kDLFloat = 2, kDLBfloat = 4, kDLBool = 6.
        Some(match (code, bits) {
            (0, 8) => Elem::I8,
            (0, 16) => Elem::I16,
            (0, 32) => Elem::I32,
            (0, 64) => Elem::I64,
            (1, 8) => Elem::U8,
            (1, 16) => Elem::U16,
            (1, 32) => Elem::U32,
            (1, 64) => Elem::U64,
            (2, 16) => Elem::F16,
            (2, 32) => Elem::F32,
            (2, 64) => Elem::F64,
            (4, 16) => Elem::Bf16,
            (6, 8) => Elem::Bool,
            _ => return None,
        })
    }
}

/// `(8, 100, 128)`, `(128,)`: a shape as Python prints it.
pub(crate) fn shape_str(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Host memory described by an argument: `shape` elements of `elem` at `ptr`, `strides` in
/// bytes (any sign).
#[derive(Debug, Clone)]
pub(crate) struct Raw {
    pub(crate) ptr: *mut u8,
    pub(crate) elem: Elem,
    pub(crate) shape: Vec<usize>,
    pub(crate) strides: Vec<isize>,
}

/// An array argument: its memory, whether it may be written, and the object that keeps the
/// memory alive (the numpy array, or the DLPack capsule whose destructor frees it).
pub(crate) struct Tensor<'py> {
    pub(crate) raw: Raw,
    pub(crate) writable: bool,
    /// The argument's name in messages (`keys`, `keys_out`).
    pub(crate) what: &'static str,
    _owner: Bound<'py, PyAny>,
}

impl<'py> Tensor<'py> {
    /// Reads `obj`: a numpy array, or anything with `__dlpack__` on a host device.
    pub(crate) fn extract(obj: &Bound<'py, PyAny>, what: &'static str) -> PyResult<Self> {
        if let Ok(arr) = obj.cast::<PyUntypedArray>() {
            return from_numpy(arr, what);
        }
        if obj.hasattr("__dlpack__")? {
            let (raw, writable, owner) = dlpack::read(obj, what)?;
            return Ok(Self {
                raw,
                writable,
                what,
                _owner: owner,
            });
        }
        Err(PyTypeError::new_err(format!(
            "{what}: expected a numpy array or an object with __dlpack__ (e.g. a torch CPU \
             tensor), got {}",
            obj.get_type().name()?
        )))
    }

    /// The shape.
    pub(crate) fn shape(&self) -> &[usize] {
        &self.raw.shape
    }

    /// The element type.
    pub(crate) fn elem(&self) -> Elem {
        self.raw.elem
    }

    /// Errs unless the tensor has `ndim` dimensions; `axes` names them, e.g.
    /// `(kv_heads, tokens, head_dim)`.
    pub(crate) fn expect_ndim(&self, ndim: usize, axes: &str) -> PyResult<()> {
        if self.raw.shape.len() == ndim {
            return Ok(());
        }
        Err(input_error(
            "shape",
            format!(
                "{}: shape {}, expected {ndim} dimensions {axes}",
                self.what,
                shape_str(&self.raw.shape)
            ),
        ))
    }

    /// Checks a buffer the call writes: writable, of an element type of `elems` and of
    /// `shape`, each element at its own address. The message names what was given and what
    /// is expected.
    pub(crate) fn check_output(&self, elems: &[Elem], shape: &[usize]) -> PyResult<()> {
        let dtype_ok = elems.contains(&self.raw.elem);
        if !dtype_ok || self.raw.shape != shape {
            let want = elems
                .iter()
                .map(|e| e.name())
                .collect::<Vec<_>>()
                .join(" or ");
            return Err(input_error(
                if dtype_ok { "shape" } else { "dtype" },
                format!(
                    "{}: dtype {} and shape {}, expected dtype {want} and shape {}",
                    self.what,
                    self.raw.elem.name(),
                    shape_str(&self.raw.shape),
                    shape_str(shape)
                ),
            ));
        }
        if !self.writable {
            return Err(input_error(
                "readonly",
                format!("{}: the buffer is read-only", self.what),
            ));
        }
        if self.raw.self_overlapping() {
            return Err(input_error(
                "overlap",
                format!(
                    "{}: strides {:?} map several elements to one address (a broadcast \
                     view?)",
                    self.what, self.raw.strides
                ),
            ));
        }
        Ok(())
    }

    /// The validated typed view of the memory; `T` must have the element's size and `D` the
    /// tensor's dimensions (checked: [`Self::expect_ndim`] words the error better).
    pub(crate) fn strided<T, D: Dimension>(&self) -> PyResult<Strided<T, D>> {
        if D::NDIM.is_some_and(|n| n != self.raw.shape.len()) {
            return Err(input_error(
                "shape",
                format!(
                    "{}: shape {}, expected {} dimensions",
                    self.what,
                    shape_str(&self.raw.shape),
                    D::NDIM.unwrap_or_default()
                ),
            ));
        }
        self.raw.strided(self.what)
    }
}

/// Reads a numpy array's memory description.
fn from_numpy<'py>(arr: &Bound<'py, PyUntypedArray>, what: &'static str) -> PyResult<Tensor<'py>> {
    let descr = arr.dtype();
    let elem = match Elem::from_numpy(descr.kind(), descr.itemsize()) {
        Some(e) => Some(e),
        // ml_dtypes' bfloat16 (JAX's numpy dtype) is an opaque 2-byte type named `bfloat16`.
        None if descr.itemsize() == 2 && descr.typeobj().name()? == "bfloat16" => Some(Elem::Bf16),
        None => None,
    };
    let Some(elem) = elem else {
        return Err(input_error(
            "dtype",
            format!("{what}: dtype {descr} is not supported"),
        ));
    };
    if descr.is_native_byteorder() == Some(false) {
        return Err(input_error(
            "dtype",
            format!("{what}: dtype {descr} is byte-swapped: pass a native-order copy"),
        ));
    }
    // SAFETY: `arr` is a live numpy array; its struct fields are read with the GIL held.
    let (ptr, flags) = unsafe {
        let p = arr.as_array_ptr();
        ((*p).fields.data.cast::<u8>(), (*p).fields.flags)
    };
    Ok(Tensor {
        raw: Raw {
            ptr,
            elem,
            shape: arr.shape().to_vec(),
            strides: arr.strides().to_vec(),
        },
        writable: flags & NPY_ARRAY_WRITEABLE != 0,
        what,
        _owner: arr.clone().into_any(),
    })
}

impl Raw {
    fn is_empty(&self) -> bool {
        self.shape.contains(&0)
    }

    /// Whether the elements are laid out row-major without gaps.
    pub(crate) fn is_c_contiguous(&self) -> bool {
        let mut expected = self.elem.size() as isize;
        for (&n, &s) in self.shape.iter().zip(&self.strides).rev() {
            if n > 1 && s != expected {
                return false;
            }
            expected *= n as isize;
        }
        true
    }

    /// `[low, high)` addresses the elements span; `None` when empty.
    pub(crate) fn byte_range(&self) -> Option<(usize, usize)> {
        if self.is_empty() {
            return None;
        }
        let (mut low, mut high) = (self.ptr as isize, self.ptr as isize);
        for (&n, &s) in self.shape.iter().zip(&self.strides) {
            let span = s.saturating_mul(n as isize - 1);
            if span < 0 {
                low = low.saturating_add(span);
            } else {
                high = high.saturating_add(span);
            }
        }
        Some((low as usize, high as usize + self.elem.size()))
    }

    /// Whether two index tuples may reach one address: checked by sorting the axes by
    /// stride, each stride clearing everything the smaller ones span (sufficient, and exact
    /// for every layout slicing produces).
    fn self_overlapping(&self) -> bool {
        let mut axes: Vec<(usize, usize)> = self
            .shape
            .iter()
            .zip(&self.strides)
            .filter(|(&n, _)| n > 1)
            .map(|(&n, &s)| (n, s.unsigned_abs()))
            .collect();
        axes.sort_by_key(|&(_, s)| s);
        let mut extent = self.elem.size();
        for (n, s) in axes {
            if s < extent {
                return true;
            }
            extent = extent.saturating_add(s.saturating_mul(n - 1));
        }
        false
    }

    /// Checks that the memory can be read as `T` (same size, aligned, strides in whole
    /// elements) and describes it from its lowest address with the axes to flip.
    fn strided<T, D: Dimension>(&self, what: &str) -> PyResult<Strided<T, D>> {
        let size = std::mem::size_of::<T>();
        if self.elem.size() != size {
            return Err(input_error(
                "dtype",
                format!("{what}: dtype {} has the wrong size", self.elem.name()),
            ));
        }
        let ndim = self.shape.len();
        if self.is_empty() {
            // ndarray wants an aligned pointer even with no elements.
            return Ok(Strided {
                ptr: NonNull::dangling(),
                shape: dim_of(&self.shape),
                strides: D::zeros(ndim),
                flip: Vec::new(),
                contiguous: true,
                _t: PhantomData,
            });
        }
        let mut ptr = self.ptr;
        let (mut strides, mut flip) = (Vec::with_capacity(ndim), Vec::new());
        for (axis, (&n, &s)) in self.shape.iter().zip(&self.strides).enumerate() {
            if s % size as isize != 0 {
                return Err(input_error(
                    "layout",
                    format!(
                        "{what}: stride {s} bytes is not a whole number of {}-byte elements",
                        size
                    ),
                ));
            }
            if s < 0 {
                // ndarray takes non-negative strides: start at the lowest address, flip back.
                ptr = ptr.wrapping_offset(s.wrapping_mul(n as isize - 1));
                flip.push(axis);
            }
            strides.push(s.unsigned_abs() / size);
        }
        if !ptr.cast::<T>().is_aligned() {
            return Err(input_error(
                "layout",
                format!("{what}: the data is not aligned to its element size"),
            ));
        }
        let ptr = NonNull::new(ptr.cast::<T>())
            .ok_or_else(|| input_error("layout", format!("{what}: null data pointer")))?;
        Ok(Strided {
            ptr,
            shape: dim_of(&self.shape),
            strides: dim_of(&strides),
            flip,
            contiguous: self.is_c_contiguous(),
            _t: PhantomData,
        })
    }
}

/// `D` holding `xs` (whose length the caller checked against `D::NDIM`).
fn dim_of<D: Dimension>(xs: &[usize]) -> D {
    let mut d = D::zeros(xs.len());
    d.slice_mut().copy_from_slice(xs);
    d
}

/// Checked memory of `T` elements: the lowest address, element strides and the axes whose
/// strides were negative. Building a view from it is `unsafe`: the caller keeps the tensor it
/// came from alive and does not let anything else write the memory meanwhile.
pub(crate) struct Strided<T, D> {
    ptr: NonNull<T>,
    shape: D,
    strides: D,
    flip: Vec<usize>,
    contiguous: bool,
    _t: PhantomData<T>,
}

// SAFETY: a `Strided` is an address and a layout; the memory belongs to a `Tensor` that the
// thread holding the GIL keeps alive while the detached closure runs, and `T` is plain data.
unsafe impl<T: Send + Sync, D: Send> Send for Strided<T, D> {}
unsafe impl<T: Send + Sync, D: Sync> Sync for Strided<T, D> {}

impl<T, D: Dimension> Strided<T, D> {
    /// A read-only view.
    ///
    /// # Safety
    /// The memory is alive and not written during `'a`.
    pub(crate) unsafe fn view(&self) -> ArrayView<'_, T, D> {
        let shape = self.shape.clone().strides(self.strides.clone());
        // SAFETY: the producer's shape and strides describe its allocation (checked where
        // checkable: element size, alignment, whole-element strides).
        let mut v = unsafe { ArrayView::from_shape_ptr(shape, self.ptr.as_ptr()) };
        for &axis in &self.flip {
            v.invert_axis(Axis(axis));
        }
        v
    }

    /// A writable view.
    ///
    /// # Safety
    /// As [`Self::view`], and nothing else reads or writes the memory during `'a`.
    #[allow(clippy::mut_from_ref)] // the memory is the caller's buffer, not `self`'s
    pub(crate) unsafe fn view_mut(&self) -> ArrayViewMut<'_, T, D> {
        let shape = self.shape.clone().strides(self.strides.clone());
        // SAFETY: as in `view`; the caller owns the memory exclusively.
        let mut v = unsafe { ArrayViewMut::from_shape_ptr(shape, self.ptr.as_ptr()) };
        for &axis in &self.flip {
            v.invert_axis(Axis(axis));
        }
        v
    }

    /// The elements as one slice, when C-contiguous.
    ///
    /// # Safety
    /// As [`Self::view_mut`].
    #[allow(clippy::mut_from_ref)] // the memory is the caller's buffer, not `self`'s
    pub(crate) unsafe fn slice_mut(&self) -> Option<&mut [T]> {
        let len = self.shape.size();
        // SAFETY: contiguous elements from `ptr`; exclusive per the caller.
        self.contiguous
            .then(|| unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), len) })
    }
}
