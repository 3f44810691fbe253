//! The variable inspector: after each cell the worker lists the notebook's tensors, arrays,
//! frames and scalars ([`Variable`]) and sends them when they changed.
//!
//! Only values of known types are looked at, through attributes that cost nothing to read
//! (`shape`, `dtype`, `nbytes`), so the inspector never runs arbitrary user code such as a
//! custom `__repr__` of a large object. numpy and pandas are consulted only when the
//! notebook imported them.

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyComplex, PyDict, PyFloat, PyInt, PyString};

use super::class::PyTensor;
use super::device;
use super::dtype;
use tandem_protocol::kernel::{Event, Variable};

/// At most this many variables are listed: the list goes into the shared document, and a
/// loop that makes 10 000 globals should not make every collaborator's page heavy.
const MAX_VARIABLES: usize = 500;

/// Scalar values are shown up to this many characters.
const MAX_VALUE_CHARS: usize = 80;

/// Remembers the last list sent, so unchanged namespaces send nothing.
#[derive(Debug, Default)]
pub struct Inspector {
    last: Mutex<Vec<Variable>>,
}

impl Inspector {
    /// A new inspector; until the namespace has a listed variable it sends nothing.
    pub fn new() -> Inspector {
        Inspector::default()
    }

    /// The `variables` event to send after a cell, if the list changed. `kernel` is the glue's
    /// `Kernel` (its `shell` holds the namespace). Failures are logged and send nothing: the
    /// inspector must never fail a cell.
    pub fn after_cell(&self, kernel: &Bound<'_, PyAny>) -> Option<Event> {
        let shell = kernel.getattr("shell").ok()?;
        let listed = match variables(&shell) {
            Ok(listed) => listed,
            Err(error) => {
                eprintln!("tandem kernel: the variable inspector failed: {error}");
                return None;
            }
        };
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *last == listed {
            return None;
        }
        *last = listed.clone();
        Some(Event::Variables { variables: listed })
    }
}

/// The listed variables of an IPython shell's user namespace, sorted by name.
pub fn variables(shell: &Bound<'_, PyAny>) -> PyResult<Vec<Variable>> {
    let namespace = shell.getattr("user_ns")?.cast_into::<PyDict>()?;
    let hidden = shell.getattr("user_ns_hidden")?;
    let modules = shell.py().import("sys")?.getattr("modules")?;
    let class = |module: &str, name: &str| -> Option<Bound<'_, PyAny>> {
        modules.get_item(module).ok()?.getattr(name).ok()
    };
    let kinds = Kinds {
        ndarray: class("numpy", "ndarray"),
        generic: class("numpy", "generic"),
        frame: class("pandas", "DataFrame"),
        series: class("pandas", "Series"),
    };
    let mut listed = Vec::new();
    for (key, value) in namespace.iter() {
        let Ok(name) = key.extract::<String>() else {
            continue;
        };
        if name.starts_with('_') || hidden.contains(&key).unwrap_or(false) {
            continue;
        }
        if let Some(variable) = describe(name, &value, &kinds)? {
            listed.push(variable);
        }
    }
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    listed.truncate(MAX_VARIABLES);
    Ok(listed)
}

/// The library classes to recognise; `None` where the library is not imported.
struct Kinds<'py> {
    ndarray: Option<Bound<'py, PyAny>>,
    generic: Option<Bound<'py, PyAny>>,
    frame: Option<Bound<'py, PyAny>>,
    series: Option<Bound<'py, PyAny>>,
}

fn is(value: &Bound<'_, PyAny>, class: &Option<Bound<'_, PyAny>>) -> bool {
    class
        .as_ref()
        .is_some_and(|class| value.is_instance(class).unwrap_or(false))
}

fn shape_of(value: &Bound<'_, PyAny>) -> PyResult<Vec<u64>> {
    value.getattr("shape")?.extract()
}

fn short_repr(value: &Bound<'_, PyAny>) -> PyResult<String> {
    let text: String = value.repr()?.extract()?;
    Ok(match text.char_indices().nth(MAX_VALUE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    })
}

fn variable(name: String, kind: &str) -> Variable {
    Variable {
        name,
        kind: kind.to_owned(),
        shape: None,
        dtype: None,
        device: None,
        bytes: None,
        value: None,
    }
}

fn describe(
    name: String,
    value: &Bound<'_, PyAny>,
    kinds: &Kinds<'_>,
) -> PyResult<Option<Variable>> {
    if let Ok(tensor) = value.cast::<PyTensor>() {
        let inner = &tensor.get().inner;
        return Ok(Some(Variable {
            shape: Some(inner.dims().iter().map(|&d| d as u64).collect()),
            dtype: Some(dtype::name(inner.dtype()).to_owned()),
            device: Some(device::name(inner.device())),
            bytes: Some((inner.elem_count() * dtype::size(inner.dtype())) as u64),
            ..variable(name, "tandem.Tensor")
        }));
    }
    if is(value, &kinds.ndarray) {
        return Ok(Some(Variable {
            shape: Some(shape_of(value)?),
            dtype: Some(value.getattr("dtype")?.str()?.extract()?),
            bytes: Some(value.getattr("nbytes")?.extract()?),
            ..variable(name, "numpy.ndarray")
        }));
    }
    let frame = is(value, &kinds.frame);
    if frame || is(value, &kinds.series) {
        let options = PyDict::new(value.py());
        options.set_item("index", true)?;
        options.set_item("deep", false)?;
        let usage = value.call_method("memory_usage", (), Some(&options))?;
        let bytes: u64 = if frame {
            usage.call_method0("sum")?.extract()?
        } else {
            usage.extract()?
        };
        let dtype = if frame {
            None
        } else {
            Some(value.getattr("dtype")?.str()?.extract()?)
        };
        let kind = if frame {
            "pandas.DataFrame"
        } else {
            "pandas.Series"
        };
        return Ok(Some(Variable {
            shape: Some(shape_of(value)?),
            dtype,
            bytes: Some(bytes),
            ..variable(name, kind)
        }));
    }
    if is(value, &kinds.generic) {
        let kind = format!("numpy.{}", value.get_type().name()?);
        return Ok(Some(Variable {
            dtype: Some(value.getattr("dtype")?.str()?.extract()?),
            bytes: Some(value.getattr("nbytes")?.extract()?),
            value: Some(short_repr(value)?),
            ..variable(name, &kind)
        }));
    }
    let kind = if value.is_exact_instance_of::<PyBool>() {
        "bool"
    } else if value.is_exact_instance_of::<PyInt>() {
        "int"
    } else if value.is_exact_instance_of::<PyFloat>() {
        "float"
    } else if value.is_exact_instance_of::<PyComplex>() {
        "complex"
    } else if value.is_exact_instance_of::<PyString>() {
        "str"
    } else {
        return Ok(None);
    };
    Ok(Some(Variable {
        value: Some(short_repr(value)?),
        ..variable(name, kind)
    }))
}
