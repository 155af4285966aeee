//! Hostile files: each gives one clear error naming the file and the cause (or quarantines
//! the bad rows), never a panic, never a published partial output, and bounded memory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/xlsx.rs"]
mod xlsx;

use std::io::{Cursor, Write};

use common::*;
use xlsx::{sheet, Book};

fn csv_spec() -> sluice_core::TableSpec {
    spec(
        r#"{"dataset":"h","source":{"format":"csv"},"columns":[
        {"name":"a","type":"int"},{"name":"b","type":"string"}]}"#,
    )
}

fn xlsx_spec(sheet: &str) -> sluice_core::TableSpec {
    spec(&format!(
        r#"{{"dataset":"h","source":{{"format":"xlsx","sheet":"{sheet}"}},"columns":[
        {{"name":"a","type":"int"}},{{"name":"b","type":"string"}}]}}"#
    ))
}

fn good_book() -> Vec<u8> {
    Book {
        sheets: vec![(
            "data",
            sheet(r#"<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row><row r="2"><c r="A2"><v>1</v></c><c r="B2" t="s"><v>1</v></c></row>"#),
        )],
        shared: vec!["a", "b"],
        date1904: false,
    }
    .bytes()
}

/// Runs an ingest that must fail; returns the message. Nothing may be left in staging
/// that a caller could publish: the report is never produced.
fn fails(spec: &sluice_core::TableSpec, key: &str, bytes: Vec<u8>) -> String {
    let (_dir, r) = ingest_bytes(spec, key, bytes);
    let e = sluice_core::error_chain(&r.expect_err("this file must be refused"));
    assert!(
        e.starts_with(&format!("test://{key}: ")),
        "error must name the file: {e}"
    );
    e
}

#[test]
fn truncated_xlsx() {
    let mut b = good_book();
    b.truncate(b.len() / 2);
    let e = fails(&xlsx_spec("data"), "t.xlsx", b);
    assert!(
        e.contains("not a zip archive") || e.contains("not a readable xlsx"),
        "{e}"
    );
}

#[test]
fn corrupt_xlsx_bytes() {
    let mut b = good_book();
    let mid = b.len() / 3;
    for x in &mut b[mid..mid + 200] {
        *x = 0x5a;
    }
    let e = fails(&xlsx_spec("data"), "c.xlsx", b);
    assert!(!e.is_empty());
}

#[test]
fn csv_renamed_xlsx() {
    let e = fails(&xlsx_spec("data"), "r.xlsx", b"a,b\n1,2\n".to_vec());
    assert!(
        e.contains("is it a CSV or an old .xls renamed .xlsx?"),
        "{e}"
    );
}

#[test]
fn missing_sheet_lists_the_sheets() {
    let e = fails(&xlsx_spec("nope"), "m.xlsx", good_book());
    assert!(
        e.contains("sheet 'nope' not found (the workbook has: data)"),
        "{e}"
    );
}

#[test]
fn empty_files() {
    let e = fails(&csv_spec(), "e.csv", Vec::new());
    assert!(e.contains("the file is empty"), "{e}");
    let empty_sheet = Book {
        sheets: vec![("data", sheet(""))],
        shared: vec![],
        date1904: false,
    };
    let e = fails(&xlsx_spec("data"), "e.xlsx", empty_sheet.bytes());
    assert!(e.contains("the file is empty"), "{e}");
}

#[test]
fn header_only_is_processed_with_zero_rows_and_no_outputs() {
    let (_d, r) = ingest_bytes(&csv_spec(), "h.csv", b"a,b\n".to_vec());
    let r = r.unwrap();
    assert_eq!((r.rows_read, r.rows_written, r.outputs.len()), (0, 0, 0));
    assert!(r.quarantine.is_none());
}

#[test]
fn ragged_rows_are_quarantined_and_the_rest_lands() {
    let (dir, r) = ingest_bytes(&csv_spec(), "r.csv", b"a,b\n1,x\n2\n3,y,z\n4,w\n".to_vec());
    let r = r.unwrap();
    assert_eq!((r.rows_written, r.rows_quarantined), (2, 2));
    let q = quarantine(dir.path(), &r);
    assert_eq!(q[0]["reason"], "ragged_row");
    assert_eq!(q[0]["row"], 3);
    assert_eq!(q[1]["message"], "row has 3 fields, the header has 2");
    assert_eq!(q[1]["raw"]["C"], "z");
}

#[test]
fn invalid_utf8_without_a_declared_encoding() {
    let e = fails(&csv_spec(), "u.csv", b"a,b\n1,caf\xe9\n".to_vec());
    assert!(e.contains("line 2: invalid UTF-8"), "{e}");
}

#[test]
fn a_100_mb_cell_is_refused_without_holding_it() {
    let mut data = b"a,b\n1,\"".to_vec();
    data.extend(std::iter::repeat_n(b'x', 100 << 20));
    data.extend(b"\"\n");
    let e = fails(&csv_spec(), "big.csv", data);
    assert!(
        e.contains("line 2: a record larger than 16777216 bytes"),
        "{e}"
    );
}

/// The good book with `mib` MiB of blanks inside its sheet: tiny zipped, huge inflated.
fn book_with_blanks(mib: usize) -> Vec<u8> {
    let mut zw = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    let mut original = zip::ZipArchive::new(Cursor::new(good_book())).unwrap();
    let chunk = vec![b' '; 1 << 20];
    for i in 0..original.len() {
        let mut f = original.by_index(i).unwrap();
        let name = f.name().unwrap().to_string();
        let mut body = Vec::new();
        std::io::copy(&mut f, &mut body).unwrap();
        zw.start_file(name.clone(), opts).unwrap();
        if name == "xl/worksheets/sheet1.xml" {
            let (head, tail) = body.split_at(body.len() - "</worksheet>".len());
            zw.write_all(head).unwrap();
            for _ in 0..mib {
                zw.write_all(&chunk).unwrap();
            }
            zw.write_all(tail).unwrap();
        } else {
            zw.write_all(&body).unwrap();
        }
    }
    zw.finish().unwrap().into_inner()
}

#[test]
fn zip_bomb_is_refused_before_inflating() {
    // A sheet that inflates 1000:1 (64 MiB of blanks) past the documented ratio limit.
    let bomb = book_with_blanks(64);
    assert!(
        bomb.len() < 2 << 20,
        "the bomb itself is small: {}",
        bomb.len()
    );
    let e = fails(&xlsx_spec("data"), "bomb.xlsx", bomb);
    assert!(e.contains("refusing a possible zip bomb"), "{e}");
}

#[test]
fn spec_errors_name_file_field_and_problem() {
    let e = sluice_core::TableSpec::from_json(
        "config/tables/x.json",
        r#"{"dataset":"x","source":{},"columns":[{"name":"a","type":"decimal(40,2)"}]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("config/tables/x.json: columns[0].type: "),
        "{e}"
    );
    assert!(e.contains("precision <= 38"), "{e}");
}

#[test]
fn random_damage_to_a_workbook_never_panics() {
    let good = good_book();
    let mut seed: u64 = 0x5eed;
    let mut next = move || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) as usize
    };
    for _ in 0..300 {
        let mut b = good.clone();
        for _ in 0..1 + next() % 8 {
            let i = next() % b.len();
            b[i] = next() as u8;
        }
        // Either outcome is fine; a panic fails the test.
        let (_d, r) = ingest_bytes(&xlsx_spec("data"), "fuzz.xlsx", b);
        if let Err(e) = r {
            assert!(sluice_core::error_chain(&e).starts_with("test://fuzz.xlsx: "));
        }
    }
}

#[test]
fn a_blank_row_where_the_header_should_be_is_refused_not_a_panic() {
    // The spec reads the header from row 1; the sheet's first row is blank.
    let book = Book {
        sheets: vec![(
            "data",
            sheet(
                r#"<row r="2"><c r="A2" t="s"><v>0</v></c><c r="B2" t="s"><v>1</v></c></row><row r="3"><c r="A3"><v>1</v></c><c r="B3" t="s"><v>1</v></c></row>"#,
            ),
        )],
        shared: vec!["a", "b"],
        date1904: false,
    };
    let e = fails(&xlsx_spec("data"), "blank.xlsx", book.bytes());
    assert!(e.contains("row 1, the header row, is blank"), "{e}");
}

#[test]
fn a_cell_beyond_column_xfd_is_refused_before_any_allocation() {
    let book = Book {
        sheets: vec![(
            "data",
            sheet(
                r#"<row r="1"><c r="A1" t="s"><v>0</v></c><c r="ZZZZZZ1" t="s"><v>1</v></c></row>"#,
            ),
        )],
        shared: vec!["a", "b"],
        date1904: false,
    };
    let e = fails(&xlsx_spec("data"), "wide.xlsx", book.bytes());
    assert!(e.contains("cell ZZZZZZ1 lies beyond column XFD"), "{e}");
}

/// Rewrites the uncompressed size a zip declares for `part` (local header and central
/// directory) without touching its data.
fn declare_size(mut zip: Vec<u8>, part: &str, size: u32) -> Vec<u8> {
    let name = part.as_bytes();
    for (sig, name_at, size_at) in [(0x04034b50u32, 30, 22), (0x02014b50, 46, 24)] {
        let sig = sig.to_le_bytes();
        let mut i = 0;
        while i + name_at + name.len() <= zip.len() {
            if zip[i..i + 4] == sig && zip[i + name_at..i + name_at + name.len()] == *name {
                zip[i + size_at..i + size_at + 4].copy_from_slice(&size.to_le_bytes());
            }
            i += 1;
        }
    }
    zip
}

#[test]
fn a_sheet_that_lies_about_its_size_is_measured_not_trusted() {
    // 64 MiB of blanks declared as 2 KB: the declared size passes every check.
    let liar = declare_size(book_with_blanks(64), "xl/worksheets/sheet1.xml", 2048);
    let e = fails(&xlsx_spec("data"), "liar.xlsx", liar);
    assert!(
        e.contains("xlsx part 'sheet data' inflates past the size it declares: refusing a possible zip bomb"),
        "{e}"
    );
}

#[test]
fn date_serials_outside_the_calendar_are_not_dates() {
    let spec = spec(
        r#"{"dataset":"h","source":{"format":"xlsx","sheet":"data"},"columns":[
        {"name":"a","type":"int"},{"name":"d","type":"date"}]}"#,
    );
    // Style 1 is a date format: -5, 3,000,000 and 0.5 are no calendar days; 45000 is.
    let book = Book {
        sheets: vec![(
            "data",
            sheet(
                r#"<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row><row r="2"><c r="A2"><v>1</v></c><c r="B2" s="1"><v>-5</v></c></row><row r="3"><c r="A3"><v>2</v></c><c r="B3" s="1"><v>3000000</v></c></row><row r="4"><c r="A4"><v>3</v></c><c r="B4" s="1"><v>0.5</v></c></row><row r="5"><c r="A5"><v>4</v></c><c r="B5" s="1"><v>45000</v></c></row>"#,
            ),
        )],
        shared: vec!["a", "d"],
        date1904: false,
    };
    let (dir, r) = ingest_bytes(&spec, "dates.xlsx", book.bytes());
    let r = r.unwrap();
    assert_eq!((r.rows_written, r.rows_quarantined), (1, 3));
    let q = quarantine(dir.path(), &r);
    assert!(q.iter().all(|x| x["reason"] == "not_a_date"), "{q:?}");
}

#[test]
fn a_file_whose_every_row_is_rejected_writes_a_bounded_quarantine_and_counts_the_rest() {
    // A format change: column a now holds text, 50,000 rows.
    let mut data = b"a,b\n".to_vec();
    for i in 0..50_000 {
        data.extend(format!("x{i},y\n").as_bytes());
    }
    let input_len = data.len();
    let (dir, r) = ingest_bytes(&csv_spec(), "all-bad.csv", data);
    let r = r.unwrap();
    assert_eq!((r.rows_read, r.rows_quarantined), (50_000, 50_000));
    assert_eq!(r.rejects.len(), 1);
    assert_eq!(r.rejects[0].rows, 50_000, "every rejection counted");
    let q = quarantine(dir.path(), &r);
    assert_eq!(q.len(), 10_000, "the first ones in full");
    assert_eq!(r.quarantine.as_ref().unwrap().rows, 10_000);
    let size = std::fs::metadata(dir.path().join(&r.quarantine.unwrap().path))
        .unwrap()
        .len();
    // Bounded by the record count, whatever the input's length (here 2 MB for 10,000).
    assert!(size < 10_000 * 512, "{size} bytes for {input_len} of input");
}

#[test]
fn a_wide_header_is_not_echoed_whole_in_every_quarantine_record() {
    // 20,000 columns (a, b, then filler), 50 rows whose a is not an int.
    let mut data = b"a,b".to_vec();
    for i in 0..20_000 {
        data.extend(format!(",filler_column_{i}").as_bytes());
    }
    data.push(b'\n');
    for _ in 0..50 {
        data.extend(b"bad,y");
        data.extend(",0".repeat(20_000).as_bytes());
        data.push(b'\n');
    }
    let input_len = data.len();
    let (dir, r) = ingest_bytes(&csv_spec(), "wide.csv", data);
    let r = r.unwrap();
    assert_eq!(r.rows_quarantined, 50);
    let q = quarantine(dir.path(), &r);
    assert_eq!(q[0]["raw"]["a"], "bad");
    assert!(q[0]["raw"]["(not shown)"]
        .as_str()
        .unwrap()
        .ends_with("more cells"));
    let size = std::fs::metadata(dir.path().join(&r.quarantine.unwrap().path))
        .unwrap()
        .len();
    assert!(
        (size as usize) < input_len,
        "{size} bytes of quarantine for {input_len} of input"
    );
}

/// `sluice profile` reads files with the same readers: damaged workbooks, empty files and bad
/// UTF-8 give an error or a profile, never a panic.
#[test]
fn profiling_damaged_or_empty_files_never_panics() {
    let good = good_book();
    let mut seed: u64 = 0xfeed;
    let mut next = move || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) as usize
    };
    let profile = |spec: &sluice_core::TableSpec, key: &str, bytes: Vec<u8>| {
        sluice_core::profile::profile_file(spec, key, std::io::Cursor::new(bytes))
    };
    for _ in 0..100 {
        let mut b = good.clone();
        for _ in 0..1 + next() % 8 {
            let i = next() % b.len();
            b[i] = next() as u8;
        }
        if let Ok(p) = profile(&xlsx_spec("data"), "fuzz.xlsx", b) {
            assert_eq!(p.columns.len(), xlsx_spec("data").columns.len());
        }
    }
    assert!(profile(&xlsx_spec("data"), "empty.xlsx", Vec::new()).is_err());
    assert!(profile(&csv_spec(), "empty.csv", Vec::new()).is_err());
    assert!(profile(&csv_spec(), "bad.csv", b"a,b\n\xff\xfe,1\n".to_vec()).is_err());
    let ok = profile(&xlsx_spec("data"), "good.xlsx", good_book()).unwrap();
    assert!(ok.rows > 0);
}
