//! The operations behind `tandem.Tensor`'s methods, on candle tensors, with the checks
//! that turn candle's terse failures (or its panics on unsupported dtypes) into clear errors.
//!
//! Dtype rules, as in PyTorch: operands of a binary op must share a dtype (no silent
//! promotion between tensors); a Python `float` scalar with an integer tensor, `/` on
//! integers, and the float-only functions (`exp`, `log`, `sqrt`, `softmax`, `mean`) on
//! integers compute in `float32`; integer `sum` gives `int64`. float16/bfloat16 reductions
//! accumulate in float32, as numpy and PyTorch do, then round back.

use candle_core::{DType, Device, Tensor};

// Next to this file, as `tensor/fast.rs`.
use super::fast;

use super::device::check_same;
use super::dtype::{is_float, name};
use super::error::{Result, TensorError, shape_text};

/// An elementwise arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arith {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
}

impl Arith {
    fn symbol(self) -> &'static str {
        match self {
            Arith::Add => "+",
            Arith::Sub => "-",
            Arith::Mul => "*",
            Arith::Div => "/",
        }
    }
}

/// A Python number on one side of an operator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar {
    /// An `int` (or `bool`).
    Int(i64),
    /// A `float`.
    Float(f64),
}

/// A float-only elementwise function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unary {
    /// `exp`
    Exp,
    /// `log`
    Log,
    /// `sqrt`
    Sqrt,
}

/// A reduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    /// `sum`
    Sum,
    /// `mean`
    Mean,
    /// `max`
    Max,
    /// `argmax` (gives int64 indices)
    Argmax,
}

/// `dim` as an index into `rank` dimensions; negative counts from the end.
pub fn normalize_dim(dim: isize, rank: usize) -> Result<usize> {
    let signed_rank = isize::try_from(rank).unwrap_or(isize::MAX);
    let index = if dim < 0 { dim + signed_rank } else { dim };
    if (0..signed_rank).contains(&index) {
        Ok(index.unsigned_abs())
    } else {
        Err(TensorError::Index(format!(
            "dimension {dim} is out of range for a tensor with {rank} dimension(s)"
        )))
    }
}

/// The shape two shapes broadcast to, numpy's rules; `None` if they do not.
pub fn broadcast_shape(lhs: &[usize], rhs: &[usize]) -> Option<Vec<usize>> {
    let rank = lhs.len().max(rhs.len());
    let mut shape = vec![0; rank];
    for (i, slot) in shape.iter_mut().enumerate() {
        let l = (i + lhs.len()).checked_sub(rank).map_or(1, |j| lhs[j]);
        let r = (i + rhs.len()).checked_sub(rank).map_or(1, |j| rhs[j]);
        *slot = match (l, r) {
            (a, b) if a == b => a,
            (1, b) => b,
            (a, 1) => a,
            _ => return None,
        };
    }
    Some(shape)
}

fn to_float(t: &Tensor) -> Result<Tensor> {
    Ok(if is_float(t.dtype()) {
        t.clone()
    } else {
        t.to_dtype(DType::F32)?
    })
}

/// float16/bfloat16 widened to float32 for accumulation; the dtype to round back to.
fn widen(t: &Tensor) -> Result<(Tensor, DType)> {
    let dtype = t.dtype();
    Ok(match dtype {
        DType::F16 | DType::BF16 => (t.to_dtype(DType::F32)?, dtype),
        _ => (t.clone(), dtype),
    })
}

fn apply(op: Arith, lhs: &Tensor, rhs: &Tensor) -> Result<Tensor> {
    Ok(match op {
        Arith::Add => lhs.broadcast_add(rhs)?,
        Arith::Sub => lhs.broadcast_sub(rhs)?,
        Arith::Mul => lhs.broadcast_mul(rhs)?,
        Arith::Div => lhs.broadcast_div(rhs)?,
    })
}

/// `lhs op rhs` for two tensors, with broadcasting.
pub fn binary(op: Arith, lhs: &Tensor, rhs: &Tensor) -> Result<Tensor> {
    let symbol = op.symbol();
    check_same(symbol, lhs.device(), rhs.device())?;
    if lhs.dtype() != rhs.dtype() {
        return Err(TensorError::Type(format!(
            "dtype mismatch for {symbol}: {} and {}; convert one with .to(dtype)",
            name(lhs.dtype()),
            name(rhs.dtype())
        )));
    }
    if broadcast_shape(lhs.dims(), rhs.dims()).is_none() {
        return Err(TensorError::Value(format!(
            "shapes {} and {} cannot be broadcast together for {symbol}",
            shape_text(lhs.dims()),
            shape_text(rhs.dims())
        )));
    }
    if op == Arith::Div && !is_float(lhs.dtype()) {
        return apply(op, &to_float(lhs)?, &to_float(rhs)?);
    }
    if let Some(out) = fast::binary(op, lhs, rhs) {
        return out;
    }
    apply(op, lhs, rhs)
}

/// `tensor op scalar`, or `scalar op tensor` when `reversed`.
pub fn binary_scalar(op: Arith, tensor: &Tensor, scalar: Scalar, reversed: bool) -> Result<Tensor> {
    let promote =
        !is_float(tensor.dtype()) && (matches!(scalar, Scalar::Float(_)) || op == Arith::Div);
    let tensor = if promote {
        tensor.to_dtype(DType::F32)?
    } else {
        tensor.clone()
    };
    let value = match scalar {
        Scalar::Int(v) => Tensor::new(v, tensor.device())?,
        Scalar::Float(v) => Tensor::new(v, tensor.device())?,
    }
    .to_dtype(tensor.dtype())?;
    if reversed {
        apply(op, &value, &tensor)
    } else {
        apply(op, &tensor, &value)
    }
}

/// `-t`.
pub fn neg(t: &Tensor) -> Result<Tensor> {
    binary_scalar(Arith::Sub, t, Scalar::Int(0), true)
}

/// Matrix product with numpy's `@` rules: 1-d operands are vectors, leading dimensions
/// broadcast.
pub fn matmul(lhs: &Tensor, rhs: &Tensor) -> Result<Tensor> {
    check_same("@", lhs.device(), rhs.device())?;
    if lhs.dtype() != rhs.dtype() {
        return Err(TensorError::Type(format!(
            "dtype mismatch for @: {} and {}; convert one with .to(dtype)",
            name(lhs.dtype()),
            name(rhs.dtype())
        )));
    }
    if lhs.rank() == 0 || rhs.rank() == 0 {
        return Err(TensorError::Value(
            "@ needs tensors with at least one dimension; use * for scalars".into(),
        ));
    }
    let a = if lhs.rank() == 1 {
        lhs.unsqueeze(0)?
    } else {
        lhs.clone()
    };
    let b = if rhs.rank() == 1 {
        rhs.unsqueeze(1)?
    } else {
        rhs.clone()
    };
    let (k_a, k_b) = (a.dims()[a.rank() - 1], b.dims()[b.rank() - 2]);
    let batch_a = a.dims()[..a.rank() - 2].to_vec();
    let batch_b = b.dims()[..b.rank() - 2].to_vec();
    if k_a != k_b || broadcast_shape(&batch_a, &batch_b).is_none() {
        return Err(TensorError::Value(format!(
            "shapes {} and {} are not aligned for @: {k_a} (last dim of the first) != {k_b} \
             (second-to-last dim of the second){}",
            shape_text(lhs.dims()),
            shape_text(rhs.dims()),
            if k_a == k_b {
                ", or their batch dims do not broadcast"
            } else {
                ""
            }
        )));
    }
    let dtype = a.dtype();
    // candle's CPU gemm has no integer kernels: integers go through float64, exact below 2^53.
    let (a, b) = if is_float(dtype) || !a.device().is_cpu() {
        (a, b)
    } else {
        (a.to_dtype(DType::F64)?, b.to_dtype(DType::F64)?)
    };
    let mut out = if a.rank() == b.rank() && batch_a == batch_b {
        a.contiguous()?.matmul(&b.contiguous()?)?
    } else {
        a.contiguous()?.broadcast_matmul(&b.contiguous()?)?
    };
    if out.dtype() != dtype {
        out = out.to_dtype(dtype)?;
    }
    if rhs.rank() == 1 {
        out = out.squeeze(out.rank() - 1)?;
    }
    if lhs.rank() == 1 {
        out = out.squeeze(out.rank() - 2)?;
    }
    Ok(out)
}

/// A float-only function; integers compute in float32.
pub fn unary(op: Unary, t: &Tensor) -> Result<Tensor> {
    let t = to_float(t)?;
    if let Some(out) = fast::unary(op, &t) {
        return out;
    }
    Ok(match op {
        Unary::Exp => t.exp()?,
        Unary::Log => t.log()?,
        Unary::Sqrt => t.sqrt()?,
    })
}

/// `max(t, 0)`, any dtype.
pub fn relu(t: &Tensor) -> Result<Tensor> {
    if let Some(out) = fast::relu(t) {
        return out;
    }
    if is_float(t.dtype()) {
        return Ok(t.relu()?);
    }
    let zero = Tensor::new(0i64, t.device())?.to_dtype(t.dtype())?;
    Ok(t.broadcast_maximum(&zero)?)
}

/// `exp(t - max) / sum(exp(t - max))` along `dim`, accumulated in at least float32.
pub fn softmax(t: &Tensor, dim: isize) -> Result<Tensor> {
    let dim = normalize_dim(dim, t.rank())?;
    let (wide, dtype) = widen(&to_float(t)?)?;
    if dim + 1 == wide.rank()
        && let Some(out) = fast::softmax_last(&wide)
    {
        let out = out?;
        return Ok(if out.dtype() == dtype {
            out
        } else {
            out.to_dtype(dtype)?
        });
    }
    let max = wide.max_keepdim(dim)?;
    let exp = unary(Unary::Exp, &wide.broadcast_sub(&max)?)?;
    let sum = exp.sum_keepdim(dim)?;
    let out = exp.broadcast_div(&sum)?;
    Ok(if out.dtype() == dtype {
        out
    } else {
        out.to_dtype(dtype)?
    })
}

/// A reduction over `dim`, or over everything when `dim` is `None`.
pub fn reduce(kind: Reduce, t: &Tensor, dim: Option<isize>, keepdim: bool) -> Result<Tensor> {
    if t.elem_count() == 0 && matches!(kind, Reduce::Max | Reduce::Argmax) {
        return Err(TensorError::Value(
            format!("{kind:?} of an empty tensor is undefined",).to_lowercase(),
        ));
    }
    let (source, dim) = match dim {
        Some(dim) => (t.clone(), normalize_dim(dim, t.rank())?),
        None => (t.flatten_all()?, 0),
    };
    let out = match kind {
        Reduce::Sum | Reduce::Mean => {
            let float = kind == Reduce::Mean || is_float(source.dtype());
            let source = if float {
                to_float(&source)?
            } else {
                source.to_dtype(DType::I64)?
            };
            let (wide, dtype) = widen(&source)?;
            let summed = if kind == Reduce::Mean {
                wide.mean_keepdim(dim)?
            } else {
                wide.sum_keepdim(dim)?
            };
            if summed.dtype() == dtype {
                summed
            } else {
                summed.to_dtype(dtype)?
            }
        }
        Reduce::Max => source.max_keepdim(dim)?,
        Reduce::Argmax => source.argmax_keepdim(dim)?.to_dtype(DType::I64)?,
    };
    Ok(match (dim, keepdim) {
        (_, true) if source.rank() == t.rank() => out,
        // Over everything with keepdim: one element in as many dims as the input.
        (_, true) => out.reshape(vec![1; t.rank()])?,
        (_, false) if source.rank() == t.rank() => out.squeeze(dim)?,
        (_, false) => out.reshape(())?,
    })
}

/// Joins tensors along an existing dimension.
pub fn cat(tensors: &[Tensor], dim: isize) -> Result<Tensor> {
    let Some(first) = tensors.first() else {
        return Err(TensorError::Value("cat needs at least one tensor".into()));
    };
    let dim = normalize_dim(dim, first.rank())?;
    for (i, other) in tensors.iter().enumerate().skip(1) {
        check_same("cat", first.device(), other.device())?;
        if other.dtype() != first.dtype() {
            return Err(TensorError::Type(format!(
                "cat: tensor {i} is {} but tensor 0 is {}",
                name(other.dtype()),
                name(first.dtype())
            )));
        }
        let fits = other.rank() == first.rank()
            && (0..first.rank()).all(|d| d == dim || other.dims()[d] == first.dims()[d]);
        if !fits {
            return Err(TensorError::Value(format!(
                "cat: tensor {i} has shape {} but tensor 0 has {}; all dims but {dim} must match",
                shape_text(other.dims()),
                shape_text(first.dims())
            )));
        }
    }
    Ok(Tensor::cat(tensors, dim)?)
}

/// A new shape with the same number of elements; one dim may be `-1`.
pub fn reshape(t: &Tensor, shape: &[isize]) -> Result<Tensor> {
    let count = t.elem_count();
    let holes = shape.iter().filter(|&&d| d == -1).count();
    let known: usize = shape
        .iter()
        .filter(|&&d| d != -1)
        .map(|&d| d.unsigned_abs())
        .product();
    let bad = shape.iter().any(|&d| d < -1) || holes > 1;
    let dims: Option<Vec<usize>> = (!bad).then(|| {
        shape
            .iter()
            .map(|&d| {
                if d == -1 {
                    count.checked_div(known).unwrap_or(0)
                } else {
                    d.unsigned_abs()
                }
            })
            .collect()
    });
    match dims {
        Some(dims) if dims.iter().product::<usize>() == count => Ok(t.reshape(dims)?),
        _ => Err(TensorError::Value(format!(
            "cannot reshape a tensor of shape {} ({count} elements) into {shape:?}",
            shape_text(t.dims())
        ))),
    }
}

/// Swaps two dimensions.
pub fn transpose(t: &Tensor, dim0: isize, dim1: isize) -> Result<Tensor> {
    let rank = t.rank();
    Ok(t.transpose(normalize_dim(dim0, rank)?, normalize_dim(dim1, rank)?)?)
}

/// Moves a tensor to another device (a copy; the same tensor when already there).
pub fn to_device(t: &Tensor, device: &Device) -> Result<Tensor> {
    Ok(t.to_device(device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast_shape(&[2, 3], &[3]), Some(vec![2, 3]));
        assert_eq!(broadcast_shape(&[4, 1], &[1, 5]), Some(vec![4, 5]));
        assert_eq!(broadcast_shape(&[2, 3], &[4]), None);
        assert_eq!(normalize_dim(-1, 3).unwrap(), 2);
        assert!(normalize_dim(3, 3).is_err());
    }

    #[test]
    fn matmul_of_vectors_and_integers() {
        let a = Tensor::new(&[[1i64, 2], [3, 4]], &Device::Cpu).unwrap();
        let v = Tensor::new(&[1i64, 1], &Device::Cpu).unwrap();
        let out = matmul(&a, &v).unwrap();
        assert_eq!(out.to_vec1::<i64>().unwrap(), [3, 7]);
        let bad = matmul(&a, &Tensor::new(&[1i64, 1, 1], &Device::Cpu).unwrap());
        assert!(bad.unwrap_err().to_string().contains("not aligned"));
    }

    #[test]
    fn reductions_over_all_and_one_dim() {
        let a = Tensor::new(&[[1f32, 5.0], [3.0, 4.0]], &Device::Cpu).unwrap();
        let all = reduce(Reduce::Sum, &a, None, false).unwrap();
        assert_eq!(all.to_vec0::<f32>().unwrap(), 13.0);
        let argmax = reduce(Reduce::Argmax, &a, Some(1), false).unwrap();
        assert_eq!(argmax.to_vec1::<i64>().unwrap(), [1, 1]);
        let kept = reduce(Reduce::Max, &a, None, true).unwrap();
        assert_eq!(kept.dims(), [1, 1]);
    }
}
