//! `repr(t)` and `t._repr_html_()`: the values (summarized past [`SUMMARY_THRESHOLD`]
//! elements, as numpy and PyTorch do), the dtype and the device.

use candle_core::{DType, Device, Tensor};

use super::device::name as device_name;
use super::dtype::{is_float, name as dtype_name};
use super::error::{Result, shape_text};

/// Tensors with more elements than this show only [`EDGE_ITEMS`] at each end of each
/// dimension: a repr must stay readable and cheap for a 100M-element tensor.
const SUMMARY_THRESHOLD: usize = 1000;

/// Elements kept at each end of a summarized dimension.
const EDGE_ITEMS: usize = 3;

/// HTML tables show at most this many rows and columns before summarizing, whatever the
/// element count (a 1000×1 column is too long to scroll past).
const HTML_EDGE: usize = 10;

/// The positions shown along each dimension, `None` where `...` stands for the rest.
type Visible = Vec<Vec<Option<usize>>>;

fn visible(dims: &[usize], edge: Option<usize>) -> Visible {
    dims.iter()
        .map(|&size| match edge {
            Some(edge) if size > 2 * edge => (0..edge)
                .map(Some)
                .chain([None])
                .chain((size - edge..size).map(Some))
                .collect(),
            _ => (0..size).map(Some).collect(),
        })
        .collect()
}

/// The shown elements, formatted with one width, in row-major order.
fn cells(tensor: &Tensor, shown: &Visible) -> Result<Vec<String>> {
    let mut small = tensor.to_device(&Device::Cpu)?;
    for (dim, positions) in shown.iter().enumerate() {
        if positions.len() < small.dims()[dim] {
            let ids: Vec<u32> = positions
                .iter()
                .flatten()
                .map(|&p| u32::try_from(p).unwrap_or(u32::MAX))
                .collect();
            let count = ids.len();
            small = small.index_select(&Tensor::from_vec(ids, count, &Device::Cpu)?, dim)?;
        }
    }
    let flat = small.flatten_all()?;
    let texts: Vec<String> = if is_float(flat.dtype()) {
        let values = flat.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        let finite = || values.iter().copied().filter(|v| v.is_finite());
        let integral = finite().all(|v| v.fract() == 0.0 && v.abs() < 1e16);
        let largest = finite().fold(0.0f64, |m, v| m.max(v.abs()));
        let smallest = finite()
            .filter(|&v| v != 0.0)
            .fold(f64::INFINITY, |m, v| m.min(v.abs()));
        let scientific = largest >= 1e8 || (smallest < 1e-4 && !integral);
        values
            .iter()
            .map(|&v| match () {
                _ if v.is_nan() => "nan".to_owned(),
                _ if v.is_infinite() => if v > 0.0 { "inf" } else { "-inf" }.to_owned(),
                _ if scientific => format!("{v:.4e}"),
                _ if integral => format!("{v:.0}."),
                _ => format!("{v:.4}"),
            })
            .collect()
    } else {
        let values = flat.to_dtype(DType::I64)?.to_vec1::<i64>()?;
        values.iter().map(i64::to_string).collect()
    };
    let width = texts.iter().map(String::len).max().unwrap_or(0);
    Ok(texts.into_iter().map(|t| format!("{t:>width$}")).collect())
}

fn nested(
    shown: &[Vec<Option<usize>>],
    cells: &mut std::vec::IntoIter<String>,
    indent: usize,
) -> String {
    let Some((positions, rest)) = shown.split_first() else {
        return cells.next().unwrap_or_default();
    };
    let parts: Vec<String> = positions
        .iter()
        .map(|p| match p {
            Some(_) => nested(rest, cells, indent + 1),
            None => "...".to_owned(),
        })
        .collect();
    if rest.is_empty() {
        return format!("[{}]", parts.join(", "));
    }
    // Blocks of 3-d and higher tensors get blank lines between them, as numpy prints.
    let separator = format!(",{}{}", "\n".repeat(rest.len()), " ".repeat(indent + 1));
    format!("[{}]", parts.join(&separator))
}

/// `tensor([[1.0000, 2.0000], ...], dtype=float32, device=cpu)`.
pub fn text(tensor: &Tensor) -> Result<String> {
    let summarize = tensor.elem_count() > SUMMARY_THRESHOLD;
    let shown = visible(tensor.dims(), summarize.then_some(EDGE_ITEMS));
    let mut values = cells(tensor, &shown)?.into_iter();
    let body = nested(&shown, &mut values, "tensor(".len());
    let shape = if summarize {
        format!(", shape={}", shape_text(tensor.dims()))
    } else {
        String::new()
    };
    Ok(format!(
        "tensor({body}{shape}, dtype={}, device={})",
        dtype_name(tensor.dtype()),
        device_name(tensor.device())
    ))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An HTML table for 1-d and 2-d tensors (a `<pre>` of the text for others), under a line
/// with the shape, dtype and device.
pub fn html(tensor: &Tensor) -> Result<String> {
    let caption = format!(
        "<div style=\"font-family:monospace;margin-bottom:4px\">tandem.Tensor · shape {} · {} · {}</div>",
        shape_text(tensor.dims()),
        dtype_name(tensor.dtype()),
        device_name(tensor.device())
    );
    let matrix = match tensor.dims() {
        [_] => false,
        [_, _] => true,
        _ => return Ok(format!("{caption}<pre>{}</pre>", escape(&text(tensor)?))),
    };
    let shown = visible(tensor.dims(), Some(HTML_EDGE));
    let mut values = cells(tensor, &shown)?.into_iter();
    let col_positions = &shown[shown.len() - 1];
    let mut out = String::from("<table class=\"tandem-tensor\"><thead><tr><th></th>");
    for position in col_positions {
        match position {
            Some(c) => out.push_str(&format!("<th>{c}</th>")),
            None => out.push_str("<th>…</th>"),
        }
    }
    out.push_str("</tr></thead><tbody>");
    let row_positions: Vec<Option<usize>> = if matrix {
        shown[0].clone()
    } else {
        vec![Some(0)]
    };
    for row in row_positions {
        match row {
            Some(r) => {
                out.push_str(&format!(
                    "<tr><th>{}</th>",
                    if matrix { r.to_string() } else { String::new() }
                ));
                for position in col_positions {
                    match position {
                        Some(_) => out.push_str(&format!(
                            "<td>{}</td>",
                            values.next().unwrap_or_default().trim()
                        )),
                        None => out.push_str("<td>…</td>"),
                    }
                }
            }
            None => {
                out.push_str("<tr><th>…</th>");
                out.push_str(&"<td>…</td>".repeat(col_positions.len()));
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    Ok(format!("{caption}{out}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_tensors_print_every_value() {
        let t = Tensor::new(&[[1f32, 2.5], [-3.0, 4.0]], &Device::Cpu).unwrap();
        assert_eq!(
            text(&t).unwrap(),
            "tensor([[ 1.0000,  2.5000],\n        [-3.0000,  4.0000]], dtype=float32, device=cpu)"
        );
        let i = Tensor::new(&[1i64, 20], &Device::Cpu).unwrap();
        assert_eq!(
            text(&i).unwrap(),
            "tensor([ 1, 20], dtype=int64, device=cpu)"
        );
    }

    #[test]
    fn big_tensors_are_summarized() {
        let t = Tensor::arange(0f32, 2000.0, &Device::Cpu).unwrap();
        let repr = text(&t).unwrap();
        assert!(
            repr.starts_with("tensor([   0.,    1.,    2., ..., 1997., 1998., 1999.]"),
            "{repr}"
        );
        assert!(repr.contains("shape=(2000,)"), "{repr}");
        let html = html(&t.reshape((40, 50)).unwrap()).unwrap();
        assert!(html.contains("<th>49</th>") && html.contains("…"), "{html}");
    }
}
