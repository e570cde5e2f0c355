//! `.npy` input and output for real activations, so the decoding loop can run on keys, values
//! and queries dumped from a model instead of [`super::decode`]'s synthetic ones.
//!
//! Reading accepts little-endian float32 (`<f4`) and float16 (`<f2`, converted to f32) in C
//! order, format versions 1, 2 and 3 (`ndarray-npy` parses the header); anything else is an
//! error that names the file and what is wrong. numpy has no bfloat16: save bf16 tensors as
//! float32 (`t.float().numpy()`) or float16. Writing is float32, C order.
//!
//! # A layer's files
//! One directory per layer, holding (the layout of [`super::decode::LayerData`]):
//! - `keys.npy`: `[kv_heads][N + T][head_dim]` (after RoPE, as the cache stores them), the
//!   prefill's `N` tokens followed by the `T` decoded tokens, one appended per step;
//! - `values.npy`: the same shape;
//! - `queries.npy`: `[T][kv_heads * gqa_group][head_dim]`, query heads `h*g..(h+1)*g` sharing
//!   KV head `h` (Hugging Face `repeat_kv` order).
//!
//! A model dump may hold every layer as `ROOT/layer_<l>/` (e.g. `layer_0`, `layer_31`), or a
//! single layer in `ROOT` itself, which is then used for every layer: [`layer_dir`] picks
//! the directory for a layer, [`load_layer`] reads and checks one.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, ArrayView, Dimension, IxDyn};
use ndarray_npy::npy::header::{Header, Layout};
use ndarray_npy::WriteNpyExt;
use thiserror::Error;

use super::decode::{check_layer_shapes, LayerData};

/// File names of a layer's arrays.
pub const KEYS_FILE: &str = "keys.npy";
/// See [`KEYS_FILE`].
pub const VALUES_FILE: &str = "values.npy";
/// See [`KEYS_FILE`].
pub const QUERIES_FILE: &str = "queries.npy";

/// Why an `.npy` file or a layer's set of them cannot be used; every variant names the file.
#[derive(Debug, Error)]
pub enum NpyError {
    /// The file cannot be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The header is not a valid `.npy` header.
    #[error("{path}: not a valid .npy file: {message}")]
    Header {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An element type other than little-endian float32 or float16.
    #[error(
        "{path}: element type {found} not supported: expected little-endian float32 ('<f4') \
         or float16 ('<f2'){hint}"
    )]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The header's `descr`.
        found: String,
        /// A suggestion for common cases.
        hint: &'static str,
    },
    /// The data is in Fortran order.
    #[error(
        "{path}: Fortran-order array not supported: save it in C order (np.ascontiguousarray)"
    )]
    FortranOrder {
        /// The file.
        path: PathBuf,
    },
    /// The data is shorter or longer than the header's shape says.
    #[error("{path}: shape {shape:?} needs {expected} data bytes, the file has {found}")]
    Length {
        /// The file.
        path: PathBuf,
        /// The header's shape.
        shape: Vec<usize>,
        /// Bytes the shape needs.
        expected: u64,
        /// Bytes after the header.
        found: u64,
    },
    /// The array's shape does not fit what is expected of it.
    #[error("{path}: {message}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The element types read.
#[derive(Clone, Copy)]
enum Dtype {
    F32,
    F16,
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 => 2,
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> NpyError + '_ {
    move |source| NpyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Opens `path` and checks its header: the element type and the shape, the reader left at
/// the first data byte.
fn open(path: &Path) -> Result<(BufReader<File>, Dtype, Vec<usize>, u64), NpyError> {
    let file = File::open(path).map_err(io_error(path))?;
    let file_len = file.metadata().map_err(io_error(path))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let header = Header::from_reader(&mut reader).map_err(|e| NpyError::Header {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let descr = header.type_descriptor.as_string().cloned();
    let dtype = match descr.as_deref() {
        Some("<f4") => Dtype::F32,
        Some("<f2") => Dtype::F16,
        _ => {
            let hint = match descr.as_deref() {
                Some(">f4" | ">f2") => ": the data is big-endian (use arr.astype('<f4'))",
                Some("<f8" | ">f8") => ": save float64 as float32 (arr.astype(np.float32))",
                Some("|V2" | "<V2") => ": bfloat16 has no numpy type, save it as float32",
                _ => "",
            };
            return Err(NpyError::Dtype {
                path: path.to_owned(),
                found: header.type_descriptor.to_string(),
                hint,
            });
        }
    };
    if header.layout == Layout::Fortran {
        return Err(NpyError::FortranOrder {
            path: path.to_owned(),
        });
    }
    let header_len = reader.stream_position().map_err(io_error(path))?;
    let data_len = file_len.saturating_sub(header_len);
    Ok((reader, dtype, header.shape, data_len))
}

/// Reads the header of `path` only: the array's shape.
pub fn read_npy_shape(path: &Path) -> Result<Vec<usize>, NpyError> {
    open(path).map(|(_, _, shape, _)| shape)
}

/// Reads a float32 or float16 `.npy` file (C order, little-endian) as f32.
pub fn read_npy_f32(path: &Path) -> Result<ArrayD<f32>, NpyError> {
    let (mut reader, dtype, shape, data_len) = open(path)?;
    let count = shape.iter().try_fold(1usize, |a, &b| a.checked_mul(b));
    let expected = count
        .and_then(|c| c.checked_mul(dtype.size()))
        .map(|b| b as u64);
    let Some(expected) = expected.filter(|&e| e == data_len) else {
        return Err(NpyError::Length {
            path: path.to_owned(),
            shape,
            expected: expected.unwrap_or(u64::MAX),
            found: data_len,
        });
    };
    let mut data = Vec::with_capacity(expected as usize / dtype.size());
    // Converted a block at a time: no second full-size buffer for a multi-GB file.
    let mut block = vec![0u8; (1 << 20) * dtype.size()];
    let mut left = expected as usize;
    while left > 0 {
        let take = left.min(block.len());
        let bytes = &mut block[..take];
        reader.read_exact(bytes).map_err(io_error(path))?;
        match dtype {
            Dtype::F32 => data.extend(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            ),
            Dtype::F16 => data.extend(
                bytes
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
            ),
        }
        left -= bytes.len();
    }
    ArrayD::from_shape_vec(IxDyn(&shape), data).map_err(|e| NpyError::Shape {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Reads a 3-axis float32 or float16 `.npy` file as f32.
pub fn read_npy3(path: &Path) -> Result<ndarray::Array3<f32>, NpyError> {
    let a = read_npy_f32(path)?;
    let shape = a.shape().to_vec();
    a.into_dimensionality().map_err(|_| NpyError::Shape {
        path: path.to_owned(),
        message: format!("expected 3 axes, found shape {shape:?}"),
    })
}

/// Writes `array` as a float32 `.npy` file in C order (version 1 header).
pub fn write_npy_f32<D: Dimension>(path: &Path, array: ArrayView<f32, D>) -> Result<(), NpyError> {
    let file = File::create(path).map_err(io_error(path))?;
    let standard = array.as_standard_layout();
    standard
        .write_npy(io::BufWriter::with_capacity(1 << 20, file))
        .map_err(|e| match e {
            ndarray_npy::WriteNpyError::Io(source) => NpyError::Io {
                path: path.to_owned(),
                source,
            },
            other => NpyError::Header {
                path: path.to_owned(),
                message: other.to_string(),
            },
        })
}

/// The directory holding layer `layer`'s files: `root/layer_<layer>` when it exists, else
/// `root` (a single layer, used for every layer).
pub fn layer_dir(root: &Path, layer: usize) -> PathBuf {
    let own = root.join(format!("layer_{layer}"));
    if own.is_dir() {
        own
    } else {
        root.to_owned()
    }
}

/// Reads `keys.npy`, `values.npy` and `queries.npy` of `dir` and checks them against each
/// other (shapes only, from the headers, before any data is read); errors name the file.
pub fn load_layer(dir: &Path) -> Result<LayerData, NpyError> {
    let paths = [KEYS_FILE, VALUES_FILE, QUERIES_FILE].map(|f| dir.join(f));
    let shapes = [
        read_npy_shape(&paths[0])?,
        read_npy_shape(&paths[1])?,
        read_npy_shape(&paths[2])?,
    ];
    check_layer_shapes(&shapes[0], &shapes[1], &shapes[2]).map_err(|e| {
        // The message starts with the array it is about: name that file.
        let which = ["keys", "values", "queries"]
            .iter()
            .position(|w| e.0.starts_with(w))
            .unwrap_or(0);
        NpyError::Shape {
            path: paths[which].clone(),
            message: e.0,
        }
    })?;
    let layer = LayerData {
        keys: read_npy3(&paths[0])?,
        values: read_npy3(&paths[1])?,
        queries: read_npy3(&paths[2])?,
    };
    Ok(layer)
}

/// Writes a layer as `keys.npy`, `values.npy` and `queries.npy` into `dir` (created if
/// missing): a dump [`load_layer`] reads back.
pub fn save_layer(dir: &Path, layer: &LayerData) -> Result<(), NpyError> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    write_npy_f32(&dir.join(KEYS_FILE), layer.keys.view())?;
    write_npy_f32(&dir.join(VALUES_FILE), layer.values.view())?;
    write_npy_f32(&dir.join(QUERIES_FILE), layer.queries.view())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array3, ShapeBuilder};
    use std::io::Write;

    /// A fresh directory under the target dir's temp area (no tempfile dependency).
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kvpq-npy-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A version 1 `.npy` file with the given header dictionary and data bytes.
    fn raw(path: &Path, dict: &str, data: &[u8]) {
        let mut header = dict.to_string();
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        let mut f = File::create(path).unwrap();
        f.write_all(b"\x93NUMPY\x01\x00").unwrap();
        f.write_all(&(header.len() as u16).to_le_bytes()).unwrap();
        f.write_all(header.as_bytes()).unwrap();
        f.write_all(data).unwrap();
    }

    fn message(e: NpyError) -> String {
        e.to_string()
    }

    #[test]
    fn f32_round_trip_any_layout() {
        let dir = scratch("roundtrip");
        let a = Array3::from_shape_fn((2, 3, 4), |(i, j, k)| (i * 100 + j * 10 + k) as f32 - 0.5);
        let path = dir.join("a.npy");
        write_npy_f32(&path, a.view()).unwrap();
        assert_eq!(read_npy3(&path).unwrap(), a);
        // A Fortran-layout array is written in C order.
        let f = Array3::from_shape_vec((2, 3, 4).f(), a.iter().copied().collect()).unwrap();
        write_npy_f32(&path, f.view()).unwrap();
        assert_eq!(read_npy3(&path).unwrap(), f);
        assert_eq!(read_npy_shape(&path).unwrap(), vec![2, 3, 4]);
    }

    #[test]
    fn f16_is_read_as_f32() {
        let dir = scratch("f16");
        let values = [1.0f32, -2.5, 0.099975586, 65504.0];
        let bytes: Vec<u8> = values
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect();
        let path = dir.join("h.npy");
        raw(
            &path,
            "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 2), }",
            &bytes,
        );
        let a = read_npy_f32(&path).unwrap();
        assert_eq!(a.shape(), &[2, 2]);
        assert_eq!(a.iter().copied().collect::<Vec<_>>(), values.to_vec());
    }

    #[test]
    fn bad_files_are_named_and_explained() {
        let dir = scratch("bad");
        let p = dir.join("x.npy");
        raw(
            &p,
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }",
            &[0; 8],
        );
        let e = message(read_npy_f32(&p).unwrap_err());
        assert!(
            e.contains("x.npy") && e.contains("<f8") && e.contains("float32"),
            "{e}"
        );
        raw(
            &p,
            "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }",
            &[0; 4],
        );
        assert!(message(read_npy_f32(&p).unwrap_err()).contains("big-endian"));
        raw(
            &p,
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
            &[0; 16],
        );
        assert!(message(read_npy_f32(&p).unwrap_err()).contains("Fortran"));
        raw(
            &p,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }",
            &[0; 12],
        );
        let e = message(read_npy_f32(&p).unwrap_err());
        assert!(e.contains("needs 16 data bytes, the file has 12"), "{e}");
        raw(
            &p,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }",
            &[0; 8],
        );
        assert!(message(read_npy_f32(&p).unwrap_err()).contains("the file has 8"));
        std::fs::write(&p, b"not an npy file at all").unwrap();
        let e = message(read_npy_f32(&p).unwrap_err());
        assert!(e.contains("x.npy") && e.contains("not a valid .npy"), "{e}");
        let e = message(read_npy_f32(&dir.join("missing.npy")).unwrap_err());
        assert!(e.contains("missing.npy"), "{e}");
        raw(
            &p,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }",
            &[0; 16],
        );
        let e = message(read_npy3(&p).unwrap_err());
        assert!(e.contains("expected 3 axes"), "{e}");
    }

    fn layer(heads: usize, tokens: usize, steps: usize, q_heads: usize, d: usize) -> LayerData {
        LayerData {
            keys: Array3::from_shape_fn((heads, tokens, d), |(h, t, j)| (h + t + j) as f32),
            values: Array3::from_shape_fn((heads, tokens, d), |(h, t, j)| (h * t + j) as f32),
            queries: Array3::from_shape_fn((steps, q_heads, d), |(s, h, j)| (s + h * j) as f32),
        }
    }

    #[test]
    fn layers_round_trip_and_mismatches_name_the_file() {
        let root = scratch("layers");
        let l = layer(2, 10, 3, 4, 8);
        save_layer(&root, &l).unwrap();
        assert_eq!(layer_dir(&root, 5), root);
        assert_eq!(load_layer(&layer_dir(&root, 5)).unwrap(), l);
        let l7 = layer(2, 12, 3, 4, 8);
        save_layer(&root.join("layer_7"), &l7).unwrap();
        assert_eq!(load_layer(&layer_dir(&root, 7)).unwrap(), l7);

        let bad = scratch("badlayer");
        save_layer(&bad, &l).unwrap();
        write_npy_f32(
            &bad.join(QUERIES_FILE),
            Array3::<f32>::zeros((3, 3, 8)).view(),
        )
        .unwrap();
        let e = message(load_layer(&bad).unwrap_err());
        assert!(e.contains("queries.npy") && e.contains("multiple"), "{e}");
        write_npy_f32(
            &bad.join(QUERIES_FILE),
            Array3::<f32>::zeros((3, 4, 6)).view(),
        )
        .unwrap();
        let e = message(load_layer(&bad).unwrap_err());
        assert!(e.contains("queries.npy") && e.contains("head_dim 6"), "{e}");
        write_npy_f32(
            &bad.join(VALUES_FILE),
            Array3::<f32>::zeros((2, 9, 8)).view(),
        )
        .unwrap();
        let e = message(load_layer(&bad).unwrap_err());
        assert!(
            e.contains("values.npy") && e.contains("differs from keys"),
            "{e}"
        );
        std::fs::remove_file(bad.join(KEYS_FILE)).unwrap();
        let e = message(load_layer(&bad).unwrap_err());
        assert!(e.contains("keys.npy"), "{e}");
        let _ = std::fs::remove_dir_all(root);
        let _ = std::fs::remove_dir_all(bad);
    }
}
