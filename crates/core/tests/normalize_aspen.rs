//! The Aspen golden test: the legacy workbook → ingest → normalize, compared on content with
//! another team's result (`mhimadri29-aspencapital_de/Target_Data.xlsx`, made by a SQL ETL).
//! Rows are matched through the borrower id, which both sides keep: that file uses it as
//! `user_profile_id`; our keys are name-based UUIDs of it, which the test recomputes. Each test
//! shows as ignored where `../shared` is absent (cfg `sluice_shared`); in CI it is present.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use calamine::{open_workbook, Data, Reader, Xlsx};
use chrono::NaiveDate;
use common::*;
use serde_json::Value as Json;
use sluice_core::model::ModelSpec;
use sluice_core::normalize::{normalize, stable_key, DataFile, NormalizeOptions, NormalizeReport};
use sluice_core::TableSpec;

const ASPEN: &str = "aspencapital-candidate-project-data-engineer/data_engineer_raw_data.xlsx";
const TARGET: &str = "mhimadri29-aspencapital_de/Target_Data.xlsx";
const SQL: &str = "mhimadri29-aspencapital_de/borrower.sql";

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

fn aspen_model() -> ModelSpec {
    ModelSpec::load(&repo("config/models/aspen.json")).unwrap()
}

fn table_spec(name: &str) -> TableSpec {
    TableSpec::load(&repo(&format!("config/tables/{name}.json"))).unwrap()
}

/// A lake with the given (spec, file) pairs ingested; dataset → curated files.
struct Lake {
    _dirs: Vec<tempfile::TempDir>,
    inputs: BTreeMap<String, Vec<DataFile>>,
}

fn lake(files: &[(TableSpec, PathBuf)]) -> Lake {
    let mut dirs = Vec::new();
    let mut inputs: BTreeMap<String, Vec<DataFile>> = BTreeMap::new();
    for (spec, path) in files {
        let (dir, report) = ingest_file(spec, path);
        assert_eq!(report.rows_quarantined, 0, "{}", path.display());
        inputs
            .entry(spec.dataset.clone())
            .or_default()
            .extend(output_files(dir.path(), &report));
        dirs.push(dir);
    }
    Lake {
        _dirs: dirs,
        inputs,
    }
}

fn as_of() -> NormalizeOptions {
    NormalizeOptions::new(
        NaiveDate::from_ymd_opt(2026, 11, 1)
            .unwrap()
            .and_hms_opt(6, 0, 0)
            .unwrap(),
    )
}

fn run(model: &ModelSpec, lake: &Lake) -> (tempfile::TempDir, NormalizeReport) {
    let out = tempfile::tempdir().unwrap();
    let report = normalize(model, &lake.inputs, out.path(), &as_of()).unwrap();
    (out, report)
}

fn workbook_lake(xlsx: &Path) -> Lake {
    lake(&[
        (table_spec("aspen_borrower"), xlsx.to_path_buf()),
        (table_spec("aspen_role_profile"), xlsx.to_path_buf()),
    ])
}

/// Rows of one target table, read back by pyarrow.
fn rows(out: &Path, report: &NormalizeReport, table: &str) -> Vec<Json> {
    let t = report.tables.iter().find(|t| t.table == table).unwrap();
    read_parquet(&[out.join(&t.output)])["rows"]
        .as_array()
        .unwrap()
        .clone()
}

fn counts(report: &NormalizeReport) -> Vec<(&str, u64, u64)> {
    report
        .tables
        .iter()
        .map(|t| (t.table.as_str(), t.rows_written, t.rows_quarantined))
        .collect()
}

const EXPECTED: [(&str, u64, u64); 9] = [
    ("phone_number_type", 2, 0),
    ("email_type", 2, 0),
    ("role_profile_type", 2, 0),
    ("user_profile", 1000, 0),
    ("user", 1000, 0),
    ("role_profile", 1000, 0),
    ("phone_number", 1461, 0),
    ("address", 1000, 0),
    ("email", 683, 0),
];

// ------------------------------------------------------------------------------------------
// The other team's workbook

/// One sheet as text rows: header → column; rows whose first cell is empty are left out (the
/// sheet's "Legend"/"PK"/"FK" notes sit beside and below the table).
fn sheet(path: &Path, name: &str) -> Vec<HashMap<String, Option<String>>> {
    let mut wb: Xlsx<_> = open_workbook(path).unwrap();
    let range = wb.worksheet_range(name).unwrap();
    let mut it = range.rows();
    let header: Vec<Option<String>> = it.next().unwrap().iter().map(text).collect();
    it.filter(|r| text(&r[0]).is_some())
        .map(|r| {
            header
                .iter()
                .zip(r)
                .filter_map(|(h, c)| h.clone().map(|h| (h, text(c))))
                .collect()
        })
        .collect()
}

fn text(d: &Data) -> Option<String> {
    match d {
        Data::Empty => None,
        Data::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Data::Float(f) if f.fract() == 0.0 => Some(format!("{}", *f as i64)),
        Data::Int(i) => Some(i.to_string()),
        other => Some(other.to_string()),
    }
}

fn get(row: &HashMap<String, Option<String>>, col: &str) -> Option<String> {
    row.get(col).cloned().flatten()
}

/// The other team's rows of a child table keyed by borrower id: role_profile_id → user_id →
/// user_profile_id (= the borrower id).
struct Theirs {
    path: PathBuf,
    borrower_of_role: HashMap<String, String>,
}

impl Theirs {
    fn new(path: PathBuf) -> Theirs {
        let users: HashMap<String, String> = sheet(&path, "user")
            .iter()
            .map(|r| {
                (
                    get(r, "user_id").unwrap(),
                    get(r, "user_profile_id").unwrap(),
                )
            })
            .collect();
        let borrower_of_role = sheet(&path, "role_profile")
            .iter()
            .map(|r| {
                (
                    get(r, "role_profile_id").unwrap(),
                    users[&get(r, "user_id").unwrap()].clone(),
                )
            })
            .collect();
        Theirs {
            path,
            borrower_of_role,
        }
    }

    fn lookup(&self, sheet_name: &str, label: &str) -> HashMap<String, String> {
        sheet(&self.path, sheet_name)
            .iter()
            .map(|r| {
                let id = r
                    .iter()
                    .find(|(k, _)| k.ends_with("_id"))
                    .unwrap()
                    .1
                    .clone();
                (id.unwrap(), get(r, label).unwrap())
            })
            .collect()
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// Equal as multisets; on failure, says how many rows differ and shows a few of each side.
fn assert_same<T: Ord + Clone + std::fmt::Debug>(ours: Vec<T>, reference: Vec<T>, what: &str) {
    let (ours, reference) = (sorted(ours), sorted(reference));
    if ours == reference {
        return;
    }
    let only = |a: &[T], b: &[T]| -> Vec<T> {
        a.iter()
            .filter(|x| b.binary_search(x).is_err())
            .cloned()
            .collect()
    };
    let (mine, theirs) = (only(&ours, &reference), only(&reference, &ours));
    panic!(
        "{what}: {} rows vs {} in the reference; {} only ours, e.g. {:?}; {} only theirs, e.g. {:?}",
        ours.len(),
        reference.len(),
        mine.len(),
        &mine[..mine.len().min(3)],
        theirs.len(),
        &theirs[..theirs.len().min(3)],
    );
}

/// Our key for a borrower's entity in `table`.
fn key(table: &str, borrower: &str) -> String {
    stable_key(&format!("sluice/aspen/{table}\u{1f}{borrower}"))
}

fn s(v: &Json) -> Option<String> {
    v.as_str().map(str::to_owned)
}

#[cfg_attr(
    not(sluice_shared),
    ignore = "needs ../shared (absent when this was built)"
)]
#[test]
fn aspen_workbook_normalizes_like_the_reference_etl() {
    let (xlsx, target) = (seed(ASPEN), seed(TARGET));
    let lake = workbook_lake(&xlsx);
    let model = aspen_model();
    let (out, report) = run(&model, &lake);
    assert_eq!(counts(&report), EXPECTED.to_vec());
    let theirs = Theirs::new(target.clone());
    let borrowers: Vec<String> = sheet(&target, "user_profile")
        .iter()
        .map(|r| get(r, "user_profile_id").unwrap())
        .collect();
    assert_eq!(borrowers.len(), 1000);
    // Our keys are the name-based UUIDs of the borrower id, table by table.
    let of = |table: &str| -> HashMap<String, String> {
        borrowers
            .iter()
            .map(|b| (key(table, b), b.clone()))
            .collect()
    };
    let (profile_of, user_of, role_of) = (of("user_profile"), of("user"), of("role_profile"));

    // Lookups: the same labels (their ids 51/52, 71/72, 91/92 are ours too).
    for (table, sheet_name, label) in [
        ("phone_number_type", "LKP_phone_number_type", "type"),
        ("email_type", "LKP_email_type", "email"),
        ("role_profile_type", "LKP_role_profile_type", "type"),
    ] {
        let ours: Vec<(String, String)> = rows(out.path(), &report, table)
            .iter()
            .map(|r| (r[format!("{table}_id")].to_string(), s(&r["type"]).unwrap()))
            .collect();
        let reference = theirs.lookup(sheet_name, label).into_iter().collect();
        assert_same(ours, reference, table);
    }

    // user_profile: first word / the rest, per borrower.
    let ours: Vec<_> = rows(out.path(), &report, "user_profile")
        .iter()
        .map(|r| {
            (
                profile_of[r["user_profile_id"].as_str().unwrap()].clone(),
                s(&r["first_name"]),
                s(&r["last_name"]),
            )
        })
        .collect();
    let reference: Vec<_> = sheet(&target, "user_profile")
        .iter()
        .map(|r| {
            (
                get(r, "user_profile_id").unwrap(),
                get(r, "first_name"),
                get(r, "last_name"),
            )
        })
        .collect();
    assert_same(ours, reference, "user_profile");

    // user → user_profile, one each.
    let ours: Vec<_> = rows(out.path(), &report, "user")
        .iter()
        .map(|r| {
            let b = &user_of[r["user_id"].as_str().unwrap()];
            assert_eq!(r["user_profile_id"], key("user_profile", b));
            b.clone()
        })
        .collect();
    assert_same(ours, borrowers.clone(), "user");

    // role_profile: the role type per borrower; 516 borrowers, 484 co-borrowers.
    let our_types: HashMap<String, String> = rows(out.path(), &report, "role_profile_type")
        .iter()
        .map(|r| {
            (
                r["role_profile_type_id"].to_string(),
                s(&r["type"]).unwrap(),
            )
        })
        .collect();
    let ours: Vec<_> = rows(out.path(), &report, "role_profile")
        .iter()
        .map(|r| {
            let b = role_of[r["role_profile_id"].as_str().unwrap()].clone();
            assert_eq!(r["user_id"], key("user", &b));
            (b, our_types[&r["role_profile_type_id"].to_string()].clone())
        })
        .collect();
    let their_types = theirs.lookup("LKP_role_profile_type", "type");
    let reference: Vec<_> = sheet(&target, "role_profile")
        .iter()
        .map(|r| {
            (
                theirs.borrower_of_role[&get(r, "role_profile_id").unwrap()].clone(),
                their_types[&get(r, "role_profile_type_id").unwrap()].clone(),
            )
        })
        .collect();
    let borrower_roles = ours.iter().filter(|(_, t)| t == "borrower").count();
    assert_eq!((borrower_roles, ours.len() - borrower_roles), (516, 484));
    assert_same(ours, reference, "role_profile");

    // phone_number and email: (borrower, type, value).
    for (table, lookup_table, lookup_sheet, label) in [
        (
            "phone_number",
            "phone_number_type",
            "LKP_phone_number_type",
            "type",
        ),
        ("email", "email_type", "LKP_email_type", "email"),
    ] {
        let type_col = format!("{lookup_table}_id");
        let our_labels: HashMap<String, String> = rows(out.path(), &report, lookup_table)
            .iter()
            .map(|r| (r[&type_col].to_string(), s(&r["type"]).unwrap()))
            .collect();
        let ours: Vec<_> = rows(out.path(), &report, table)
            .iter()
            .map(|r| {
                (
                    role_of[r["role_profile_id"].as_str().unwrap()].clone(),
                    our_labels[&r[&type_col].to_string()].clone(),
                    s(&r["value"]).unwrap(),
                )
            })
            .collect();
        let their_labels = theirs.lookup(lookup_sheet, label);
        let reference: Vec<_> = sheet(&target, table)
            .iter()
            .map(|r| {
                (
                    theirs.borrower_of_role[&get(r, "role_profile_id").unwrap()].clone(),
                    their_labels[&get(r, &type_col).unwrap()].clone(),
                    get(r, "value").unwrap(),
                )
            })
            .collect();
        assert_same(ours, reference, table);
    }

    // address: equal, except the zips that file stored as numbers and so lost their leading
    // zero; ours keep all 1,000 as 5 characters.
    let ours: Vec<_> = rows(out.path(), &report, "address")
        .iter()
        .map(|r| {
            (
                role_of[r["role_profile_id"].as_str().unwrap()].clone(),
                s(&r["street"]),
                s(&r["city"]),
                s(&r["state"]),
                s(&r["zip_code"]).unwrap(),
            )
        })
        .collect();
    assert!(ours.iter().all(|a| a.4.len() == 5));
    let mut lost_zero = 0;
    let reference: Vec<_> = sheet(&target, "address")
        .iter()
        .map(|r| {
            let zip = get(r, "zip_code").unwrap();
            let zip = if zip.len() < 5 {
                lost_zero += 1;
                format!("{zip:0>5}")
            } else {
                zip
            };
            (
                theirs.borrower_of_role[&get(r, "role_profile_id").unwrap()].clone(),
                get(r, "street"),
                get(r, "city"),
                get(r, "state"),
                zip,
            )
        })
        .collect();
    assert_eq!(
        lost_zero, 44,
        "zips the reference file lost a leading zero of"
    );
    assert_same(ours, reference, "address");

    // Audit columns on every row.
    for t in &report.tables {
        for r in rows(out.path(), &report, &t.table) {
            assert_eq!(r["created"], "2026-11-01 06:00:00", "{}", t.table);
            assert_eq!(r["created_by"], "sluice");
            assert!(r["updated"].is_null() && r["updated_by"].is_null());
        }
    }
}

#[cfg_attr(
    not(sluice_shared),
    ignore = "needs ../shared (absent when this was built)"
)]
#[test]
fn normalizing_twice_gives_the_same_bytes_on_one_thread_or_four() {
    let xlsx = seed(ASPEN);
    let lake = workbook_lake(&xlsx);
    let mut model = aspen_model();
    // Narrower e-mails, so that one of the tables built side by side quarantines rows too.
    let email = model.tables.iter_mut().find(|t| t.name == "email").unwrap();
    let value = email
        .columns
        .iter_mut()
        .find(|c| c.name == "value")
        .unwrap();
    value.max_length = Some(20);
    let on = |threads| {
        let out = tempfile::tempdir().unwrap();
        let opts = NormalizeOptions { threads, ..as_of() };
        let report = normalize(&model, &lake.inputs, out.path(), &opts).unwrap();
        (out, report)
    };
    // Phone numbers, addresses and e-mails are built at the same time on four threads.
    let (a, ra) = on(1);
    let (b, rb) = on(4);
    assert_eq!(ra, rb);
    assert!(ra.tables.iter().any(|t| t.rows_quarantined > 0));
    for t in &ra.tables {
        for rel in [&t.output, &t.quarantine] {
            let x = std::fs::read(a.path().join(rel)).unwrap();
            let y = std::fs::read(b.path().join(rel)).unwrap();
            assert!(x == y, "{rel} differs between runs");
        }
    }
}

/// `borrower.sql` as a database export would give it: the INSERT rows as CSV. The file holds
/// the same 1,000 borrowers twice.
fn sql_export(sql: &Path, csv_path: &Path) -> usize {
    let text = std::fs::read_to_string(sql).unwrap();
    let mut w = csv::Writer::from_path(csv_path).unwrap();
    w.write_record([
        "id",
        "full_name",
        "street",
        "city",
        "state",
        "zip_code",
        "phone_home",
        "phone_cell",
        "email",
    ])
    .unwrap();
    let mut n = 0;
    for line in text.lines().filter(|l| l.starts_with("('")) {
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut chars = line.chars().skip(1).peekable();
        let mut quoted = false;
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('\'', true) if chars.peek() == Some(&'\'') => {
                    cur.push('\'');
                    chars.next();
                }
                ('\'', _) => quoted = !quoted,
                (',' | ')', false) => {
                    fields.push(std::mem::take(&mut cur));
                    if c == ')' {
                        break;
                    }
                }
                (c, true) => cur.push(c),
                _ => {}
            }
        }
        assert_eq!(fields.len(), 9, "{line}");
        w.write_record(&fields).unwrap();
        n += 1;
    }
    w.flush().unwrap();
    n
}

#[cfg_attr(
    not(sluice_shared),
    ignore = "needs ../shared (absent when this was built)"
)]
#[test]
fn the_doubled_sql_export_creates_no_duplicates() {
    let (xlsx, sql) = (seed(ASPEN), seed(SQL));
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("borrower-export.csv");
    assert_eq!(sql_export(&sql, &csv_path), 2000);
    let mut csv_spec = table_spec("aspen_borrower");
    csv_spec.source.format = sluice_core::spec::SourceFormat::Csv;
    csv_spec.source.sheet = None;

    let model = aspen_model();
    let (wb_out, wb_report) = run(&model, &workbook_lake(&xlsx));
    // The export alone, and the export on top of the workbook's own rows.
    for files in [
        vec![(csv_spec.clone(), csv_path.clone())],
        vec![
            (table_spec("aspen_borrower"), xlsx.clone()),
            (csv_spec.clone(), csv_path.clone()),
        ],
    ] {
        let mut all = files.clone();
        all.push((table_spec("aspen_role_profile"), xlsx.clone()));
        let (out, report) = run(&model, &lake(&all));
        assert_eq!(counts(&report), EXPECTED.to_vec());
        let profiles = &report.tables[3];
        assert_eq!(profiles.table, "user_profile");
        assert_eq!(
            profiles.duplicates_collapsed,
            if files.len() == 1 { 1000 } else { 2000 }
        );
        // The same tables as from the workbook alone.
        for t in &report.tables {
            let mut ours = rows(out.path(), &report, &t.table);
            let mut reference = rows(wb_out.path(), &wb_report, &t.table);
            let by_text = |a: &Json, b: &Json| a.to_string().cmp(&b.to_string());
            ours.sort_by(by_text);
            reference.sort_by(by_text);
            assert!(ours == reference, "{} differs", t.table);
        }
    }
}

#[cfg_attr(
    not(sluice_shared),
    ignore = "needs ../shared (absent when this was built)"
)]
#[test]
fn email_width_20_quarantines_the_420_longer_addresses() {
    let xlsx = seed(ASPEN);
    let mut model = aspen_model();
    let email = model.tables.iter_mut().find(|t| t.name == "email").unwrap();
    email
        .columns
        .iter_mut()
        .find(|c| c.name == "value")
        .unwrap()
        .max_length = Some(20);
    let (out, report) = run(&model, &workbook_lake(&xlsx));
    let mut expected = EXPECTED.to_vec();
    expected[8] = ("email", 263, 420);
    assert_eq!(counts(&report), expected);
    let t = &report.tables[8];
    assert_eq!(t.rejects.len(), 1);
    assert_eq!(
        (t.rejects[0].column.as_str(), t.rejects[0].rule.as_str()),
        ("value", "too_long")
    );
    let records: Vec<Json> = std::fs::read_to_string(out.path().join(&t.quarantine))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 420);
    for r in &records {
        let value = r["value"].as_str().unwrap();
        assert!(value.chars().count() > 20, "{r}");
        assert_eq!(r["row"]["value"], value, "the whole value is kept: {r}");
        assert_eq!(r["source"]["dataset"], "aspen_borrower");
        assert!(r["source"]["row"].as_u64().unwrap() >= 1);
    }
    let written = rows(out.path(), &report, "email");
    assert!(written
        .iter()
        .all(|r| r["value"].as_str().unwrap().chars().count() <= 20));
}
