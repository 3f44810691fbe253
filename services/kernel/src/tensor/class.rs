//! `tandem.Tensor`: the Python class over a candle tensor. Each method checks its
//! arguments, then runs the candle work with the GIL released ([`compute`]).

use std::panic::{AssertUnwindSafe, catch_unwind};

use candle_core::{DType, Device, Tensor};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::convert;
use super::device;
use super::dtype::{self, PyDType};
use super::error::{Result, TensorError, shape_text};
use super::index;
use super::ops::{self, Arith, Reduce, Scalar, Unary};
use super::repr;

/// Runs candle work without the GIL, so other Python threads, output flushing and
/// interrupts keep going during a long matmul. A panic inside candle (it has some for
/// unsupported cases) becomes an error instead of unwinding into the interpreter.
pub fn compute<T: Send>(py: Python<'_>, work: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    py.detach(|| match catch_unwind(AssertUnwindSafe(work)) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(TensorError::Panicked(message))
        }
    })
}

/// A device argument: a name (`"cpu"`, `"cuda:0"`), or the default device when absent.
pub fn device_arg(device: Option<&str>) -> Result<Device> {
    device.map_or_else(|| Ok(device::default()), device::parse)
}

/// An n-dimensional array of one dtype on one device, backed by candle.
#[pyclass(name = "Tensor", module = "tandem", frozen)]
#[derive(Debug, Clone)]
pub struct PyTensor {
    /// The candle tensor (cheap to clone: its storage is shared).
    pub inner: Tensor,
}

impl From<Tensor> for PyTensor {
    fn from(inner: Tensor) -> Self {
        PyTensor { inner }
    }
}

/// The other side of an operator.
#[derive(FromPyObject)]
enum Operand<'py> {
    Tensor(PyRef<'py, PyTensor>),
    Int(i64),
    Float(f64),
}

impl PyTensor {
    fn arith(
        &self,
        py: Python<'_>,
        other: Operand<'_>,
        op: Arith,
        reversed: bool,
    ) -> PyResult<PyTensor> {
        let lhs = &self.inner;
        let out = match other {
            Operand::Tensor(rhs) => {
                let rhs = &rhs.inner;
                compute(py, || {
                    if reversed {
                        ops::binary(op, rhs, lhs)
                    } else {
                        ops::binary(op, lhs, rhs)
                    }
                })
            }
            Operand::Int(v) => {
                compute(py, || ops::binary_scalar(op, lhs, Scalar::Int(v), reversed))
            }
            Operand::Float(v) => compute(py, || {
                ops::binary_scalar(op, lhs, Scalar::Float(v), reversed)
            }),
        };
        Ok(out?.into())
    }

    fn reduce(
        &self,
        py: Python<'_>,
        kind: Reduce,
        dim: Option<isize>,
        keepdim: bool,
    ) -> PyResult<PyTensor> {
        Ok(compute(py, || ops::reduce(kind, &self.inner, dim, keepdim))?.into())
    }

    fn unary(&self, py: Python<'_>, op: Unary) -> PyResult<PyTensor> {
        Ok(compute(py, || ops::unary(op, &self.inner))?.into())
    }
}

#[pymethods]
impl PyTensor {
    /// `tandem.Tensor(data, dtype=None, device=None)`: the same as `tandem.tensor(...)`.
    #[new]
    #[pyo3(signature = (data, dtype=None, device=None))]
    fn py_new(
        data: &Bound<'_, PyAny>,
        dtype: Option<&Bound<'_, PyAny>>,
        device: Option<&str>,
    ) -> PyResult<Self> {
        super::tensor(data, dtype, device)
    }

    /// numpy must hand `array <op> tensor` to the tensor's reflected operator instead of
    /// looping over the tensor as an object sequence.
    #[classattr]
    fn __array_ufunc__() -> Option<bool> {
        None
    }

    /// The dimensions, as a tuple.
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.inner.dims())
    }

    /// The element type (`tandem.float32`, ...).
    #[getter]
    fn dtype(&self) -> PyDType {
        PyDType {
            dtype: self.inner.dtype(),
        }
    }

    /// Where the data lives: `"cpu"` or `"cuda:N"`.
    #[getter]
    fn device(&self) -> String {
        device::name(self.inner.device())
    }

    /// The number of dimensions.
    #[getter]
    fn ndim(&self) -> usize {
        self.inner.rank()
    }

    /// The size of the data in bytes.
    #[getter]
    fn nbytes(&self) -> usize {
        self.inner.elem_count() * dtype::size(self.inner.dtype())
    }

    /// The number of elements.
    fn numel(&self) -> usize {
        self.inner.elem_count()
    }

    /// A copy with another dtype and/or on another device: `t.to("cuda")`,
    /// `t.to(tandem.float16)`, `t.to("cpu", "float64")`, `t.to(dtype=..., device=...)`.
    #[pyo3(signature = (*args, dtype=None, device=None))]
    fn to(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        dtype: Option<&Bound<'_, PyAny>>,
        device: Option<&str>,
    ) -> PyResult<PyTensor> {
        let mut target_dtype = dtype.map(dtype::extract).transpose()?;
        let mut target_device = device.map(device::parse).transpose()?;
        for arg in args.iter() {
            let as_dtype = dtype::extract(&arg);
            match (as_dtype, arg.extract::<String>()) {
                (Ok(d), _) => target_dtype = Some(d),
                (Err(_), Ok(name)) => target_device = Some(device::parse(&name)?),
                (Err(error), Err(_)) => return Err(error),
            }
        }
        let t = &self.inner;
        Ok(compute(py, || {
            let moved = match &target_device {
                Some(d) => ops::to_device(t, d)?,
                None => t.clone(),
            };
            Ok(match target_dtype {
                Some(d) if d != moved.dtype() => moved.to_dtype(d)?,
                _ => moved,
            })
        })?
        .into())
    }

    /// A numpy array with a copy of the data (bfloat16 becomes float32).
    fn numpy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::to_numpy(py, &self.inner)
    }

    /// `np.asarray(t)`.
    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__<'py>(
        &self,
        py: Python<'py>,
        dtype: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _ = copy; // always a fresh array
        let array = convert::to_numpy(py, &self.inner)?;
        match dtype {
            Some(dtype) => array.call_method1("astype", (dtype,)),
            None => Ok(array),
        }
    }

    /// The values as nested Python lists.
    fn tolist<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::to_list(py, &self.inner)
    }

    /// The single element as a Python number.
    fn item<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::item(py, &self.inner)
    }

    fn __float__(&self, py: Python<'_>) -> PyResult<f64> {
        convert::item(py, &self.inner)?.extract()
    }

    fn __int__(&self, py: Python<'_>) -> PyResult<i64> {
        let value = convert::item(py, &self.inner)?;
        value.call_method0("__int__")?.extract()
    }

    fn __bool__(&self, py: Python<'_>) -> PyResult<bool> {
        if self.inner.elem_count() != 1 {
            return Err(TensorError::Value(format!(
                "the truth value of a tensor with shape {} is ambiguous",
                shape_text(self.inner.dims())
            ))
            .into());
        }
        convert::item(py, &self.inner)?.is_truthy()
    }

    fn __len__(&self) -> PyResult<usize> {
        self.inner
            .dims()
            .first()
            .copied()
            .ok_or_else(|| TensorError::Type("len() of a 0-d tensor".into()).into())
    }

    fn __getitem__(&self, key: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        let items = index::parse(key)?;
        Ok(index::apply(&self.inner, &items)?.into())
    }

    fn __add__(&self, py: Python<'_>, other: Operand<'_>) -> PyResult<PyTensor> {
        self.arith(py, other, Arith::Add, false)
    }

    fn __radd__(&self, py: Python<'_>, other: Operand<'_>) -> PyResult<PyTensor> {
        self.arith(py, other, Arith::Add, true)
    }

    fn __sub__(&self, py: Python<'_>, other: Operand<'_>) -> PyResult<PyTensor> {
        self.arith(py, other, Arith::Sub, false)
    }

    fn __rsub__(&self, py: Python<'_>, other: Operand<'_>) -> PyResult<PyTensor> {
        self.arith(py, other, Arith::Sub, true)
    }

    fn __mul__(&self, py: Python<'_>, other: Operand<'_>) -> PyResult<PyTensor> {
        self.arith(py, other, Arith::Mul, false)
    }

    fn __rmul__(&self, py: Python<'_>, other: Operand<'_>) -> PyResult<PyTensor> {
        self.arith(py, other, Arith::Mul, true)
    }

    fn __truediv__(&self, py: Python<'_>, other: Operand<'_>) -> PyResult<PyTensor> {
        self.arith(py, other, Arith::Div, false)
    }

    fn __rtruediv__(&self, py: Python<'_>, other: Operand<'_>) -> PyResult<PyTensor> {
        self.arith(py, other, Arith::Div, true)
    }

    fn __neg__(&self, py: Python<'_>) -> PyResult<PyTensor> {
        Ok(compute(py, || ops::neg(&self.inner))?.into())
    }

    fn __matmul__(&self, py: Python<'_>, other: PyRef<'_, PyTensor>) -> PyResult<PyTensor> {
        self.matmul(py, other)
    }

    fn __rmatmul__(&self, py: Python<'_>, other: PyRef<'_, PyTensor>) -> PyResult<PyTensor> {
        let (lhs, rhs) = (&other.inner, &self.inner);
        Ok(compute(py, || ops::matmul(lhs, rhs))?.into())
    }

    /// Matrix product (`t @ other`), numpy's rules for 1-d and batched operands.
    fn matmul(&self, py: Python<'_>, other: PyRef<'_, PyTensor>) -> PyResult<PyTensor> {
        let (lhs, rhs) = (&self.inner, &other.inner);
        Ok(compute(py, || ops::matmul(lhs, rhs))?.into())
    }

    /// `e ** t`, elementwise (integers compute in float32).
    fn exp(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, Unary::Exp)
    }

    /// The natural logarithm, elementwise (integers compute in float32).
    fn log(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, Unary::Log)
    }

    /// The square root, elementwise (integers compute in float32).
    fn sqrt(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, Unary::Sqrt)
    }

    /// `max(t, 0)`, elementwise.
    fn relu(&self, py: Python<'_>) -> PyResult<PyTensor> {
        Ok(compute(py, || ops::relu(&self.inner))?.into())
    }

    /// Softmax along `dim` (default: the last).
    #[pyo3(signature = (dim=-1))]
    fn softmax(&self, py: Python<'_>, dim: isize) -> PyResult<PyTensor> {
        Ok(compute(py, || ops::softmax(&self.inner, dim))?.into())
    }

    /// The sum over `dim`, or of all elements (integers sum to int64).
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn sum(&self, py: Python<'_>, dim: Option<isize>, keepdim: bool) -> PyResult<PyTensor> {
        self.reduce(py, Reduce::Sum, dim, keepdim)
    }

    /// The mean over `dim`, or of all elements (integers average in float32).
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn mean(&self, py: Python<'_>, dim: Option<isize>, keepdim: bool) -> PyResult<PyTensor> {
        self.reduce(py, Reduce::Mean, dim, keepdim)
    }

    /// The largest values over `dim`, or of all elements (values only; see `argmax`).
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn max(&self, py: Python<'_>, dim: Option<isize>, keepdim: bool) -> PyResult<PyTensor> {
        self.reduce(py, Reduce::Max, dim, keepdim)
    }

    /// Positions of the largest values over `dim`, or in the flattened tensor (int64).
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn argmax(&self, py: Python<'_>, dim: Option<isize>, keepdim: bool) -> PyResult<PyTensor> {
        self.reduce(py, Reduce::Argmax, dim, keepdim)
    }

    /// The same elements in a new shape (`t.reshape(2, -1)` or `t.reshape((2, -1))`).
    #[pyo3(signature = (*shape))]
    fn reshape(&self, py: Python<'_>, shape: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        let dims: Vec<isize> = match shape.len() {
            1 if shape.get_item(0)?.extract::<isize>().is_err() => shape.get_item(0)?.extract()?,
            _ => shape.extract()?,
        };
        Ok(compute(py, || ops::reshape(&self.inner, &dims))?.into())
    }

    /// Swaps dimensions `dim0` and `dim1` (a view, no copy).
    fn transpose(&self, dim0: isize, dim1: isize) -> PyResult<PyTensor> {
        Ok(ops::transpose(&self.inner, dim0, dim1)?.into())
    }

    /// A row-major copy, or the tensor itself when it already is one.
    fn contiguous(&self, py: Python<'_>) -> PyResult<PyTensor> {
        Ok(compute(py, || Ok(self.inner.contiguous()?))?.into())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(compute(py, || repr::text(&self.inner))?)
    }

    fn _repr_html_(&self, py: Python<'_>) -> PyResult<String> {
        Ok(compute(py, || repr::html(&self.inner))?)
    }
}

/// Random float tensors: candle generates float32/float64; half types round from float32.
pub fn random(dims: Vec<usize>, dtype: DType, device: &Device, normal: bool) -> Result<Tensor> {
    if !dtype::is_float(dtype) {
        return Err(TensorError::Type(format!(
            "random tensors must have a floating dtype, not {}",
            dtype::name(dtype)
        )));
    }
    let t = match (dtype, normal) {
        (DType::F64, true) => Tensor::randn(0f64, 1f64, dims, device)?,
        (DType::F64, false) => Tensor::rand(0f64, 1f64, dims, device)?,
        (_, true) => Tensor::randn(0f32, 1f32, dims, device)?,
        (_, false) => Tensor::rand(0f32, 1f32, dims, device)?,
    };
    Ok(if t.dtype() == dtype {
        t
    } else {
        t.to_dtype(dtype)?
    })
}
