//! The `tandem` Python module every kernel has: tensors backed by candle, on the CPU or,
//! in a GPU runtime, on a CUDA device.
//!
//! ```python
//! import tandem
//! a = tandem.randn(1024, 1024)            # float32 on tandem.default_device()
//! b = tandem.from_numpy(np.eye(1024, dtype=np.float32))
//! c = (a @ b).relu().softmax(-1)
//! c.sum(dim=0).numpy()
//! ```
//!
//! - Creation: `zeros`, `ones`, `full`, `arange`, `randn`, `rand` (shape as ints or a tuple;
//!   `dtype=` and `device=` keywords), `tensor(nested_lists)`, `from_numpy(array)`, `cat`.
//! - `Tensor`: `.shape`, `.dtype`, `.device`, `.ndim`, `.nbytes`, `.to(device/dtype)`,
//!   `.numpy()`, `.tolist()`, `.item()`; `+ - * /` with broadcasting and Python numbers on
//!   either side, `@`/`.matmul`, `.exp() .log() .sqrt() .relu() .softmax(dim)`,
//!   `.sum .mean .max .argmax(dim=None, keepdim=False)`, `.reshape`, `.transpose(d0, d1)`,
//!   indexing (`t[0]`, `t[1:3]`, `t[:, ::2]`, `t[..., None]`, `t[[0, 2]]`), and reprs
//!   (text, and an HTML table in the notebook).
//! - dtypes: `tandem.float32` (the default), `float16`, `bfloat16`, `float64`, `int64`,
//!   `uint8`, or their names as strings. Dtype rules are in [`ops`].
//! - Devices: `"cpu"`, and `"cuda"`/`"cuda:N"` on builds with the `cuda` feature.
//!   `tandem.cuda_available()` says whether one opens; `tandem.default_device()` is the
//!   first CUDA device when the manager started the kernel with
//!   [`TANDEM_RUNTIME`](device::RUNTIME_ENV)`=gpu` and one opens, else `"cpu"`.
//!
//! Failures are Python exceptions ([`error::TensorError`] names which), never a dead kernel.
//! Work runs with the GIL released, so interrupts and output flushing keep going.
//!
//! # Layout
//! - [`class`]: the `Tensor` class; [`ops`]: the operations; [`index`]: `t[...]`;
//!   [`convert`]: lists, numpy, scalars; [`repr`]: text and HTML; [`dtype`], [`device`];
//!   [`error`]; [`inspect`]: the variable inspector the worker runs after each cell;
//!   [`checkpoint`]: `tandem.checkpoint(obj, name)` / `tandem.restore(name)` in the drive.

pub mod checkpoint;
pub mod class;
pub mod convert;
pub mod device;
pub mod dtype;
pub mod error;
pub mod fast;
pub mod index;
pub mod inspect;
pub mod ops;
pub mod repr;

use candle_core::{DType, Device, Tensor};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use class::{PyTensor, compute, device_arg};
use dtype::PyDType;
use error::TensorError;

/// The dtype of `full`/`arange` results when none is given: int64 for Python ints, float32
/// for floats.
fn inferred(value: &Bound<'_, PyAny>, dtype: Option<&Bound<'_, PyAny>>) -> PyResult<DType> {
    match dtype {
        Some(dtype) => dtype::extract(dtype),
        None if value.extract::<i64>().is_ok() => Ok(DType::I64),
        None => Ok(DType::F32),
    }
}

fn float32_or(dtype: Option<&Bound<'_, PyAny>>) -> PyResult<DType> {
    dtype.map_or(Ok(DType::F32), dtype::extract)
}

/// A shape given as `f(2, 3)` or `f((2, 3))`.
fn dims(shape: &Bound<'_, PyTuple>) -> PyResult<Vec<usize>> {
    let signed: Vec<i64> = match shape.len() {
        1 if shape.get_item(0)?.extract::<i64>().is_err() => shape.get_item(0)?.extract()?,
        _ => shape.extract()?,
    };
    signed
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| {
                TensorError::Value(format!("negative dimension {d} in shape {signed:?}")).into()
            })
        })
        .collect()
}

/// Zeros: `tandem.zeros(2, 3, dtype=tandem.float32, device=None)`.
#[pyfunction]
#[pyo3(signature = (*shape, dtype=None, device=None))]
fn zeros(
    py: Python<'_>,
    shape: &Bound<'_, PyTuple>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&str>,
) -> PyResult<PyTensor> {
    let (dims, dtype, device) = (dims(shape)?, float32_or(dtype)?, device_arg(device)?);
    Ok(compute(py, || Ok(Tensor::zeros(dims, dtype, &device)?))?.into())
}

/// Ones: `tandem.ones(2, 3, dtype=tandem.float32, device=None)`.
#[pyfunction]
#[pyo3(signature = (*shape, dtype=None, device=None))]
fn ones(
    py: Python<'_>,
    shape: &Bound<'_, PyTuple>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&str>,
) -> PyResult<PyTensor> {
    let (dims, dtype, device) = (dims(shape)?, float32_or(dtype)?, device_arg(device)?);
    Ok(compute(py, || Ok(Tensor::ones(dims, dtype, &device)?))?.into())
}

/// One value everywhere: `tandem.full((2, 3), 7.5)`; the dtype follows the value unless given.
#[pyfunction]
#[pyo3(signature = (shape, fill_value, dtype=None, device=None))]
fn full(
    py: Python<'_>,
    shape: &Bound<'_, PyAny>,
    fill_value: &Bound<'_, PyAny>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&str>,
) -> PyResult<PyTensor> {
    let shape = match shape.extract::<i64>() {
        Ok(n) => PyTuple::new(py, [n])?,
        Err(_) => PyTuple::new(py, [shape])?,
    };
    let (dims, dtype, device) = (
        dims(&shape)?,
        inferred(fill_value, dtype)?,
        device_arg(device)?,
    );
    let value: f64 = fill_value.extract()?;
    let exact = fill_value.extract::<i64>().ok();
    Ok(compute(py, || {
        let filled = match exact {
            Some(v) => Tensor::full(v, dims, &Device::Cpu)?,
            None => Tensor::full(value, dims, &Device::Cpu)?,
        };
        Ok(filled.to_dtype(dtype)?.to_device(&device)?)
    })?
    .into())
}

/// `tandem.arange(end)`, `arange(start, end, step=1)`: int64 for int arguments, else float32.
#[pyfunction]
#[pyo3(signature = (start, end=None, step=None, dtype=None, device=None))]
fn arange(
    py: Python<'_>,
    start: &Bound<'_, PyAny>,
    end: Option<&Bound<'_, PyAny>>,
    step: Option<&Bound<'_, PyAny>>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&str>,
) -> PyResult<PyTensor> {
    let (start, end) = match end {
        Some(end) => (start.clone(), end.clone()),
        None => (0i64.into_pyobject(py)?.into_any(), start.clone()),
    };
    let step = match step {
        Some(step) => step.clone(),
        None => 1i64.into_pyobject(py)?.into_any(),
    };
    let ints = [&start, &end, &step]
        .iter()
        .all(|v| v.extract::<i64>().is_ok());
    let dtype = match dtype {
        Some(dtype) => dtype::extract(dtype)?,
        None if ints => DType::I64,
        None => DType::F32,
    };
    let device = device_arg(device)?;
    let (a, b, s): (f64, f64, f64) = (start.extract()?, end.extract()?, step.extract()?);
    if s == 0.0 || !s.is_finite() || !a.is_finite() || !b.is_finite() {
        return Err(
            TensorError::Value("arange needs finite bounds and a non-zero step".into()).into(),
        );
    }
    let count = ((b - a) / s).ceil().max(0.0) as usize;
    Ok(compute(py, || {
        let t = if ints {
            let (a, s) = (a as i64, s as i64);
            let values: Vec<i64> = (0..count as i64).map(|k| a + k * s).collect();
            Tensor::from_vec(values, count, &Device::Cpu)?
        } else {
            let values: Vec<f64> = (0..count).map(|k| a + k as f64 * s).collect();
            Tensor::from_vec(values, count, &Device::Cpu)?
        };
        Ok(t.to_dtype(dtype)?.to_device(&device)?)
    })?
    .into())
}

/// Standard normal samples: `tandem.randn(2, 3, dtype=tandem.float32, device=None)`.
#[pyfunction]
#[pyo3(signature = (*shape, dtype=None, device=None))]
fn randn(
    py: Python<'_>,
    shape: &Bound<'_, PyTuple>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&str>,
) -> PyResult<PyTensor> {
    let (dims, dtype, device) = (dims(shape)?, float32_or(dtype)?, device_arg(device)?);
    Ok(compute(py, || class::random(dims, dtype, &device, true))?.into())
}

/// Uniform samples in `[0, 1)`: `tandem.rand(2, 3, dtype=tandem.float32, device=None)`.
#[pyfunction]
#[pyo3(signature = (*shape, dtype=None, device=None))]
fn rand(
    py: Python<'_>,
    shape: &Bound<'_, PyTuple>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&str>,
) -> PyResult<PyTensor> {
    let (dims, dtype, device) = (dims(shape)?, float32_or(dtype)?, device_arg(device)?);
    Ok(compute(py, || class::random(dims, dtype, &device, false))?.into())
}

/// A tensor from a number, nested lists, a numpy array or another tensor (copied).
#[pyfunction]
#[pyo3(signature = (data, dtype=None, device=None))]
pub fn tensor(
    data: &Bound<'_, PyAny>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&str>,
) -> PyResult<PyTensor> {
    let py = data.py();
    let dtype = dtype.map(dtype::extract).transpose()?;
    let device = device_arg(device)?;
    let base = if let Ok(other) = data.cast::<PyTensor>() {
        let t = other.get().inner.clone();
        compute(py, || Ok(t.to_device(&device)?))?
    } else if convert::is_ndarray(data)? {
        convert::from_numpy(data, &device)?
    } else {
        convert::from_nested(data, dtype, &device)?
    };
    Ok(match dtype {
        Some(dtype) if dtype != base.dtype() => compute(py, || Ok(base.to_dtype(dtype)?))?,
        _ => base,
    }
    .into())
}

/// A tensor with a copy of a numpy array (on the default device unless `device` says).
#[pyfunction]
#[pyo3(signature = (array, device=None))]
fn from_numpy(array: &Bound<'_, PyAny>, device: Option<&str>) -> PyResult<PyTensor> {
    Ok(convert::from_numpy(array, &device_arg(device)?)?.into())
}

/// Joins tensors along an existing dimension: `tandem.cat([a, b], dim=0)`.
#[pyfunction]
#[pyo3(signature = (tensors, dim=0))]
fn cat(py: Python<'_>, tensors: Vec<PyRef<'_, PyTensor>>, dim: isize) -> PyResult<PyTensor> {
    let inner: Vec<Tensor> = tensors.iter().map(|t| t.inner.clone()).collect();
    Ok(compute(py, || ops::cat(&inner, dim))?.into())
}

/// Matrix product: `tandem.matmul(a, b)` is `a @ b`.
#[pyfunction]
fn matmul(py: Python<'_>, a: PyRef<'_, PyTensor>, b: PyRef<'_, PyTensor>) -> PyResult<PyTensor> {
    let (a, b) = (a.inner.clone(), b.inner.clone());
    Ok(compute(py, || ops::matmul(&a, &b))?.into())
}

/// Where new tensors go: `"cuda:0"` in a GPU runtime with a CUDA device, else `"cpu"`.
#[pyfunction]
fn default_device() -> String {
    device::name(&device::default())
}

/// Whether this kernel can put tensors on a CUDA device.
#[pyfunction]
fn cuda_available() -> bool {
    device::cuda_available()
}

/// Builds the `tandem` module (the worker puts it into `sys.modules` before user code runs).
pub fn module(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    let module = PyModule::new(py, "tandem")?;
    module.add(
        "__doc__",
        "Tandem's tensors: candle-backed, on the CPU or a CUDA GPU.",
    )?;
    module.add_class::<PyTensor>()?;
    module.add_class::<PyDType>()?;
    for dtype in dtype::SUPPORTED {
        module.add(dtype::name(dtype), PyDType { dtype })?;
    }
    module.add_function(wrap_pyfunction!(zeros, &module)?)?;
    module.add_function(wrap_pyfunction!(ones, &module)?)?;
    module.add_function(wrap_pyfunction!(full, &module)?)?;
    module.add_function(wrap_pyfunction!(arange, &module)?)?;
    module.add_function(wrap_pyfunction!(randn, &module)?)?;
    module.add_function(wrap_pyfunction!(rand, &module)?)?;
    module.add_function(wrap_pyfunction!(tensor, &module)?)?;
    module.add_function(wrap_pyfunction!(from_numpy, &module)?)?;
    module.add_function(wrap_pyfunction!(cat, &module)?)?;
    module.add_function(wrap_pyfunction!(matmul, &module)?)?;
    module.add_function(wrap_pyfunction!(default_device, &module)?)?;
    module.add_function(wrap_pyfunction!(cuda_available, &module)?)?;
    checkpoint::add(py, &module)?;
    Ok(module)
}

/// Registers `tandem` in `sys.modules`, so `import tandem` finds it in every kernel.
pub fn register(py: Python<'_>) -> PyResult<()> {
    let module = module(py)?;
    py.import("sys")?
        .getattr("modules")?
        .set_item("tandem", module)?;
    Ok(())
}
