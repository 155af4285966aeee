//! JSONPath as ASL uses it: paths into the input (`$.a.b[0]`, `$['a b']`), into the context
//! object (`$$.Execution.Id`), reference paths for ResultPath, and payload templates
//! (`"key.$": "$.x"`).

use serde_json::{Map, Value};

use crate::intrinsic;
use crate::StateError;

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Key(String),
    Index(i64),
    /// `[*]` or `.*`
    Wildcard,
    /// `[a:b]`
    Slice(Option<i64>, Option<i64>),
}

/// Parses `$...` (the leading `$` already checked by the caller).
pub fn parse(path: &str) -> Option<Vec<Step>> {
    let rest = path.strip_prefix('$')?;
    let b = rest.as_bytes();
    let mut i = 0;
    let mut steps = Vec::new();
    while i < b.len() {
        match b[i] {
            b'.' => {
                i += 1;
                if i < b.len() && b[i] == b'*' {
                    steps.push(Step::Wildcard);
                    i += 1;
                    continue;
                }
                let start = i;
                while i < b.len() && b[i] != b'.' && b[i] != b'[' {
                    i += 1;
                }
                if start == i {
                    return None;
                }
                steps.push(Step::Key(rest[start..i].to_owned()));
            }
            b'[' => {
                let close = rest[i..].find(']')? + i;
                let inner = rest[i + 1..close].trim();
                if let Some(q) = inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
                    steps.push(Step::Key(q.to_owned()));
                } else if let Some(q) = inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                    steps.push(Step::Key(q.to_owned()));
                } else if inner == "*" {
                    steps.push(Step::Wildcard);
                } else if let Some((a, z)) = inner.split_once(':') {
                    let num = |s: &str| {
                        if s.trim().is_empty() {
                            Ok(None)
                        } else {
                            s.trim().parse().map(Some)
                        }
                    };
                    steps.push(Step::Slice(num(a).ok()?, num(z).ok()?));
                } else {
                    steps.push(Step::Index(inner.parse().ok()?));
                }
                i = close + 1;
            }
            _ => return None,
        }
    }
    Some(steps)
}

fn is_definite(steps: &[Step]) -> bool {
    steps
        .iter()
        .all(|s| matches!(s, Step::Key(_) | Step::Index(_)))
}

fn select<'a>(v: &'a Value, steps: &[Step], out: &mut Vec<&'a Value>) {
    let Some((first, rest)) = steps.split_first() else {
        out.push(v);
        return;
    };
    match (first, v) {
        (Step::Key(k), Value::Object(m)) => {
            if let Some(x) = m.get(k) {
                select(x, rest, out);
            }
        }
        (Step::Index(i), Value::Array(a)) => {
            let idx = if *i < 0 { a.len() as i64 + i } else { *i };
            if let Some(x) = usize::try_from(idx).ok().and_then(|i| a.get(i)) {
                select(x, rest, out);
            }
        }
        (Step::Wildcard, Value::Array(a)) => a.iter().for_each(|x| select(x, rest, out)),
        (Step::Wildcard, Value::Object(m)) => m.values().for_each(|x| select(x, rest, out)),
        (Step::Slice(s, e), Value::Array(a)) => {
            let len = a.len() as i64;
            let norm = |x: i64| if x < 0 { (len + x).max(0) } else { x.min(len) };
            let s = norm(s.unwrap_or(0));
            let e = norm(e.unwrap_or(len));
            for x in a.iter().take(e.max(0) as usize).skip(s.max(0) as usize) {
                select(x, rest, out);
            }
        }
        _ => {}
    }
}

/// Evaluates `path` against `input` (`$...`) or `context` (`$$...`).
pub fn eval(path: &str, input: &Value, context: &Value) -> Result<Value, StateError> {
    let (root, p) = match path.strip_prefix("$$") {
        Some(rest) => (context, format!("${rest}")),
        None => (input, path.to_owned()),
    };
    let steps =
        parse(&p).ok_or_else(|| StateError::runtime(format!("invalid JSONPath '{path}'")))?;
    let mut out = Vec::new();
    select(root, &steps, &mut out);
    if is_definite(&steps) {
        match out.first() {
            Some(v) => Ok((*v).clone()),
            None => Err(StateError::runtime(format!(
                "The JSONPath '{path}' could not be found in the input '{}'",
                serde_json::to_string(root).unwrap_or_default()
            ))),
        }
    } else {
        Ok(Value::Array(out.into_iter().cloned().collect()))
    }
}

/// Writes `value` into `input` at reference path `path` (ResultPath), creating objects on the
/// way. `$` replaces the whole input.
pub fn put(input: Value, path: &str, value: Value) -> Result<Value, StateError> {
    let steps =
        parse(path).ok_or_else(|| StateError::runtime(format!("invalid ResultPath '{path}'")))?;
    if steps.is_empty() {
        return Ok(value);
    }
    let mut root = input;
    {
        let mut cur = &mut root;
        for step in &steps {
            match step {
                Step::Key(k) => {
                    if !cur.is_object() {
                        if cur.is_null() {
                            *cur = Value::Object(Map::new());
                        } else {
                            return Err(StateError::runtime(format!(
                                "Unable to apply ResultPath '{path}': not an object"
                            )));
                        }
                    }
                    let Value::Object(m) = cur else {
                        return Err(StateError::runtime(format!(
                            "Unable to apply ResultPath '{path}'"
                        )));
                    };
                    cur = m.entry(k.clone()).or_insert(Value::Null);
                }
                Step::Index(i) => {
                    let Value::Array(a) = cur else {
                        return Err(StateError::runtime(format!(
                            "Unable to apply ResultPath '{path}'"
                        )));
                    };
                    let idx = usize::try_from(*i)
                        .map_err(|_| StateError::runtime(format!("bad index in '{path}'")))?;
                    cur = a.get_mut(idx).ok_or_else(|| {
                        StateError::runtime(format!("Unable to apply ResultPath '{path}'"))
                    })?;
                }
                _ => {
                    return Err(StateError::runtime(format!(
                        "ResultPath '{path}' must be a reference path"
                    )))
                }
            }
        }
        *cur = value;
    }
    Ok(root)
}

/// Evaluates a payload template: `"k.$"` values are paths or intrinsic calls; everything else
/// is copied (recursively).
pub fn template(t: &Value, input: &Value, context: &Value) -> Result<Value, StateError> {
    match t {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                match (k.strip_suffix(".$"), v) {
                    (Some(name), Value::String(expr)) => {
                        out.insert(name.to_owned(), expression(expr, input, context)?);
                    }
                    _ => {
                        out.insert(k.clone(), template(v, input, context)?);
                    }
                }
            }
            Ok(Value::Object(out))
        }
        Value::Array(a) => Ok(Value::Array(
            a.iter()
                .map(|x| template(x, input, context))
                .collect::<Result<_, _>>()?,
        )),
        other => Ok(other.clone()),
    }
}

/// A `.$` value: a path (`$...`, `$$...`) or an intrinsic function call.
pub fn expression(expr: &str, input: &Value, context: &Value) -> Result<Value, StateError> {
    if expr.starts_with('$') {
        eval(expr, input, context)
    } else if expr.starts_with("States.") {
        intrinsic::call(expr, input, context)
    } else {
        Err(StateError::runtime(format!(
            "'{expr}' is neither a JSONPath nor an intrinsic function"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_select_and_put() {
        let v = json!({"a": {"b": [1, 2, {"c": "x"}]}, "odd key": 1});
        let c = json!({"Execution": {"Id": "e"}});
        assert_eq!(eval("$.a.b[2].c", &v, &c).ok(), Some(json!("x")));
        assert_eq!(eval("$['odd key']", &v, &c).ok(), Some(json!(1)));
        assert_eq!(eval("$.a.b[-1].c", &v, &c).ok(), Some(json!("x")));
        assert_eq!(eval("$.a.b[0:2]", &v, &c).ok(), Some(json!([1, 2])));
        assert_eq!(eval("$$.Execution.Id", &v, &c).ok(), Some(json!("e")));
        assert!(eval("$.missing", &v, &c).is_err());
        assert_eq!(
            put(json!({"a": 1}), "$.r.s", json!(2)).ok(),
            Some(json!({"a": 1, "r": {"s": 2}}))
        );
        assert_eq!(put(json!({"a": 1}), "$", json!(2)).ok(), Some(json!(2)));
    }

    #[test]
    fn templates_evaluate_dollar_keys_only() {
        let t = json!({"a.$": "$.x", "b": {"c.$": "$$.n"}, "d": "$.x"});
        let out = template(&t, &json!({"x": 5}), &json!({"n": "name"})).ok();
        assert_eq!(out, Some(json!({"a": 5, "b": {"c": "name"}, "d": "$.x"})));
    }
}
