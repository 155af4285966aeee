//! Choice rules.

use chrono::DateTime;
use serde_json::Value;

use crate::path;
use crate::StateError;

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn ts(v: &Value) -> Option<DateTime<chrono::FixedOffset>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
}

/// Whether `rule` matches `input`.
pub fn matches(rule: &Value, input: &Value, context: &Value) -> Result<bool, StateError> {
    let obj = rule
        .as_object()
        .ok_or_else(|| StateError::runtime("a Choice rule must be an object".to_owned()))?;
    if let Some(Value::Array(all)) = obj.get("And") {
        for r in all {
            if !matches(r, input, context)? {
                return Ok(false);
            }
        }
        return Ok(true);
    }
    if let Some(Value::Array(any)) = obj.get("Or") {
        for r in any {
            if matches(r, input, context)? {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    if let Some(not) = obj.get("Not") {
        return Ok(!matches(not, input, context)?);
    }
    let var = obj
        .get("Variable")
        .and_then(Value::as_str)
        .ok_or_else(|| StateError::runtime("a Choice rule needs Variable".to_owned()))?;
    let value = path::eval(var, input, context);
    for (op, operand) in obj {
        if matches!(op.as_str(), "Variable" | "Next" | "Comment") {
            continue;
        }
        if op == "IsPresent" {
            return Ok(value.is_ok() == (operand == &Value::Bool(true)));
        }
        let v = value?;
        let want = operand.as_bool();
        let type_test = |t: bool| Ok(Some(t) == want);
        match op.as_str() {
            "IsNull" => return type_test(v.is_null()),
            "IsString" => return type_test(v.is_string()),
            "IsNumeric" => return type_test(v.is_number()),
            "IsBoolean" => return type_test(v.is_boolean()),
            "IsTimestamp" => return type_test(ts(&v).is_some()),
            _ => {}
        }
        let (base, rhs) = match op.strip_suffix("Path") {
            Some(base) => {
                let p = operand
                    .as_str()
                    .ok_or_else(|| StateError::runtime(format!("{op} needs a path")))?;
                (base, path::eval(p, input, context)?)
            }
            None => (op.as_str(), operand.clone()),
        };
        let ord =
            |a: Option<std::cmp::Ordering>, f: fn(std::cmp::Ordering) -> bool| a.is_some_and(f);
        use std::cmp::Ordering::*;
        let cmp = if let Some(kind) = base.strip_prefix("String") {
            (
                kind,
                match (v.as_str(), rhs.as_str()) {
                    (Some(a), Some(b)) => Some(a.cmp(b)),
                    _ => None,
                },
            )
        } else if let Some(kind) = base.strip_prefix("Numeric") {
            (
                kind,
                match (num(&v), num(&rhs)) {
                    (Some(a), Some(b)) => a.partial_cmp(&b),
                    _ => None,
                },
            )
        } else if let Some(kind) = base.strip_prefix("Timestamp") {
            (
                kind,
                match (ts(&v), ts(&rhs)) {
                    (Some(a), Some(b)) => Some(a.cmp(&b)),
                    _ => None,
                },
            )
        } else if base == "BooleanEquals" {
            return Ok(v.is_boolean() && v == rhs);
        } else {
            return Err(StateError::runtime(format!(
                "unsupported Choice operator {op}"
            )));
        };
        return Ok(match cmp.0 {
            "Equals" => ord(cmp.1, |o| o == Equal),
            "LessThan" => ord(cmp.1, |o| o == Less),
            "GreaterThan" => ord(cmp.1, |o| o == Greater),
            "LessThanEquals" => ord(cmp.1, |o| o != Greater),
            "GreaterThanEquals" => ord(cmp.1, |o| o != Less),
            "Matches" => match (v.as_str(), rhs.as_str()) {
                (Some(s), Some(p)) => glob_match(p, s),
                _ => false,
            },
            _ => {
                return Err(StateError::runtime(format!(
                    "unsupported Choice operator {op}"
                )))
            }
        });
    }
    Err(StateError::runtime(
        "a Choice rule has no comparison".to_owned(),
    ))
}

/// `StringMatches`: `*` matches any run of characters; `\*` is a literal star.
fn glob_match(p: &str, s: &str) -> bool {
    let mut parts: Vec<String> = vec![String::new()];
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    if let Some(l) = parts.last_mut() {
                        l.push(n);
                    }
                }
            }
            '*' => parts.push(String::new()),
            c => {
                if let Some(l) = parts.last_mut() {
                    l.push(c);
                }
            }
        }
    }
    let (first, rest) = parts
        .split_first()
        .map(|(f, r)| (f.clone(), r.to_vec()))
        .unwrap_or_default();
    let Some(mut s) = s.strip_prefix(first.as_str()) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return s.is_empty();
    };
    for m in middle {
        match s.find(m.as_str()) {
            Some(i) => s = &s[i + m.len()..],
            None => return false,
        }
    }
    s.len() >= last.len() && s.ends_with(last.as_str())
}
