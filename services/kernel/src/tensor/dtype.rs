//! Element types: the six `tandem` supports, their Python names, and `tandem.float32` & co.

use candle_core::DType;
use pyo3::basic::CompareOp;
use pyo3::prelude::*;
use pyo3::types::PyString;

use super::error::{Result, TensorError};

/// The dtypes `tandem` exposes, under the names `tandem.<name>` has.
pub const SUPPORTED: [DType; 6] = [
    DType::F32,
    DType::F16,
    DType::BF16,
    DType::F64,
    DType::I64,
    DType::U8,
];

/// The Python name of a dtype (`float32`, as numpy and torch call it).
pub fn name(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "float32",
        DType::F16 => "float16",
        DType::BF16 => "bfloat16",
        DType::F64 => "float64",
        DType::I64 => "int64",
        DType::U8 => "uint8",
        other => other.as_str(),
    }
}

/// A dtype from its Python name or short name (`"float32"`, `"f32"`, `"float"`, ...).
pub fn parse(text: &str) -> Result<DType> {
    let dtype = match text.strip_prefix("torch.").unwrap_or(text) {
        "float32" | "f32" | "float" => DType::F32,
        "float16" | "f16" | "half" => DType::F16,
        "bfloat16" | "bf16" => DType::BF16,
        "float64" | "f64" | "double" => DType::F64,
        "int64" | "i64" | "long" | "int" => DType::I64,
        "uint8" | "u8" => DType::U8,
        _ => {
            let known: Vec<&str> = SUPPORTED.iter().map(|d| name(*d)).collect();
            return Err(TensorError::Type(format!(
                "unknown dtype {text:?}: tandem supports {}",
                known.join(", ")
            )));
        }
    };
    Ok(dtype)
}

/// Whether the dtype holds floating-point numbers.
pub fn is_float(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::F16 | DType::BF16 | DType::F64)
}

/// Bytes per element.
pub fn size(dtype: DType) -> usize {
    dtype.size_in_bytes()
}

/// A dtype argument: `tandem.float32`, `"float32"`, or numpy's `np.float32` /
/// `np.dtype("float32")` (recognised by their `name` / `__name__`).
pub fn extract(value: &Bound<'_, PyAny>) -> PyResult<DType> {
    if let Ok(dtype) = value.cast::<PyDType>() {
        return Ok(dtype.get().dtype);
    }
    if let Ok(text) = value.extract::<String>() {
        return Ok(parse(&text)?);
    }
    for attribute in ["name", "__name__"] {
        if let Ok(text) = value.getattr(attribute).and_then(|n| n.extract::<String>()) {
            return Ok(parse(&text)?);
        }
    }
    let kind = value.get_type().name()?.to_string();
    Err(TensorError::Type(format!(
        "expected a dtype such as tandem.float32 or 'float32', got {kind}"
    ))
    .into())
}

/// A dtype as notebook code sees it: `tandem.float32`, ... It compares equal to its name,
/// so `t.dtype == "float32"` works as well as `t.dtype == tandem.float32`.
#[pyclass(name = "dtype", module = "tandem", frozen)]
#[derive(Debug, Clone, Copy)]
pub struct PyDType {
    /// The candle dtype.
    pub dtype: DType,
}

#[pymethods]
impl PyDType {
    /// The dtype's name, e.g. `float32`.
    #[getter]
    fn name(&self) -> &'static str {
        name(self.dtype)
    }

    /// Bytes per element.
    #[getter]
    fn itemsize(&self) -> usize {
        size(self.dtype)
    }

    /// Whether the dtype holds floating-point numbers.
    #[getter]
    fn is_floating_point(&self) -> bool {
        is_float(self.dtype)
    }

    fn __repr__(&self) -> String {
        format!("tandem.{}", name(self.dtype))
    }

    fn __str__(&self) -> &'static str {
        name(self.dtype)
    }

    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        // Equal to its name, so it must hash like it.
        PyString::new(py, name(self.dtype)).hash()
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> PyResult<Py<PyAny>> {
        let py = other.py();
        let same = match extract(other) {
            Ok(dtype) => dtype == self.dtype,
            Err(_) => return Ok(py.NotImplemented()),
        };
        match op {
            CompareOp::Eq => Ok(same.into_pyobject(py)?.to_owned().into_any().unbind()),
            CompareOp::Ne => Ok((!same).into_pyobject(py)?.to_owned().into_any().unbind()),
            _ => Ok(py.NotImplemented()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for dtype in SUPPORTED {
            assert_eq!(parse(name(dtype)).unwrap(), dtype);
        }
        assert_eq!(parse("bf16").unwrap(), DType::BF16);
        assert!(
            parse("complex64")
                .unwrap_err()
                .to_string()
                .contains("float32")
        );
    }
}
