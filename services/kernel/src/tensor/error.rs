//! What can go wrong in a tensor operation, and the Python exception each becomes.

use pyo3::PyErr;
use pyo3::exceptions::{
    PyIndexError, PyRuntimeError, PyTypeError, PyValueError, PyZeroDivisionError,
};

/// A failed tensor operation. Every variant reaches notebook code as a Python exception
/// (named on the variant); none of them may take the kernel down.
#[derive(Debug, thiserror::Error)]
pub enum TensorError {
    /// Shapes that do not fit together (broadcasting, matmul, reshape, cat), or an
    /// argument with a value the operation cannot use. `ValueError`.
    #[error("{0}")]
    Value(String),
    /// Operands of different dtypes, or a dtype the operation does not support. `TypeError`.
    #[error("{0}")]
    Type(String),
    /// A device that is not there, or operands on different devices. `RuntimeError`.
    #[error("{0}")]
    Device(String),
    /// An index or dimension out of range. `IndexError`.
    #[error("{0}")]
    Index(String),
    /// Integer division by zero. `ZeroDivisionError`.
    #[error("integer division by zero")]
    ZeroDivision,
    /// candle refused the operation; mapped to the closest Python exception by kind.
    #[error("{}", innermost(.0))]
    Candle(#[from] candle_core::Error),
    /// candle panicked (a bug or an unchecked case in it); the kernel survives. `RuntimeError`.
    #[error("the tensor operation failed inside candle: {0}")]
    Panicked(String),
}

/// Shorthand for results of tensor operations.
pub type Result<T> = std::result::Result<T, TensorError>;

/// candle wraps errors in backtraces and context; the message is the innermost one.
fn innermost(error: &candle_core::Error) -> &candle_core::Error {
    match error {
        candle_core::Error::WithBacktrace { inner, .. }
        | candle_core::Error::Context { inner, .. }
        | candle_core::Error::WithPath { inner, .. } => innermost(inner),
        other => other,
    }
}

impl From<TensorError> for PyErr {
    fn from(error: TensorError) -> PyErr {
        let message = error.to_string();
        match &error {
            TensorError::Value(_) => PyValueError::new_err(message),
            TensorError::Type(_) => PyTypeError::new_err(message),
            TensorError::Device(_) | TensorError::Panicked(_) => PyRuntimeError::new_err(message),
            TensorError::Index(_) => PyIndexError::new_err(message),
            TensorError::ZeroDivision => PyZeroDivisionError::new_err(message),
            TensorError::Candle(inner) => {
                use candle_core::Error as E;
                match innermost(inner) {
                    E::UnexpectedDType { .. }
                    | E::DTypeMismatchBinaryOp { .. }
                    | E::UnsupportedDTypeForOp(..) => PyTypeError::new_err(message),
                    E::DimOutOfRange { .. } | E::InvalidIndex { .. } => {
                        PyIndexError::new_err(message)
                    }
                    E::DeviceMismatchBinaryOp { .. } | E::NotCompiledWithCudaSupport => {
                        PyRuntimeError::new_err(message)
                    }
                    E::DuplicateDimIndex { .. }
                    | E::UnexpectedNumberOfDims { .. }
                    | E::UnexpectedShape { .. }
                    | E::ShapeMismatch { .. }
                    | E::ShapeMismatchBinaryOp { .. }
                    | E::ShapeMismatchCat { .. }
                    | E::NarrowInvalidArgs { .. }
                    | E::BroadcastIncompatibleShapes { .. }
                    | E::EmptyTensor { .. } => PyValueError::new_err(message),
                    _ => PyRuntimeError::new_err(message),
                }
            }
        }
    }
}

/// A shape as Python prints one: `(2, 3)`, `(4,)`, `()`.
pub fn shape_text(dims: &[usize]) -> String {
    match dims {
        [one] => format!("({one},)"),
        _ => {
            let parts: Vec<String> = dims.iter().map(usize::to_string).collect();
            format!("({})", parts.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_print_as_python_tuples() {
        assert_eq!(shape_text(&[]), "()");
        assert_eq!(shape_text(&[4]), "(4,)");
        assert_eq!(shape_text(&[2, 3]), "(2, 3)");
    }
}
