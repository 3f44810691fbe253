//! `t[...]`: integers, slices (with steps, negative too), `None`, `...`, and one list of
//! integers, as numpy's basic indexing (the list selects along its dimension).

use candle_core::Tensor;
use pyo3::prelude::*;
use pyo3::types::{PyEllipsis, PyList, PyNone, PySlice, PyTuple};

use super::error::{Result, TensorError, shape_text};

/// One entry of an index tuple.
pub enum Item<'py> {
    /// Picks one position and drops the dimension.
    Int(isize),
    /// Keeps the dimension, narrowed (and strided) by a Python slice.
    Slice(Bound<'py, PySlice>),
    /// `None`: a new dimension of size 1.
    NewAxis,
    /// `...`: as many full slices as the other entries leave.
    Ellipsis,
    /// Positions along one dimension, in order (may repeat).
    List(Vec<isize>),
}

fn item<'py>(key: &Bound<'py, PyAny>) -> PyResult<Item<'py>> {
    if let Ok(slice) = key.cast::<PySlice>() {
        return Ok(Item::Slice(slice.clone()));
    }
    if key.is_instance_of::<PyNone>() {
        return Ok(Item::NewAxis);
    }
    if key.is_instance_of::<PyEllipsis>() {
        return Ok(Item::Ellipsis);
    }
    if let Ok(list) = key.cast::<PyList>() {
        return Ok(Item::List(list.extract()?));
    }
    if let Ok(index) = key.extract::<isize>() {
        return Ok(Item::Int(index));
    }
    let kind = key.get_type().name()?.to_string();
    Err(TensorError::Index(format!(
        "tensors are indexed by integers, slices, None, ... and lists of integers, not {kind}"
    ))
    .into())
}

/// The entries of `t[key]`.
pub fn parse<'py>(key: &Bound<'py, PyAny>) -> PyResult<Vec<Item<'py>>> {
    match key.cast::<PyTuple>() {
        Ok(tuple) => tuple.iter().map(|entry| item(&entry)).collect(),
        Err(_) => Ok(vec![item(key)?]),
    }
}

fn position(index: isize, dim: usize, size: usize) -> Result<usize> {
    let signed = isize::try_from(size).unwrap_or(isize::MAX);
    let at = if index < 0 { index + signed } else { index };
    if (0..signed).contains(&at) {
        Ok(at.unsigned_abs())
    } else {
        Err(TensorError::Index(format!(
            "index {index} is out of bounds for dimension {dim} with size {size}"
        )))
    }
}

fn select(t: &Tensor, dim: usize, positions: Vec<u32>) -> Result<Tensor> {
    let count = positions.len();
    let ids = Tensor::from_vec(positions, count, t.device())?;
    Ok(t.index_select(&ids, dim)?)
}

/// `t[items]`.
pub fn apply(t: &Tensor, items: &[Item<'_>]) -> PyResult<Tensor> {
    let consuming = items
        .iter()
        .filter(|i| matches!(i, Item::Int(_) | Item::Slice(_) | Item::List(_)))
        .count();
    let ellipses = items.iter().filter(|i| matches!(i, Item::Ellipsis)).count();
    if consuming > t.rank() || ellipses > 1 {
        let why = if ellipses > 1 {
            "an index can only have a single ellipsis (...)".to_owned()
        } else {
            format!(
                "too many indices for a tensor of shape {}: {consuming} given",
                shape_text(t.dims())
            )
        };
        return Err(TensorError::Index(why).into());
    }
    let mut out = t.clone();
    let mut dim = 0;
    for entry in items {
        match entry {
            Item::Int(index) => {
                let at = position(*index, dim, out.dims()[dim])?;
                out = out
                    .narrow(dim, at, 1)
                    .and_then(|n| n.squeeze(dim))
                    .map_err(TensorError::from)?;
            }
            Item::Slice(slice) => {
                let size = out.dims()[dim];
                let range = slice.indices(isize::try_from(size).unwrap_or(isize::MAX))?;
                out = if range.step == 1 {
                    out.narrow(dim, range.start.unsigned_abs(), range.slicelength)
                        .map_err(TensorError::from)?
                } else {
                    let positions = (0..range.slicelength)
                        .map(|k| {
                            let k = isize::try_from(k).unwrap_or(isize::MAX);
                            u32::try_from(range.start + k * range.step).unwrap_or(u32::MAX)
                        })
                        .collect();
                    select(&out, dim, positions)?
                };
                dim += 1;
            }
            Item::NewAxis => {
                out = out.unsqueeze(dim).map_err(TensorError::from)?;
                dim += 1;
            }
            Item::Ellipsis => dim += t.rank() - consuming,
            Item::List(indices) => {
                let size = out.dims()[dim];
                let positions = indices
                    .iter()
                    .map(|&i| position(i, dim, size).map(|p| u32::try_from(p).unwrap_or(u32::MAX)))
                    .collect::<Result<Vec<u32>>>()?;
                out = select(&out, dim, positions)?;
                dim += 1;
            }
        }
    }
    Ok(out)
}
