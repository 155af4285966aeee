//! Generated fixtures for every type rule and every rejection reason, checked end to end:
//! file → sluice → Parquet read back by pyarrow (types and values) and quarantine records.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/xlsx.rs"]
mod xlsx;

use common::*;
use xlsx::{sheet, Book};

const ALL_TYPES: &str = r#"{
  "dataset": "all_types",
  "source": { "format": "csv" },
  "null_tokens": ["", "NA"],
  "columns": [
    { "name": "s", "type": "string", "nullable": false, "max_length": 5 },
    { "name": "i", "type": "int" },
    { "name": "b", "type": "bigint" },
    { "name": "d", "type": "double" },
    { "name": "m", "type": "decimal(12,2)" },
    { "name": "f", "type": "boolean", "true_values": ["Y", "1"], "false_values": ["N", "0"] },
    { "name": "day", "type": "date" },
    { "name": "ts", "type": "timestamp" }
  ]
}"#;

#[test]
fn every_type_lands_with_the_parquet_type_athena_reads() {
    let csv = "s,i,b,d,m,f,day,ts\n\
               abc,42,9000000000,2.5,1234.56,Y,2023-03-01,2023-03-01 12:30:00\n\
               NAMIBIA,NA,,NA,NA,NA,NA,NA\n\
               xy, -7 ,-1,1e3,-0.5,0,1970-01-01,1970-01-01T00:00:00.000001\n";
    let (dir, report) = ingest_bytes(&spec(ALL_TYPES), "t.csv", csv.as_bytes().to_vec());
    let report = report.unwrap();
    // 'NAMIBIA' is not the null token 'NA' but is longer than max_length 5.
    assert_eq!((report.rows_written, report.rows_quarantined), (2, 1));
    let q = quarantine(dir.path(), &report);
    assert_eq!(q[0]["reason"], "too_long");
    assert_eq!(q[0]["row"], 3);
    let data = read_parquet(&output_paths(dir.path(), &report));
    let types: Vec<(String, String, String)> = data["schema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["physical"].as_str().unwrap().to_string(),
                c["logical"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("s", "BYTE_ARRAY", "String"),
        ("i", "INT32", "None"),
        ("b", "INT64", "None"),
        ("d", "DOUBLE", "None"),
        ("m", "INT64", "Decimal(precision=12, scale=2)"),
        ("f", "BOOLEAN", "None"),
        ("day", "INT32", "Date"),
        ("ts", "INT64", "Timestamp(isAdjustedToUTC=false, timeUnit=microseconds, is_from_converted_type=false, force_set_converted_type=false)"),
    ];
    for ((n, p, l), (wn, wp, wl)) in types.iter().zip(want) {
        assert_eq!((n.as_str(), p.as_str()), (wn, wp));
        assert!(
            l.starts_with(wl.split('(').next().unwrap()),
            "{n}: logical {l}, want {wl}"
        );
    }
    assert!(
        types[4].2.contains("precision=12, scale=2"),
        "{:?}",
        types[4]
    );
    assert!(types[7].2.contains("microseconds"), "{:?}", types[7]);
    let rows = data["rows"].as_array().unwrap();
    let r0 = &rows[0];
    assert_eq!(r0["s"], "abc");
    assert_eq!(r0["i"], 42);
    assert_eq!(r0["b"], 9_000_000_000i64);
    assert_eq!(r0["d"], 2.5);
    assert_eq!(r0["m"], "1234.56");
    assert_eq!(r0["f"], true);
    assert_eq!(r0["day"], "2023-03-01");
    assert_eq!(r0["ts"], "2023-03-01 12:30:00");
    let r1 = &rows[1];
    assert_eq!(r1["i"], -7);
    assert_eq!(r1["m"], "-0.50");
    assert_eq!(r1["f"], false);
    assert_eq!(r1["ts"], "1970-01-01 00:00:00.000001");
}

#[test]
fn every_rejection_reason_is_quarantined_with_row_column_value_and_reason() {
    let csv = "s,i,b,d,m,f,day,ts\n\
               ok,1,1,1,1,Y,2023-01-01,2023-01-01 00:00:00\n\
               ,1,1,1,1,Y,2023-01-01,2023-01-01 00:00:00\n\
               ok,12.5,1,1,1,Y,2023-01-01,2023-01-01 00:00:00\n\
               ok,3000000000,1,1,1,Y,2023-01-01,2023-01-01 00:00:00\n\
               ok,1,1,\"4,5\",1,Y,2023-01-01,2023-01-01 00:00:00\n\
               ok,1,1,1,3.555,Y,2023-01-01,2023-01-01 00:00:00\n\
               ok,1,1,1,1.2.3,Y,2023-01-01,2023-01-01 00:00:00\n\
               ok,1,1,1,1,yes,2023-01-01,2023-01-01 00:00:00\n\
               ok,1,1,1,1,Y,2023-02-30,2023-01-01 00:00:00\n\
               ok,1,1,1,1,Y,2023-01-01,noon\n\
               toolong,1,1,1,1,Y,2023-01-01,2023-01-01 00:00:00\n\
               ok,1,1\n";
    let (dir, report) = ingest_bytes(&spec(ALL_TYPES), "r.csv", csv.as_bytes().to_vec());
    let report = report.unwrap();
    assert_eq!(
        (
            report.rows_read,
            report.rows_written,
            report.rows_quarantined
        ),
        (12, 1, 11)
    );
    let q = quarantine(dir.path(), &report);
    let got: Vec<(u64, &str, &str, &str)> = q
        .iter()
        .map(|r| {
            (
                r["row"].as_u64().unwrap(),
                r["column"].as_str().unwrap(),
                r["value"].as_str().unwrap(),
                r["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (3, "s", "", "null_not_allowed"),
            (4, "i", "12.5", "not_an_integer"),
            (5, "i", "3000000000", "out_of_range"),
            (6, "d", "4,5", "not_a_number"),
            (7, "m", "3.555", "too_many_decimals"),
            (8, "m", "1.2.3", "not_a_decimal"),
            (9, "f", "yes", "not_a_boolean"),
            (10, "day", "2023-02-30", "not_a_date"),
            (11, "ts", "noon", "not_a_timestamp"),
            (12, "s", "toolong", "too_long"),
            (13, "", "", "ragged_row"),
        ]
    );
    let first = &q[0];
    assert_eq!(first["source_object"], "test://r.csv");
    assert_eq!(first["expected_type"], "string");
    assert_eq!(first["raw"]["i"], "1");
    assert_eq!(q[3]["message"], "d: cannot coerce '4,5' to double");
}

fn xlsx_spec(extra: &str) -> sluice_core::TableSpec {
    spec(&format!(
        r#"{{
      "dataset": "x",
      "source": {{ "format": "xlsx", "sheet": "data" {extra} }},
      "columns": [
        {{ "name": "code", "type": "string", "pad_width": 5 }},
        {{ "name": "n", "type": "int" }},
        {{ "name": "day", "type": "date" }},
        {{ "name": "flag", "type": "boolean" }},
        {{ "name": "note", "type": "string" }}
      ]
    }}"#
    ))
}

#[test]
fn xlsx_cells_are_placed_by_reference_and_typed_by_format() {
    // Row 2: every kind of cell. Row 3: B and D omitted (sparse). Row 4: an error cell.
    // Row 5: a formula with its cached value, and an inline string.
    let body = sheet(concat!(
        r#"<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c><c r="C1" t="s"><v>2</v></c><c r="D1" t="s"><v>3</v></c><c r="E1" t="s"><v>4</v></c></row>"#,
        r#"<row r="2"><c r="A2"><v>6705</v></c><c r="B2"><v>42</v></c><c r="C2" s="1"><v>44986</v></c><c r="D2" t="b"><v>1</v></c><c r="E2" t="s"><v>5</v></c></row>"#,
        r#"<row r="3"><c r="A3" t="s"><v>6</v></c><c r="C3" s="1"><v>1</v></c><c r="E3" t="inlineStr"><is><t>inline</t></is></c></row>"#,
        r#"<row r="4"><c r="A4"><v>1</v></c><c r="B4" t="e"><v>#N/A</v></c></row>"#,
        r#"<row r="6"><c r="A6"><v>7</v></c><c r="B6"><f>1+1</f><v>2</v></c><c r="E6" t="str"><f>"a"&amp;"b"</f><v>ab</v></c></row>"#,
    ));
    let book = Book {
        sheets: vec![("other", sheet("")), ("data", body)],
        shared: vec!["code", "n", "day", "flag", "note", "hello", "00123"],
        date1904: false,
    };
    let (dir, report) = ingest_bytes(&xlsx_spec(""), "b.xlsx", book.bytes());
    let report = report.unwrap();
    assert_eq!(
        (
            report.rows_read,
            report.rows_written,
            report.rows_quarantined
        ),
        (4, 3, 1)
    );
    let q = quarantine(dir.path(), &report);
    assert_eq!(
        (q[0]["row"].as_u64(), q[0]["column"].as_str()),
        (Some(4), Some("n"))
    );
    assert_eq!(q[0]["reason"], "error_cell");
    assert_eq!(q[0]["value"], "#N/A");
    let data = read_parquet(&output_paths(dir.path(), &report));
    let rows = data["rows"].as_array().unwrap();
    assert_eq!(rows[0]["code"], "06705");
    assert_eq!(rows[0]["n"], 42);
    assert_eq!(rows[0]["day"], "2023-03-01");
    assert_eq!(rows[0]["flag"], true);
    assert_eq!(rows[0]["note"], "hello");
    assert_eq!(rows[1]["code"], "00123");
    assert!(
        rows[1]["n"].is_null() && rows[1]["flag"].is_null(),
        "omitted cells are NULL"
    );
    assert_eq!(rows[1]["day"], "1900-01-01");
    assert_eq!(rows[1]["note"], "inline");
    assert_eq!(rows[2]["n"], 2);
    assert_eq!(rows[2]["note"], "ab");
}

#[test]
fn xlsx_1904_epoch_dates() {
    let body = sheet(concat!(
        r#"<row r="1"><c r="A1" t="s"><v>0</v></c><c r="C1" t="s"><v>2</v></c></row>"#,
        r#"<row r="2"><c r="A2" t="s"><v>1</v></c><c r="C2" s="1"><v>0</v></c></row>"#,
        r#"<row r="3"><c r="A3" t="s"><v>1</v></c><c r="C3" s="1"><v>43524</v></c></row>"#,
    ));
    let book = Book {
        sheets: vec![("data", body)],
        shared: vec!["code", "x", "day"],
        date1904: true,
    };
    let spec = spec(
        r#"{"dataset":"e","source":{"format":"xlsx"},"columns":[
        {"name":"code","type":"string"},{"name":"day","type":"date"}]}"#,
    );
    let (dir, report) = ingest_bytes(&spec, "e.xlsx", book.bytes());
    let report = report.unwrap();
    let rows = read_parquet(&output_paths(dir.path(), &report))["rows"].clone();
    assert_eq!(rows[0]["day"], "1904-01-01");
    assert_eq!(rows[1]["day"], "2023-03-01");
}

#[test]
fn header_row_and_loose_matching_and_missing_column_policy() {
    let csv = "exported 2023-06-01\n\nZip Code;Full-Name\n1234;Ann\n";
    let base = r#"{"dataset":"h","source":{"format":"csv","header_row":3,"header_match":"loose",
        "csv":{"delimiter":";"}},"columns":[
        {"name":"zip_code","type":"string","pad_width":5},{"name":"full_name","type":"string"},
        {"name":"email","type":"string"}], "missing_columns": "MISSING"}"#;
    let (_d, r) = ingest_bytes(
        &spec(&base.replace("MISSING", "reject_file")),
        "h.csv",
        csv.into(),
    );
    let e = sluice_core::error_chain(&r.unwrap_err());
    assert!(
        e.contains("required column(s) missing from the header: email"),
        "{e}"
    );
    assert!(e.starts_with("test://h.csv: "), "{e}");
    let (dir, r) = ingest_bytes(&spec(&base.replace("MISSING", "null")), "h.csv", csv.into());
    let r = r.unwrap();
    let rows = read_parquet(&output_paths(dir.path(), &r))["rows"].clone();
    assert_eq!(rows[0]["zip_code"], "01234");
    assert_eq!(rows[0]["full_name"], "Ann");
    assert!(rows[0]["email"].is_null());
}

#[test]
fn extra_columns_rejected_when_the_spec_says_so() {
    let s = spec(
        r#"{"dataset":"x","source":{"format":"csv"},"extra_columns":"reject_file",
        "columns":[{"name":"a","type":"int"}]}"#,
    );
    let (_d, r) = ingest_bytes(&s, "x.csv", b"a,b\n1,2\n".to_vec());
    assert!(sluice_core::error_chain(&r.unwrap_err()).contains("column(s) not in the spec: b"));
}

#[test]
fn same_input_twice_gives_the_same_files_and_bytes() {
    let csv = "s,i,b,d,m,f,day,ts\nabc,42,1,2.5,1.5,Y,2023-03-01,2023-03-01 12:30:00\n,1,1,1,1,Y,2023-01-01,x\n";
    let run = || {
        let (dir, r) = ingest_bytes(&spec(ALL_TYPES), "same.csv", csv.as_bytes().to_vec());
        let r = r.unwrap();
        let files: Vec<(String, Vec<u8>)> = r
            .outputs
            .iter()
            .chain(r.quarantine.iter())
            .map(|o| {
                (
                    o.path.clone(),
                    std::fs::read(dir.path().join(&o.path)).unwrap(),
                )
            })
            .collect();
        files
    };
    let (a, b) = (run(), run());
    assert_eq!(a.len(), 2);
    assert_eq!(a, b);
}

#[test]
fn partition_by_date_column_and_by_source_path() {
    let s = spec(
        r#"{"dataset":"p","source":{"format":"csv"},"columns":[
        {"name":"id","type":"int","nullable":false},{"name":"day","type":"date","nullable":false}],
        "partitioning":{"by":"column","column":"day","granularity":"day"}}"#,
    );
    let (_d, r) = ingest_bytes(
        &s,
        "p.csv",
        b"id,day\n1,2023-01-31\n2,2023-02-01\n3,2023-01-31\n".to_vec(),
    );
    let r = r.unwrap();
    let parts: Vec<(&str, u64)> = r
        .outputs
        .iter()
        .map(|o| (o.path.as_str(), o.rows))
        .collect();
    assert_eq!(parts.len(), 2);
    assert!(
        parts[0]
            .0
            .starts_with("data/p/year=2023/month=01/day=31/p-"),
        "{parts:?}"
    );
    assert_eq!(parts[0].1, 2);
    let s = spec(
        r#"{"dataset":"q","source":{"format":"csv"},"columns":[{"name":"id","type":"int"}],
        "partitioning":{"by":"source_path"}}"#,
    );
    let (_d, r) = ingest_bytes(
        &s,
        "q/yyyy=2022/mm=06/dd=05/hh=12/f.csv",
        b"id\n1\n".to_vec(),
    );
    assert!(r.unwrap().outputs[0]
        .path
        .starts_with("data/q/yyyy=2022/mm=06/dd=05/hh=12/f-"));
    let (_d, r) = ingest_bytes(&s, "q/f.csv", b"id\n1\n".to_vec());
    assert!(sluice_core::error_chain(&r.unwrap_err()).contains("no yyyy=/mm=/dd=/hh= folders"));
}

#[test]
fn csv_output_is_rfc4180_with_empty_nulls() {
    let s = spec(
        r#"{"dataset":"c","source":{"format":"csv"},"output":"csv","columns":[
        {"name":"a","type":"string"},{"name":"m","type":"decimal(5,2)"},{"name":"d","type":"date"}]}"#,
    );
    let (dir, r) = ingest_bytes(
        &s,
        "c.csv",
        "a,m,d\n\"x, \"\"y\"\"\",1.5,2023-01-02\n,,2023-01-03\n".into(),
    );
    let r = r.unwrap();
    let text = std::fs::read_to_string(dir.path().join(&r.outputs[0].path)).unwrap();
    assert_eq!(
        text,
        "a,m,d\n\"x, \"\"y\"\"\",1.50,2023-01-02\n,,2023-01-03\n"
    );
}

#[test]
fn csv_output_text_cannot_become_a_formula_and_numbers_stay_numbers() {
    let s = spec(
        r#"{"dataset":"c","source":{"format":"csv"},"output":"csv","columns":[
        {"name":"a","type":"string"},{"name":"n","type":"int"}]}"#,
    );
    let (dir, r) = ingest_bytes(
        &s,
        "c.csv",
        "a,n\n\"=HYPERLINK(\"\"http://x\"\")\",-5\n+1,1\n@SUM(A1),2\n-x,3\nplain,4\n".into(),
    );
    let r = r.unwrap();
    let text = std::fs::read_to_string(dir.path().join(&r.outputs[0].path)).unwrap();
    assert_eq!(
        text,
        "a,n\n\"'=HYPERLINK(\"\"http://x\"\")\",-5\n'+1,1\n'@SUM(A1),2\n'-x,3\nplain,4\n"
    );
}

/// (column, has a dictionary page, has min/max statistics) of a Parquet file's first row group.
fn column_layout(path: &std::path::Path) -> Vec<(String, bool, bool)> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let meta = SerializedFileReader::new(std::fs::File::open(path).unwrap())
        .unwrap()
        .metadata()
        .clone();
    meta.row_group(0)
        .columns()
        .iter()
        .map(|c| {
            (
                c.column_path().string(),
                c.dictionary_page_offset().is_some(),
                c.statistics().is_some_and(|s| s.min_bytes_opt().is_some()),
            )
        })
        .collect()
}

#[test]
fn mostly_distinct_columns_are_written_without_dictionary_but_with_statistics() {
    let spec = spec(
        r#"{ "dataset": "layout", "source": { "format": "csv" },
             "columns": [ { "name": "id", "type": "bigint" },
                          { "name": "amount", "type": "decimal(12,2)" },
                          { "name": "note", "type": "string" },
                          { "name": "status", "type": "string" },
                          { "name": "day", "type": "date" } ] }"#,
    );
    let file = |rows: u32| {
        let mut csv = String::from("id,amount,note,status,day\n");
        for i in 0..rows {
            let status = ["open", "closed", "late"][i as usize % 3];
            let day = 1 + i % 28;
            csv.push_str(&format!(
                "{i},{}.{:02},note {i},{status},2023-02-{day:02}\n",
                i * 7,
                i % 100
            ));
        }
        csv.into_bytes()
    };
    // Ids, amounts and free text are nearly all distinct: a dictionary would be as large as
    // the column and cost a lookup per value, so they go plain. Repeating values keep theirs.
    let (dir, report) = ingest_bytes(&spec, "big.csv", file(5000));
    let report = report.unwrap();
    assert_eq!(report.rows_written, 5000);
    let paths = output_paths(dir.path(), &report);
    assert_eq!(
        column_layout(&paths[0]),
        [
            ("id".to_owned(), false, true),
            ("amount".to_owned(), false, true),
            ("note".to_owned(), false, true),
            ("status".to_owned(), true, true),
            ("day".to_owned(), true, true),
        ]
    );
    let rows = read_parquet(&paths)["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 5000);
    assert_eq!(rows[4999]["note"], "note 4999");
    assert_eq!(rows[4999]["amount"], "34993.99");
    // Too few values to judge: every column keeps the writer's default, a dictionary.
    let (dir, report) = ingest_bytes(&spec, "small.csv", file(100));
    let layout = column_layout(&output_paths(dir.path(), &report.unwrap())[0]);
    assert!(
        layout.iter().all(|(_, dict, stats)| *dict && *stats),
        "{layout:?}"
    );
}
