//! Between tensors and Python: nested lists, numpy arrays, scalars.
//!
//! numpy has no bfloat16, so `.numpy()` of a bfloat16 tensor is a float32 array (exact:
//! every bfloat16 is a float32). numpy arrays of other integer or bool dtypes become int64
//! tensors, as `np.asarray(a, dtype=np.int64)` would make them.

use candle_core::{DType, Device, Tensor};
use half::f16;
use numpy::{Element, PyArray1, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyList, PySequence, PyTuple};

use super::dtype::{is_float, name};
use super::error::{TensorError, shape_text};

/// Values gathered from nested Python sequences: integers stay exact until a float appears.
enum Values {
    Ints(Vec<i64>),
    Floats(Vec<f64>),
}

impl Values {
    fn push(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let is_int = !value.is_instance_of::<PyFloat>()
            && (value.is_instance_of::<PyBool>() || value.extract::<i64>().is_ok());
        match self {
            Values::Ints(ints) if is_int => ints.push(value.extract::<i64>()?),
            Values::Ints(ints) => {
                let mut floats: Vec<f64> = ints.iter().map(|&i| i as f64).collect();
                floats.push(float(value)?);
                *self = Values::Floats(floats);
            }
            Values::Floats(floats) => floats.push(float(value)?),
        }
        Ok(())
    }
}

fn float(value: &Bound<'_, PyAny>) -> PyResult<f64> {
    value.extract::<f64>().map_err(|_| {
        let kind = value
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default();
        TensorError::Type(format!("tensor elements must be numbers, not {kind}")).into()
    })
}

fn is_sequence(value: &Bound<'_, PyAny>) -> bool {
    value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>()
}

fn gather(
    value: &Bound<'_, PyAny>,
    depth: usize,
    shape: &mut Vec<usize>,
    out: &mut Values,
) -> PyResult<()> {
    if !is_sequence(value) {
        if depth != shape.len() {
            return Err(ragged(depth).into());
        }
        return out.push(value);
    }
    let items = value.cast::<PySequence>()?;
    let len = items.len()?;
    if depth == shape.len() {
        // First time at this depth: it fixes the dimension (only valid on the first path).
        let first_path = match out {
            Values::Ints(v) => v.is_empty(),
            Values::Floats(v) => v.is_empty(),
        };
        if !first_path {
            return Err(ragged(depth).into());
        }
        shape.push(len);
    } else if shape.get(depth) != Some(&len) {
        return Err(ragged(depth).into());
    }
    for item in items.try_iter()? {
        gather(&item?, depth + 1, shape, out)?;
    }
    Ok(())
}

fn ragged(depth: usize) -> TensorError {
    TensorError::Value(format!(
        "nested sequences have different lengths at depth {depth}: a tensor must be rectangular"
    ))
}

/// A tensor from a number or nested lists/tuples of numbers. Without a dtype: int64 when all
/// are integers (or bools), else float32.
pub fn from_nested(
    value: &Bound<'_, PyAny>,
    dtype: Option<DType>,
    device: &Device,
) -> PyResult<Tensor> {
    let mut shape = Vec::new();
    let mut values = Values::Ints(Vec::new());
    gather(value, 0, &mut shape, &mut values)?;
    let tensor = match values {
        Values::Ints(ints) => {
            let t = Tensor::from_vec(ints, shape, &Device::Cpu).map_err(TensorError::from)?;
            t.to_dtype(dtype.unwrap_or(DType::I64))
        }
        Values::Floats(floats) => {
            let t = Tensor::from_vec(floats, shape, &Device::Cpu).map_err(TensorError::from)?;
            t.to_dtype(dtype.unwrap_or(DType::F32))
        }
    };
    Ok(tensor
        .and_then(|t| t.to_device(device))
        .map_err(TensorError::from)?)
}

fn typed<T: Element + candle_core::WithDType>(
    array: &Bound<'_, PyAny>,
    device: &Device,
) -> PyResult<Option<Tensor>> {
    let Ok(array) = array.cast::<PyArrayDyn<T>>() else {
        return Ok(None);
    };
    let dims = array.shape().to_vec();
    let readonly = array.readonly();
    let tensor = match readonly.as_slice() {
        Ok(slice) if array.is_c_contiguous() => Tensor::from_slice(slice, dims, device),
        _ => {
            let values: Vec<T> = readonly.as_array().iter().copied().collect();
            Tensor::from_vec(values, dims, device)
        }
    };
    Ok(Some(tensor.map_err(TensorError::from)?))
}

/// A tensor with a copy of a numpy array's data.
pub fn from_numpy(array: &Bound<'_, PyAny>, device: &Device) -> PyResult<Tensor> {
    if !is_ndarray(array)? {
        let kind = array.get_type().name()?.to_string();
        return Err(
            TensorError::Type(format!("from_numpy expects a numpy.ndarray, not {kind}")).into(),
        );
    }
    let found = match typed::<f32>(array, device)? {
        Some(t) => Some(t),
        None => match typed::<f64>(array, device)? {
            Some(t) => Some(t),
            None => match typed::<f16>(array, device)? {
                Some(t) => Some(t),
                None => match typed::<i64>(array, device)? {
                    Some(t) => Some(t),
                    None => typed::<u8>(array, device)?,
                },
            },
        },
    };
    if let Some(tensor) = found {
        return Ok(tensor);
    }
    let kind: String = array.getattr("dtype")?.str()?.extract()?;
    let converted = if matches!(kind.chars().next(), Some('i' | 'u' | 'b')) {
        array.call_method1("astype", ("int64",))?
    } else if kind.starts_with("float") {
        array.call_method1("astype", ("float64",))?
    } else {
        return Err(TensorError::Type(format!(
            "numpy dtype {kind} has no tensor equivalent (use float16/32/64, an integer type or bool)"
        ))
        .into());
    };
    from_numpy(&converted, device)
}

/// A numpy array with a copy of the tensor's data (bfloat16 comes out as float32).
pub fn to_numpy<'py>(py: Python<'py>, tensor: &Tensor) -> PyResult<Bound<'py, PyAny>> {
    let dims = tensor.dims().to_vec();
    let flat = tensor
        .to_device(&Device::Cpu)
        .and_then(|t| t.flatten_all())
        .map_err(TensorError::from)?;
    fn array<'py, T: Element + candle_core::WithDType>(
        py: Python<'py>,
        flat: &Tensor,
        dims: Vec<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let values = py
            .detach(|| flat.to_vec1::<T>())
            .map_err(TensorError::from)?;
        Ok(PyArray1::from_vec(py, values).reshape(dims)?.into_any())
    }
    match flat.dtype() {
        DType::F32 => array::<f32>(py, &flat, dims),
        DType::F64 => array::<f64>(py, &flat, dims),
        DType::F16 => array::<f16>(py, &flat, dims),
        DType::I64 => array::<i64>(py, &flat, dims),
        DType::U8 => array::<u8>(py, &flat, dims),
        DType::BF16 => {
            let wide = flat.to_dtype(DType::F32).map_err(TensorError::from)?;
            array::<f32>(py, &wide, dims)
        }
        other => Err(TensorError::Type(format!("no numpy equivalent for {}", name(other))).into()),
    }
}

/// The elements as Python numbers, in row-major order: floats or ints by dtype.
fn numbers<'py>(py: Python<'py>, tensor: &Tensor) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let flat = tensor
        .to_device(&Device::Cpu)
        .and_then(|t| t.flatten_all())
        .map_err(TensorError::from)?;
    if is_float(flat.dtype()) {
        let values = flat
            .to_dtype(DType::F64)
            .and_then(|t| t.to_vec1::<f64>())
            .map_err(TensorError::from)?;
        values
            .into_iter()
            .map(|v| Ok(v.into_pyobject(py)?.into_any()))
            .collect()
    } else {
        let values = flat
            .to_dtype(DType::I64)
            .and_then(|t| t.to_vec1::<i64>())
            .map_err(TensorError::from)?;
        values
            .into_iter()
            .map(|v| Ok(v.into_pyobject(py)?.into_any()))
            .collect()
    }
}

/// The single element as a Python number.
pub fn item<'py>(py: Python<'py>, tensor: &Tensor) -> PyResult<Bound<'py, PyAny>> {
    if tensor.elem_count() != 1 {
        return Err(TensorError::Value(format!(
            "item() needs a tensor with one element, this one has shape {}",
            shape_text(tensor.dims())
        ))
        .into());
    }
    numbers(py, tensor)?
        .pop()
        .ok_or_else(|| TensorError::Value("empty tensor".into()).into())
}

/// Nested Python lists with the tensor's shape (a number for a 0-d tensor).
pub fn to_list<'py>(py: Python<'py>, tensor: &Tensor) -> PyResult<Bound<'py, PyAny>> {
    let mut flat = numbers(py, tensor)?.into_iter();
    fn build<'py>(
        py: Python<'py>,
        dims: &[usize],
        flat: &mut std::vec::IntoIter<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match dims.split_first() {
            None => flat
                .next()
                .ok_or_else(|| TensorError::Value("short tensor".into()).into()),
            Some((&len, rest)) => {
                let items = (0..len)
                    .map(|_| build(py, rest, flat))
                    .collect::<PyResult<Vec<_>>>()?;
                Ok(PyList::new(py, items)?.into_any())
            }
        }
    }
    build(py, tensor.dims(), &mut flat)
}

/// Whether a value is a numpy array (without importing numpy when nobody has).
pub fn is_ndarray(value: &Bound<'_, PyAny>) -> PyResult<bool> {
    let modules = value.py().import("sys")?.getattr("modules")?;
    match modules.get_item("numpy") {
        Ok(numpy) => value.is_instance(&numpy.getattr("ndarray")?),
        Err(_) => Ok(false),
    }
}
