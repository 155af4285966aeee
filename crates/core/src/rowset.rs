//! ADO XML rowsets (what a legacy Visual Basic or classic ASP application saved with
//! `Recordset.Save adPersistXML`, often into an `NVARCHAR(MAX)` column): an `s:Schema` whose
//! `s:AttributeType`s name the fields and give each a `dt:type`, then `rs:data` with one `z:row`
//! per record, its fields as attributes (a NULL field is an absent attribute).
//! https://learn.microsoft.com/en-us/sql/ado/guide/data/persisting-records-in-xml-format
//!
//! A model explodes such a column into one target row per `z:row` (`"rowset"` on a table,
//! `{"rowset": "Field"}` in its columns); values are checked and normalised by the rowset's own
//! types: dates to `YYYY-MM-DD HH:MM:SS`, numbers as written (checked), booleans `true`/`false`.

use chrono::NaiveDateTime;
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

/// A rowset's fields (name, `dt:type`) and rows (field values by name, absent = NULL).
#[derive(Debug, Default, PartialEq)]
pub struct Rowset {
    pub fields: Vec<(String, String)>,
    pub rows: Vec<Vec<(String, String)>>,
}

fn attributes(e: &BytesStart<'_>) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|e| format!("a malformed attribute: {e}"))?;
        let key: String = a.key.as_ref().to_owned();
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| format!("attribute {key}: {e}"))?
            .into_owned();
        out.push((key, value));
    }
    Ok(out)
}

/// Parses a rowset document.
pub fn parse(xml: &str) -> Result<Rowset, String> {
    let mut reader = Reader::from_str(xml);
    let mut set = Rowset::default();
    let mut in_data = false;
    let mut seen_schema = false;
    loop {
        let event = reader.read_event().map_err(|e| {
            format!(
                "not well-formed XML at byte {}: {e}",
                reader.buffer_position()
            )
        })?;
        match event {
            Event::Start(e) | Event::Empty(e) => {
                let local = e.local_name();
                match local.as_ref() {
                    "Schema" => seen_schema = true,
                    "AttributeType" => {
                        let name = attributes(&e)?
                            .into_iter()
                            .find(|(k, _)| k == "name")
                            .map(|(_, v)| v)
                            .ok_or("an s:AttributeType without a name")?;
                        set.fields.push((name, "string".into()));
                    }
                    "datatype" => {
                        if let (Some(field), Some((_, ty))) = (
                            set.fields.last_mut(),
                            attributes(&e)?
                                .into_iter()
                                .find(|(k, _)| k.ends_with(":type")),
                        ) {
                            field.1 = ty;
                        }
                    }
                    "data" => in_data = true,
                    "row" if in_data => set.rows.push(attributes(&e)?),
                    _ => {}
                }
            }
            Event::End(e) if e.local_name().as_ref() == "data" => in_data = false,
            Event::Eof => break,
            _ => {}
        }
    }
    if !seen_schema {
        return Err("no s:Schema: not an ADO rowset".into());
    }
    Ok(set)
}

/// A field's value checked and normalised by its `dt:type`.
pub fn typed(field: &str, ty: &str, value: &str) -> Result<String, String> {
    let bad = |what: &str| Err(format!("{field} = '{value}' is not {what} (dt:type {ty})"));
    match ty {
        "dateTime" | "dateTime.tz" | "date" => {
            let v = value.trim();
            let t = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(v, f).ok())
                .or_else(|| {
                    chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
                        .ok()
                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                });
            match t {
                Some(t) if ty == "date" => Ok(t.format("%Y-%m-%d").to_string()),
                Some(t) => Ok(t.format("%Y-%m-%d %H:%M:%S%.f").to_string()),
                None => bad("a date"),
            }
        }
        "number" | "float" | "r4" | "r8" | "fixed.14.4" | "int" | "i1" | "i2" | "i4" | "i8"
        | "ui1" | "ui2" | "ui4" | "ui8" => {
            let v = value.trim();
            let digits = v.strip_prefix(['-', '+']).unwrap_or(v);
            let ok = !digits.is_empty()
                && digits.bytes().any(|b| b.is_ascii_digit())
                && digits
                    .bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
                && v.parse::<f64>().is_ok();
            if ok {
                Ok(v.to_owned())
            } else {
                bad("a number")
            }
        }
        "boolean" => match value.trim() {
            "1" | "true" | "True" | "-1" => Ok("true".into()),
            "0" | "false" | "False" => Ok("false".into()),
            _ => bad("a boolean"),
        },
        _ => Ok(value.to_owned()),
    }
}

/// The name that reads a row's position in the rowset (1 for the first `z:row`): a key for
/// rows that have none of their own.
pub const POSITION: &str = "#";

/// The values of `names` for every row, typed by the rowset's schema. A name the schema does
/// not have, or a value its type refuses, is an error naming the row.
pub fn rows_for(xml: &str, names: &[&str]) -> Result<Vec<Vec<Option<String>>>, String> {
    let set = parse(xml)?;
    let types: Vec<&str> = names
        .iter()
        .map(|n| {
            if *n == POSITION {
                return Ok("int");
            }
            set.fields
                .iter()
                .find(|(f, _)| f == n)
                .map(|(_, t)| t.as_str())
                .ok_or_else(|| {
                    format!(
                        "the rowset has no field '{n}' (it has: {})",
                        set.fields
                            .iter()
                            .map(|(f, _)| f.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
        })
        .collect::<Result<_, _>>()?;
    set.rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            names
                .iter()
                .zip(&types)
                .map(|(n, ty)| match row.iter().find(|(k, _)| k == n) {
                    None if *n == POSITION => Ok(Some((i + 1).to_string())),
                    None => Ok(None),
                    Some((_, v)) => typed(n, ty, v)
                        .map(Some)
                        .map_err(|e| format!("z:row {}: {e}", i + 1)),
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r##"<xml xmlns:dt="uuid:C2F41010-65B3-11d1-A29F-00AA00C14882" xmlns:rs="urn:schemas-microsoft-com:rowset" xmlns:s="uuid:BDC6E3F0-6DA3-11d1-A2A3-00AA00C14882" xmlns:z="#RowsetSchema"><s:Schema id="RowsetSchema"><s:ElementType content="eltOnly" name="row"><s:AttributeType name="MonthYear" rs:number="1"><s:datatype dt:type="dateTime" rs:dbtype="variantdate"/></s:AttributeType><s:AttributeType name="Deposit" rs:number="2"><s:datatype dt:type="number" rs:dbtype="currency"/></s:AttributeType><s:AttributeType name="Description" rs:number="3"><s:datatype dt:type="string"/></s:AttributeType></s:ElementType></s:Schema><rs:data><z:row Description="Starting &amp; Balance"/><z:row Deposit="54.95" Description="Insurance" MonthYear="2019-04-01T00:00:00"/></rs:data></xml>"##;

    #[test]
    fn a_rowset_is_read_with_its_types_and_nulls() {
        let rows = rows_for(SMALL, &["#", "MonthYear", "Deposit", "Description"]);
        assert_eq!(
            rows,
            Ok(vec![
                vec![
                    Some("1".into()),
                    None,
                    None,
                    Some("Starting & Balance".into())
                ],
                vec![
                    Some("2".into()),
                    Some("2019-04-01 00:00:00".into()),
                    Some("54.95".into()),
                    Some("Insurance".into())
                ],
            ])
        );
    }

    #[test]
    fn bad_rowsets_say_what_is_wrong() {
        assert!(rows_for(SMALL, &["Nope"]).is_err_and(|e| e.contains("no field 'Nope'")));
        let bad_number = SMALL.replace("54.95", "fifty");
        assert!(rows_for(&bad_number, &["Deposit"])
            .is_err_and(|e| e.contains("z:row 2: Deposit = 'fifty' is not a number")));
        assert!(rows_for("<xml><rs:data>", &[]).is_err());
        assert!(rows_for("plain text", &[]).is_err_and(|e| e.contains("not an ADO rowset")));
    }
}
