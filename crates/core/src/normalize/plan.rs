//! Planning: a table's expressions compiled against its sources' columns (slot, index), and
//! evaluated per row, borrowing from the row where they can.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::model::{json_text, Expr, ModelSpec, SplitPart, Test};
use crate::spec::SpecError;

use super::{FastMap, KeyHasher};

/// A compiled expression: column references are (slot, index), where slot 0 is the `from`
/// source and slot k the k-th join.
pub(super) enum Plan {
    Col(usize, usize),
    Const(Option<String>),
    Split(usize, usize, SplitPart),
    Key(String, Vec<Plan>),
    Lookup {
        table: String,
        by: String,
        /// The lookup's rows: `by` value → key.
        keys: FastMap<String, String>,
        value: Box<Plan>,
    },
    Explode(usize),
    Case(Vec<(Test, Plan, Plan)>, Box<Plan>),
}

/// A computed value: borrowed from the source row or the model where it can be.
pub(super) type Cell<'a> = Option<Cow<'a, str>>;

/// Why a value could not be computed (a lookup without a row).
pub(super) struct Miss {
    pub(super) rule: &'static str,
    pub(super) value: Option<String>,
    pub(super) message: String,
}

pub(super) struct Ctx<'a> {
    pub(super) slots: &'a [&'a [Option<String>]],
    pub(super) exploded: &'a [Cell<'a>],
}

impl Plan {
    pub(super) fn eval<'a>(&'a self, cx: &Ctx<'a>) -> Result<Cell<'a>, Miss> {
        Ok(match self {
            Plan::Col(s, c) => cx.slots[*s][*c].as_deref().map(Cow::Borrowed),
            Plan::Const(v) => v.as_deref().map(Cow::Borrowed),
            Plan::Split(s, c, part) => cx.slots[*s][*c].as_deref().and_then(|v| {
                let v = v.trim();
                let (first, rest) = v.split_once(char::is_whitespace).unwrap_or((v, ""));
                let out = match part {
                    SplitPart::First => first,
                    SplitPart::Rest => rest.trim_start(),
                };
                (!out.is_empty()).then_some(Cow::Borrowed(out))
            }),
            Plan::Key(name, of) => {
                let mut key = KeyHasher::default();
                key.bytes(name.as_bytes());
                for p in of {
                    match p.eval(cx)? {
                        Some(v) => {
                            key.bytes(b"\x1f");
                            key.bytes(v.as_bytes());
                        }
                        None => return Ok(None),
                    }
                }
                Some(Cow::Owned(key.finish()))
            }
            Plan::Lookup {
                table,
                by,
                keys,
                value,
            } => match value.eval(cx)? {
                None => None,
                Some(v) => match keys.get(v.as_ref()) {
                    Some(key) => Some(Cow::Borrowed(key.as_str())),
                    None => {
                        return Err(Miss {
                            rule: "lookup_miss",
                            message: format!("{table} has no row whose {by} is {v:?}"),
                            value: Some(v.into_owned()),
                        })
                    }
                },
            },
            Plan::Explode(i) => cx.exploded[*i].clone(),
            Plan::Case(whens, otherwise) => {
                for (test, value, then) in whens {
                    if value.eval(cx)?.is_some_and(|v| test.holds(&v)) {
                        return then.eval(cx);
                    }
                }
                otherwise.eval(cx)?
            }
        })
    }
}

pub(super) struct Planner<'a> {
    pub(super) model: &'a ModelSpec,
    /// (alias, columns) per slot.
    pub(super) slots: Vec<(&'a str, &'a [String])>,
    pub(super) explode_names: Vec<&'a str>,
    pub(super) field: String,
    /// Per slot, per column: referenced by the table (only those are read).
    pub(super) used: std::cell::RefCell<Vec<Vec<bool>>>,
    /// (lookup table, column) → value → key, of the lookups built so far.
    pub(super) lookups: &'a HashMap<(String, String), FastMap<String, String>>,
}

impl Planner<'_> {
    pub(super) fn err(&self, problem: String) -> SpecError {
        SpecError {
            file: format!("model {}", self.model.model),
            field: self.field.clone(),
            problem,
        }
    }

    pub(super) fn column(&self, reference: &str) -> Result<(usize, usize), SpecError> {
        let (alias, name) = match reference.split_once('.') {
            Some((a, n)) => (Some(a), n),
            None => (None, reference),
        };
        for (s, (a, cols)) in self.slots.iter().enumerate() {
            if alias.is_some_and(|x| x != *a) {
                continue;
            }
            if let Some(c) = cols.iter().position(|c| c == name) {
                self.used.borrow_mut()[s][c] = true;
                return Ok((s, c));
            }
        }
        let known: Vec<String> = self
            .slots
            .iter()
            .map(|(a, cols)| format!("{a}: {}", cols.join(", ")))
            .collect();
        Err(self.err(format!(
            "no source column '{reference}' (the sources have {})",
            known.join("; ")
        )))
    }

    pub(super) fn plan(&self, e: &Expr) -> Result<Plan, SpecError> {
        Ok(match e {
            Expr::Column(r) => {
                let (s, c) = self.column(r)?;
                Plan::Col(s, c)
            }
            Expr::Const(v) => Plan::Const(json_text(v)),
            Expr::Split { column, part } => {
                let (s, c) = self.column(column)?;
                Plan::Split(s, c, *part)
            }
            Expr::Key { table, of } => Plan::Key(
                format!("sluice/{}/{table}", self.model.model),
                of.iter().map(|e| self.plan(e)).collect::<Result<_, _>>()?,
            ),
            Expr::Lookup { table, by, value } => Plan::Lookup {
                table: table.clone(),
                by: by.clone(),
                keys: self
                    .lookups
                    .get(&(table.clone(), by.clone()))
                    .cloned()
                    .unwrap_or_default(),
                value: Box::new(self.plan(value)?),
            },
            // A rowset's fields are the table's exploded values, one set per z:row.
            Expr::Explode(name) | Expr::Rowset(name) => Plan::Explode(
                self.explode_names
                    .iter()
                    .position(|n| n == name)
                    .ok_or_else(|| self.err(format!("'{name}' is not an explode value")))?,
            ),
            Expr::Case { when, otherwise } => Plan::Case(
                when.iter()
                    .map(|w| {
                        Ok((
                            w.test.clone(),
                            self.plan(&w.test.value)?,
                            self.plan(&w.then)?,
                        ))
                    })
                    .collect::<Result<_, SpecError>>()?,
                Box::new(self.plan(otherwise)?),
            ),
        })
    }
}
