//! Intrinsic functions (`States.Format(...)` and friends) in JSONPath payload templates.

use serde_json::Value;

use crate::path;
use crate::StateError;

#[derive(Debug, Clone)]
enum Arg {
    Lit(Value),
    Path(String),
    Call(String, Vec<Arg>),
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

impl<'a> Parser<'a> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn err(&self, what: &str) -> StateError {
        StateError::runtime(format!("intrinsic '{}': {what}", self.text))
    }

    fn call(&mut self) -> Result<Arg, StateError> {
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'.')
        {
            self.i += 1;
        }
        let name = self.text[start..self.i].to_owned();
        self.ws();
        if self.s.get(self.i) != Some(&b'(') {
            return Err(self.err("expected '('"));
        }
        self.i += 1;
        let mut args = Vec::new();
        loop {
            self.ws();
            if self.s.get(self.i) == Some(&b')') {
                self.i += 1;
                break;
            }
            args.push(self.arg()?);
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b')') => {
                    self.i += 1;
                    break;
                }
                _ => return Err(self.err("expected ',' or ')'")),
            }
        }
        Ok(Arg::Call(name, args))
    }

    fn arg(&mut self) -> Result<Arg, StateError> {
        match self.s.get(self.i) {
            Some(b'\'') => {
                self.i += 1;
                let mut out = String::new();
                let mut chars = self.text[self.i..].char_indices();
                loop {
                    match chars.next() {
                        None => return Err(self.err("unterminated string")),
                        Some((n, '\'')) => {
                            self.i += n + 1;
                            return Ok(Arg::Lit(Value::String(out)));
                        }
                        Some((_, '\\')) => match chars.next() {
                            Some((_, c)) => out.push(c),
                            None => return Err(self.err("unterminated escape")),
                        },
                        Some((_, c)) => out.push(c),
                    }
                }
            }
            Some(b'$') => {
                let start = self.i;
                let mut depth = 0;
                while self.i < self.s.len() {
                    match self.s[self.i] {
                        b'[' => depth += 1,
                        b']' => depth -= 1,
                        b',' | b')' if depth == 0 => break,
                        _ => {}
                    }
                    self.i += 1;
                }
                Ok(Arg::Path(self.text[start..self.i].trim().to_owned()))
            }
            Some(b'S') if self.text[self.i..].starts_with("States.") => self.call(),
            Some(_) => {
                let start = self.i;
                while self.i < self.s.len() && !matches!(self.s[self.i], b',' | b')') {
                    self.i += 1;
                }
                let lit = self.text[start..self.i].trim();
                serde_json::from_str(lit)
                    .map(Arg::Lit)
                    .map_err(|_| self.err(&format!("bad argument '{lit}'")))
            }
            None => Err(self.err("unexpected end")),
        }
    }
}

/// Evaluates an intrinsic call expression.
pub fn call(expr: &str, input: &Value, context: &Value) -> Result<Value, StateError> {
    let mut p = Parser {
        s: expr.as_bytes(),
        text: expr,
        i: 0,
    };
    let arg = p.call()?;
    p.ws();
    if p.i != expr.len() {
        return Err(p.err("trailing characters"));
    }
    eval(&arg, input, context)
}

fn eval(arg: &Arg, input: &Value, context: &Value) -> Result<Value, StateError> {
    match arg {
        Arg::Lit(v) => Ok(v.clone()),
        Arg::Path(p) => path::eval(p, input, context),
        Arg::Call(name, args) => {
            let vals = args
                .iter()
                .map(|a| eval(a, input, context))
                .collect::<Result<Vec<_>, _>>()?;
            apply(name, vals)
        }
    }
}

fn bad(name: &str, what: &str) -> StateError {
    StateError::new("States.IntrinsicFailure", format!("{name}: {what}"))
}

fn as_int(name: &str, v: &Value) -> Result<i64, StateError> {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 => Ok(f as i64),
        // AWS rounds halves up (towards +infinity): -1.5 -> -1, 0.5 -> 1.
        Some(f) => Ok((f + 0.5).floor() as i64),
        None => Err(bad(name, "expected a number")),
    }
}

/// How States.Format prints an argument: strings as they are, objects and arrays the way AWS
/// does (`{a=1, b=[x, y]}`).
fn to_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(to_text).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{k}={}", to_text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

fn apply(name: &str, a: Vec<Value>) -> Result<Value, StateError> {
    let arity = |n: usize| {
        if a.len() == n {
            Ok(())
        } else {
            Err(bad(name, &format!("takes {n} arguments")))
        }
    };
    match name {
        "States.Format" => {
            let Some(Value::String(f)) = a.first() else {
                return Err(bad(name, "first argument must be a string"));
            };
            let mut out = String::new();
            let mut args = a[1..].iter();
            let mut chars = f.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            out.push(n);
                        }
                    }
                    '{' if chars.peek() == Some(&'}') => {
                        chars.next();
                        let v = args
                            .next()
                            .ok_or_else(|| bad(name, "more {} than arguments"))?;
                        out.push_str(&to_text(v));
                    }
                    c => out.push(c),
                }
            }
            Ok(Value::String(out))
        }
        "States.StringToJson" => {
            arity(1)?;
            let s = a[0]
                .as_str()
                .ok_or_else(|| bad(name, "expected a string"))?;
            if s.trim().is_empty() {
                return Ok(Value::Null);
            }
            serde_json::from_str(s).map_err(|e| bad(name, &e.to_string()))
        }
        "States.JsonToString" => {
            arity(1)?;
            Ok(Value::String(a[0].to_string()))
        }
        "States.Array" => Ok(Value::Array(a)),
        "States.ArrayLength" => {
            arity(1)?;
            Ok(Value::from(
                a[0].as_array()
                    .ok_or_else(|| bad(name, "expected an array"))?
                    .len(),
            ))
        }
        "States.ArrayGetItem" => {
            arity(2)?;
            let arr = a[0]
                .as_array()
                .ok_or_else(|| bad(name, "expected an array"))?;
            let i = as_int(name, &a[1])?;
            usize::try_from(i)
                .ok()
                .and_then(|i| arr.get(i))
                .cloned()
                .ok_or_else(|| bad(name, "index out of range"))
        }
        "States.ArrayContains" => {
            arity(2)?;
            let arr = a[0]
                .as_array()
                .ok_or_else(|| bad(name, "expected an array"))?;
            Ok(Value::Bool(arr.contains(&a[1])))
        }
        "States.ArrayRange" => {
            arity(3)?;
            let (s, e, step) = (
                as_int(name, &a[0])?,
                as_int(name, &a[1])?,
                as_int(name, &a[2])?,
            );
            if step == 0 {
                return Err(bad(name, "step must not be 0"));
            }
            let mut out = Vec::new();
            let mut x = s;
            while (step > 0 && x <= e) || (step < 0 && x >= e) {
                out.push(Value::from(x));
                if out.len() > 1000 {
                    return Err(bad(name, "more than 1000 items"));
                }
                x += step;
            }
            Ok(Value::Array(out))
        }
        "States.ArrayPartition" => {
            arity(2)?;
            let arr = a[0]
                .as_array()
                .ok_or_else(|| bad(name, "expected an array"))?;
            let n = as_int(name, &a[1])?;
            if n <= 0 {
                return Err(bad(name, "chunk size must be positive"));
            }
            Ok(Value::Array(
                arr.chunks(n as usize)
                    .map(|c| Value::Array(c.to_vec()))
                    .collect(),
            ))
        }
        "States.ArrayUnique" => {
            arity(1)?;
            let arr = a[0]
                .as_array()
                .ok_or_else(|| bad(name, "expected an array"))?;
            let mut out: Vec<Value> = Vec::new();
            for v in arr {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            Ok(Value::Array(out))
        }
        "States.MathAdd" => {
            arity(2)?;
            Ok(Value::from(as_int(name, &a[0])? + as_int(name, &a[1])?))
        }
        "States.StringSplit" => {
            arity(2)?;
            let (Some(s), Some(d)) = (a[0].as_str(), a[1].as_str()) else {
                return Err(bad(name, "expected two strings"));
            };
            let parts: Vec<Value> = s
                .split(|c| d.contains(c))
                .filter(|p| !p.is_empty())
                .map(|p| Value::String(p.to_owned()))
                .collect();
            Ok(Value::Array(parts))
        }
        "States.JsonMerge" => {
            arity(3)?;
            let (Value::Object(x), Value::Object(y)) = (&a[0], &a[1]) else {
                return Err(bad(name, "expected two objects"));
            };
            let mut out = x.clone();
            for (k, v) in y {
                out.insert(k.clone(), v.clone());
            }
            Ok(Value::Object(out))
        }
        other => Err(bad(other, "not supported by the local runner")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn format_and_nesting() {
        let input = json!({"n": 3, "s": "x"});
        let v = call(
            "States.Format('{} items in \\'{}\\'', $.n, $.s)",
            &input,
            &json!({}),
        )
        .ok();
        assert_eq!(v, Some(json!("3 items in 'x'")));
        let v = call(
            "States.ArrayLength(States.Array(1, 'a', $.n))",
            &input,
            &json!({}),
        )
        .ok();
        assert_eq!(v, Some(json!(3)));
        assert!(call("States.Nope(1)", &input, &json!({})).is_err());
    }
}
