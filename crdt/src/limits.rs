//! Size limits for importing `.ipynb` files from untrusted users, and the checks that enforce
//! them before anything is built: a byte scan of the text (so a hostile file is refused before
//! it is parsed into memory) and an iterative walk of an already-parsed value (so deep nesting
//! cannot overflow the stack).

use serde_json::Value;

use crate::error::ImportError;

/// Limits on what [`Notebook::from_ipynb_str`](crate::Notebook::from_ipynb_str) and
/// [`Notebook::from_ipynb`](crate::Notebook::from_ipynb) accept.
///
/// The defaults admit every real notebook we have seen (the largest in the test corpus is under
/// 1 MiB; notebooks full of plots reach tens of MiB) while keeping one import's memory bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportLimits {
    /// Most bytes of JSON text. Default 64 MiB.
    pub max_bytes: usize,
    /// Deepest nesting of arrays and objects, the notebook object itself being level 1.
    /// Default 100: Vega-Lite specs and widget states nest a dozen levels or so. Parsing text
    /// also stops at serde_json's own limit of 128 whatever this says.
    pub max_depth: usize,
    /// Most cells. Default 10,000.
    pub max_cells: usize,
    /// Longest single string, in bytes once JSON escapes are decoded. Default 32 MiB, room for a
    /// large base64 image output.
    pub max_string_bytes: usize,
}

impl Default for ImportLimits {
    fn default() -> Self {
        ImportLimits {
            max_bytes: 64 << 20,
            max_depth: 100,
            max_cells: 10_000,
            max_string_bytes: 32 << 20,
        }
    }
}

/// Checks text against the limits without parsing it. String lengths are counted as a lower
/// bound of their decoded size (an escape counts as one byte); [`check_value`] checks exactly.
pub(crate) fn check_text(text: &str, limits: &ImportLimits) -> Result<(), ImportError> {
    if text.len() > limits.max_bytes {
        return Err(ImportError::TooLarge {
            size: text.len(),
            limit: limits.max_bytes,
        });
    }
    let bytes = text.as_bytes();
    let (mut line, mut line_start) = (1usize, 0usize);
    let at = |i: usize, line: usize, line_start: usize| {
        format!("line {line} column {}", i - line_start + 1)
    };
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                line += 1;
                line_start = i + 1;
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > limits.max_depth {
                    return Err(ImportError::TooDeep {
                        limit: limits.max_depth,
                        at: at(i, line, line_start),
                    });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                let start = i;
                let mut decoded = 0usize;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    // `\uXXXX` is six bytes of text for one to three decoded bytes; other escapes
                    // are two for one.
                    i += match bytes[i] {
                        b'\\' if bytes.get(i + 1) == Some(&b'u') => 6,
                        b'\\' => 2,
                        _ => 1,
                    };
                    decoded += 1;
                    if decoded > limits.max_string_bytes {
                        return Err(ImportError::StringTooLong {
                            at: at(start, line, line_start),
                            limit: limits.max_string_bytes,
                        });
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

#[derive(Clone)]
enum Step {
    Root,
    Key(usize, String),
    Index(usize, usize),
}

fn path_of(steps: &[Step], mut node: usize) -> String {
    let mut parts = Vec::new();
    loop {
        match &steps[node] {
            Step::Root => break,
            Step::Key(parent, key) => {
                parts.push(format!(".{key}"));
                node = *parent;
            }
            Step::Index(parent, index) => {
                parts.push(format!("[{index}]"));
                node = *parent;
            }
        }
    }
    parts.reverse();
    let path = parts.concat();
    match path.strip_prefix('.') {
        Some(rest) => rest.to_owned(),
        None if path.is_empty() => "the notebook".to_owned(),
        None => path,
    }
}

/// Checks a parsed value against the limits, iteratively, reporting offenders by JSON path.
pub(crate) fn check_value(value: &Value, limits: &ImportLimits) -> Result<(), ImportError> {
    let mut steps = vec![Step::Root];
    let mut stack = vec![(value, 1usize, 0usize)];
    // A lower bound of the JSON text size: every string's bytes plus one per other token.
    let mut size = 0usize;
    while let Some((v, depth, node)) = stack.pop() {
        let too_deep = || ImportError::TooDeep {
            limit: limits.max_depth,
            at: path_of(&steps, node),
        };
        match v {
            Value::String(s) => {
                if s.len() > limits.max_string_bytes {
                    return Err(ImportError::StringTooLong {
                        at: path_of(&steps, node),
                        limit: limits.max_string_bytes,
                    });
                }
                size += s.len() + 2;
            }
            Value::Array(items) => {
                if depth > limits.max_depth {
                    return Err(too_deep());
                }
                size += 2;
                for (index, item) in items.iter().enumerate() {
                    steps.push(Step::Index(node, index));
                    stack.push((item, depth + 1, steps.len() - 1));
                }
            }
            Value::Object(map) => {
                if depth > limits.max_depth {
                    return Err(too_deep());
                }
                size += 2;
                for (key, item) in map {
                    size += key.len() + 3;
                    steps.push(Step::Key(node, key.clone()));
                    stack.push((item, depth + 1, steps.len() - 1));
                }
            }
            _ => size += 1,
        }
        if size > limits.max_bytes {
            return Err(ImportError::TooLarge {
                size,
                limit: limits.max_bytes,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_scan_ignores_brackets_in_strings() {
        let limits = ImportLimits {
            max_depth: 2,
            ..ImportLimits::default()
        };
        assert!(check_text(r#"{"a": ["[[[[", "\"{{{"]}"#, &limits).is_ok());
        let err = check_text("{\n [[1]]}", &limits).unwrap_err();
        assert_eq!(
            err,
            ImportError::TooDeep {
                limit: 2,
                at: "line 2 column 3".into()
            }
        );
    }

    #[test]
    fn text_scan_counts_escapes_as_decoded() {
        let limits = ImportLimits {
            max_string_bytes: 3,
            ..ImportLimits::default()
        };
        assert!(check_text(r#"["\u0041\n\""]"#, &limits).is_ok());
        assert!(matches!(
            check_text(r#"["abcd"]"#, &limits),
            Err(ImportError::StringTooLong { .. })
        ));
    }

    #[test]
    fn value_walk_names_the_path() {
        let limits = ImportLimits {
            max_string_bytes: 3,
            ..ImportLimits::default()
        };
        let err = check_value(&json!({"cells": [{"source": "abcd"}]}), &limits).unwrap_err();
        assert_eq!(
            err,
            ImportError::StringTooLong {
                at: "cells[0].source".into(),
                limit: 3
            }
        );
        let limits = ImportLimits {
            max_depth: 2,
            ..ImportLimits::default()
        };
        let err = check_value(&json!({"a": {"b": {}}}), &limits).unwrap_err();
        assert_eq!(
            err,
            ImportError::TooDeep {
                limit: 2,
                at: "a.b".into()
            }
        );
    }
}
