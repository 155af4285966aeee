//! Normalize on small hand-made inputs: every rule a row can break, and the model checks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::*;
use serde_json::{json, Value as Json};
use sluice_core::model::ModelSpec;
use sluice_core::normalize::{
    normalize, stable_key, DataFile, NormalizeOptions, NormalizeReport, Previous,
};

const PEOPLE: &str = r#"{"dataset": "people", "source": {"format": "csv"},
  "columns": [{"name": "id", "type": "string"}, {"name": "name", "type": "string"},
              {"name": "kind", "type": "string"}, {"name": "phone", "type": "string"},
              {"name": "mobile", "type": "string"}]}"#;
const TEAMS: &str = r#"{"dataset": "teams", "source": {"format": "csv"},
  "columns": [{"name": "person", "type": "string"}, {"name": "team", "type": "string"}]}"#;

fn model(extra: Json) -> ModelSpec {
    let mut m = json!({
        "model": "demo",
        "sources": {"p": {"dataset": "people"}, "t": {"dataset": "teams"}},
        "tables": [
            {"name": "kind", "primary_key": "kind_id",
             "columns": [{"name": "kind_id", "type": "int", "nullable": false},
                         {"name": "label", "type": "string", "nullable": false}],
             "rows": [{"kind_id": 1, "label": "staff"}, {"kind_id": 2, "label": "guest"}]},
            {"name": "person", "from": "p", "primary_key": "person_id",
             "columns": [
                {"name": "person_id", "type": "string", "nullable": false,
                 "value": {"key": {"table": "person", "of": [{"column": "id"}]}}},
                {"name": "first", "type": "string", "nullable": false, "max_length": 8,
                 "value": {"split": {"column": "name", "part": "first"}}},
                {"name": "last", "type": "string",
                 "value": {"split": {"column": "name", "part": "rest"}}},
                {"name": "kind_id", "type": "int", "nullable": false, "references": "kind",
                 "value": {"lookup": {"table": "kind", "by": "label", "value": {"column": "kind"}}}}]},
            {"name": "phone", "from": "p", "primary_key": "phone_id",
             "join": [{"source": "t", "on": {"id": "person"}}],
             "explode": [{"type": {"const": "home"}, "number": {"column": "phone"}},
                         {"type": {"const": "mobile"}, "number": {"column": "mobile"}}],
             "skip_when_null": ["number"],
             "columns": [
                {"name": "phone_id", "type": "string", "nullable": false,
                 "value": {"key": {"table": "phone", "of": [{"column": "id"}, {"explode": "type"}]}}},
                {"name": "person_id", "type": "string", "nullable": false, "references": "person",
                 "value": {"key": {"table": "person", "of": [{"column": "id"}]}}},
                {"name": "team", "type": "string", "value": {"column": "t.team"}},
                {"name": "type", "type": "string", "value": {"explode": "type"}},
                {"name": "number", "type": "string", "value": {"explode": "number"}}]}
        ]
    });
    if let Json::Object(extra) = extra {
        for (k, v) in extra {
            m[k] = v;
        }
    }
    ModelSpec::from_json("demo.json", &m.to_string()).unwrap()
}

struct Run {
    _dirs: Vec<tempfile::TempDir>,
    out: tempfile::TempDir,
    report: NormalizeReport,
}

fn run(model: &ModelSpec, people: &str, teams: &str) -> Run {
    run_after(model, people, teams, 3, None)
}

/// A build at 2026-01-02 `hour`:04:05, over `previous` (an earlier build's output root).
fn run_after(
    model: &ModelSpec,
    people: &str,
    teams: &str,
    hour: u32,
    previous: Option<&std::path::Path>,
) -> Run {
    let mut dirs = Vec::new();
    let mut inputs: BTreeMap<String, Vec<DataFile>> = BTreeMap::new();
    for (s, key, csv) in [(PEOPLE, "people.csv", people), (TEAMS, "teams.csv", teams)] {
        let (dir, r) = ingest_bytes(&spec(s), key, csv.as_bytes().to_vec());
        let r = r.unwrap();
        inputs.insert(r.dataset.clone(), output_files(dir.path(), &r));
        dirs.push(dir);
    }
    let out = tempfile::tempdir().unwrap();
    let at = chrono::NaiveDate::from_ymd_opt(2026, 1, 2)
        .unwrap()
        .and_hms_opt(hour, 4, 5)
        .unwrap();
    let mut opts = NormalizeOptions::new(at);
    opts.previous = previous.map(|p| Previous::Dir(p.to_path_buf()));
    let report = normalize(model, &inputs, out.path(), &opts).unwrap();
    Run {
        _dirs: dirs,
        out,
        report,
    }
}

impl Run {
    fn table(&self, name: &str) -> &sluice_core::normalize::TableReport {
        self.report.tables.iter().find(|t| t.table == name).unwrap()
    }
    fn rows(&self, name: &str) -> Vec<Json> {
        read_parquet(&[self.out.path().join(&self.table(name).output)])["rows"]
            .as_array()
            .unwrap()
            .clone()
    }
    fn quarantine(&self, name: &str) -> Vec<Json> {
        std::fs::read_to_string(self.out.path().join(&self.table(name).quarantine))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

const PEOPLE_CSV: &str = "id,name,kind,phone,mobile
1,Ann Lee,staff,111,
2,Bo De la Cruz,guest,,222
3,Cy,staff,333,334
4,Maximilian Ott,staff,,
5,Di Wu,visitor,555,
";
const TEAMS_CSV: &str = "person,team\n1,red\n2,blue\n4,red\n5,red\n";

#[test]
fn every_broken_rule_is_quarantined_with_its_reason_and_origin() {
    let r = run(&model(json!({})), PEOPLE_CSV, TEAMS_CSV);
    // person: 3 has no last name (allowed), 4's first name is 10 > 8 characters, 5's kind is
    // not in the lookup.
    assert_eq!(
        (
            r.table("person").rows_written,
            r.table("person").rows_quarantined
        ),
        (3, 2)
    );
    let q = r.quarantine("person");
    let rules: Vec<(&str, &str, &str)> = q
        .iter()
        .map(|x| {
            (
                x["rule"].as_str().unwrap(),
                x["column"].as_str().unwrap(),
                x["value"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rules,
        [
            ("too_long", "first", "Maximilian"),
            ("lookup_miss", "kind_id", "visitor")
        ]
    );
    assert_eq!(q[0]["source"]["dataset"], "people");
    assert_eq!(q[0]["source"]["row"], 4);
    assert_eq!(q[1]["source"]["row"], 5);
    let people = r.rows("person");
    let bo = people.iter().find(|p| p["first"] == "Bo").unwrap();
    assert_eq!(bo["last"], "De la Cruz");
    assert_eq!(bo["person_id"], stable_key("sluice/demo/person\u{1f}2"));
    assert_eq!(bo["kind_id"], 2);
    assert!(people
        .iter()
        .any(|p| p["first"] == "Cy" && p["last"].is_null()));

    // phone: 1 home, 2 mobile, 3 has no team (join miss, quarantined once for the source
    // row), 4 has no numbers, 5's person was quarantined (foreign key). Absent: 1's, 2's and
    // 5's other number, and both of 4's.
    let phone = r.table("phone");
    assert_eq!((phone.rows_written, phone.skipped_absent), (2, 5));
    let q = r.quarantine("phone");
    let rules: Vec<(&str, &str)> = q
        .iter()
        .map(|x| (x["rule"].as_str().unwrap(), x["column"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rules,
        [("join_no_match", "id"), ("foreign_key", "person_id")]
    );
    assert_eq!(q[0]["value"], "3");
    assert_eq!(q[1]["row"]["number"], "555");
    let phones = r.rows("phone");
    assert!(phones
        .iter()
        .any(|p| p["type"] == "mobile" && p["number"] == "222" && p["team"] == "blue"));
}

/// Rows are made on one thread a batch at a time and checked and written on another: over
/// many batches, every rejected row keeps its exact source row, in order, and the rows
/// written keep the source's order.
#[test]
fn over_many_batches_quarantine_rows_and_output_order_are_exact() {
    let n = 3000u64;
    let mut people = String::from("id,name,kind,phone,mobile\n");
    let mut teams = String::from("person,team\n");
    for i in 1..=n {
        let name = if i % 13 == 0 {
            "Maximilian Ott"
        } else {
            "Ann Lee"
        };
        let kind = if i % 11 == 0 { "visitor" } else { "staff" };
        let mobile = if i % 2 == 0 {
            format!("m{i}")
        } else {
            String::new()
        };
        people.push_str(&format!("{i},{name},{kind},h{i},{mobile}\n"));
        if i % 7 != 0 {
            teams.push_str(&format!("{i},red\n"));
        }
    }
    let r = run(&model(json!({})), &people, &teams);

    // person: a kind not in the lookup (every 11th), else a first name too long (every 13th).
    let mut want_person = Vec::new();
    // phone: no team (every 7th) once per source row; else a quarantined person, once per
    // number (home; mobile on even rows).
    let mut want_phone = Vec::new();
    let mut want_numbers = Vec::new();
    for i in 1..=n {
        let person_bad = i % 11 == 0 || i % 13 == 0;
        if i % 11 == 0 {
            want_person.push(("lookup_miss".to_owned(), i));
        } else if i % 13 == 0 {
            want_person.push(("too_long".to_owned(), i));
        }
        let numbers: Vec<String> = std::iter::once(format!("h{i}"))
            .chain((i % 2 == 0).then(|| format!("m{i}")))
            .collect();
        if i % 7 == 0 {
            want_phone.push(("join_no_match".to_owned(), i));
        } else if person_bad {
            want_phone.extend(numbers.iter().map(|_| ("foreign_key".to_owned(), i)));
        } else {
            want_numbers.extend(numbers);
        }
    }
    let got = |table: &str| -> Vec<(String, u64)> {
        r.quarantine(table)
            .iter()
            .map(|q| {
                (
                    q["rule"].as_str().unwrap().to_owned(),
                    q["source"]["row"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(got("person"), want_person);
    assert_eq!(got("phone"), want_phone);
    let numbers: Vec<String> = r
        .rows("phone")
        .iter()
        .map(|p| p["number"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(numbers, want_numbers);
    let phone = r.table("phone");
    assert_eq!(phone.rows_written, want_numbers.len() as u64);
    assert_eq!(phone.rows_quarantined, want_phone.len() as u64);
    // Odd rows have no mobile, except those quarantined before their numbers were made.
    let absent = (1..=n).filter(|i| i % 2 == 1 && i % 7 != 0).count() as u64;
    assert_eq!(phone.skipped_absent, absent);
}

#[test]
fn identical_duplicates_collapse_and_conflicting_ones_are_quarantined() {
    let people = "id,name,kind,phone,mobile\n1,Ann Lee,staff,111,\n1,Ann Lee,staff,111,\n1,Ann Leigh,staff,111,\n";
    let r = run(&model(json!({})), people, "person,team\n1,red\n");
    let t = r.table("person");
    assert_eq!(
        (t.rows_written, t.duplicates_collapsed, t.rows_quarantined),
        (1, 1, 1)
    );
    let q = r.quarantine("person");
    assert_eq!(q[0]["rule"], "duplicate_key");
    assert_eq!(q[0]["row"]["last"], "Leigh");
    assert_eq!(r.rows("person")[0]["last"], "Lee");
    assert_eq!(r.table("phone").duplicates_collapsed, 2);
}

#[test]
fn audit_columns_and_lake_names() {
    let m = model(json!({"audit": {"by": "etl"}, "lake_prefix": "crm_"}));
    let r = run(&m, PEOPLE_CSV, TEAMS_CSV);
    assert_eq!(r.table("person").lake_table, "crm_person");
    assert_eq!(
        r.table("person").output,
        "data/crm_person/crm_person.parquet"
    );
    let row = &r.rows("kind")[0];
    assert_eq!(row["created"], "2026-01-02 03:04:05");
    assert_eq!(row["created_by"], "etl");
    assert!(row["updated"].is_null());
    assert_eq!(model(json!({})).lake_table("person"), "demo_person");
}

#[test]
fn key_columns_are_written_without_dictionary_or_statistics() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let r = run(&model(json!({})), PEOPLE_CSV, TEAMS_CSV);
    let file = std::fs::File::open(r.out.path().join(&r.table("phone").output)).unwrap();
    let meta = SerializedFileReader::new(file).unwrap().metadata().clone();
    let group = meta.row_group(0);
    let layout: Vec<(String, bool, bool)> = group
        .columns()
        .iter()
        .map(|c| {
            (
                c.column_path().string(),
                c.dictionary_page_offset().is_some(),
                c.statistics().is_some(),
            )
        })
        .collect();
    // phone_id and person_id are made by `key` expressions: random v5 UUIDs, where a
    // dictionary saves nothing and min/max skip nothing. The other columns keep both.
    assert_eq!(
        layout,
        [
            ("phone_id".to_owned(), false, false),
            ("person_id".to_owned(), false, false),
            ("team".to_owned(), true, true),
            ("type".to_owned(), true, true),
            ("number".to_owned(), true, true),
        ]
    );
    assert_eq!(r.rows("phone").len(), 2);
}

fn model_error(edit: impl FnOnce(&mut Json)) -> String {
    let mut m: Json = serde_json::to_value(model(json!({}))).unwrap();
    edit(&mut m);
    ModelSpec::from_json("bad.json", &m.to_string())
        .unwrap_err()
        .to_string()
}

#[test]
fn model_mistakes_name_the_field() {
    let e = model_error(|m| m["tables"][1]["columns"][3]["references"] = json!("phone"));
    assert!(
        e.contains("tables[1].columns[3].references") && e.contains("'phone'"),
        "{e}"
    );
    let e = model_error(|m| m["tables"][1]["from"] = json!("nope"));
    assert!(
        e.contains("'nope' is not one of the model's sources"),
        "{e}"
    );
    let e = model_error(|m| m["tables"][1]["primary_key"] = json!("last"));
    assert!(e.contains("must be NOT NULL"), "{e}");
    let e = model_error(|m| m["tables"][2]["columns"][4]["value"] = json!({"explode": "nr"}));
    assert!(
        e.contains("'nr' is not a value of the table's `explode`"),
        "{e}"
    );
    let e = model_error(|m| m["tables"][1]["columns"][1]["value"] = json!({"splt": "name"}));
    assert!(e.contains("tables[1].columns[1].value"), "{e}");
    let e = model_error(|m| m["tables"][0]["columns"][0]["value"] = json!({"const": 1}));
    assert!(
        e.contains("lookup table's values come from its `rows`"),
        "{e}"
    );
}

#[test]
fn an_unknown_source_column_is_a_clear_error() {
    let mut m: Json = serde_json::to_value(model(json!({}))).unwrap();
    m["tables"][1]["columns"][1]["value"] = json!({"column": "nmae"});
    let m = ModelSpec::from_json("demo.json", &m.to_string()).unwrap();
    let (dir, r) = ingest_bytes(&spec(PEOPLE), "p.csv", PEOPLE_CSV.as_bytes().to_vec());
    let r = r.unwrap();
    let (tdir, t) = ingest_bytes(&spec(TEAMS), "t.csv", TEAMS_CSV.as_bytes().to_vec());
    let t = t.unwrap();
    let inputs = BTreeMap::from([
        ("people".to_owned(), output_files(dir.path(), &r)),
        ("teams".to_owned(), output_files(tdir.path(), &t)),
    ]);
    let out = tempfile::tempdir().unwrap();
    let opts = NormalizeOptions::new(chrono::NaiveDateTime::default());
    let e = normalize(&m, &inputs, out.path(), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tables.person.columns.first") && e.contains("no source column 'nmae'"),
        "{e}"
    );
    let e = normalize(&m, &BTreeMap::new(), out.path(), &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("has no curated files"), "{e}");
}

#[test]
fn a_rebuild_keeps_created_and_marks_what_changed() {
    let m = model(json!({"audit": {"by": "etl"}}));
    let first = run_after(&m, PEOPLE_CSV, TEAMS_CSV, 3, None);
    // The same inputs later: the same bytes, nothing new or changed.
    let same = run_after(&m, PEOPLE_CSV, TEAMS_CSV, 9, Some(first.out.path()));
    for t in &first.report.tables {
        let a = std::fs::read(first.out.path().join(&t.output)).unwrap();
        let b = std::fs::read(same.out.path().join(&t.output)).unwrap();
        assert!(a == b, "{} differs", t.table);
    }
    assert!(same
        .report
        .tables
        .iter()
        .all(|t| t.rows_new == 0 && t.rows_changed == 0));
    // Ann changes her name and Ed arrives.
    let people = PEOPLE_CSV.replace("1,Ann Lee,", "1,Ann Leigh,") + "6,Ed Ko,guest,,\n";
    let later = run_after(&m, &people, TEAMS_CSV, 12, Some(first.out.path()));
    let t = later.table("person");
    assert_eq!((t.rows_written, t.rows_new, t.rows_changed), (4, 1, 1));
    let rows = later.rows("person");
    let by_first = |f: &str| rows.iter().find(|r| r["first"] == f).unwrap().clone();
    let ann = by_first("Ann");
    assert_eq!(ann["last"], "Leigh");
    assert_eq!(ann["created"], "2026-01-02 03:04:05");
    assert_eq!(ann["updated"], "2026-01-02 12:04:05");
    assert_eq!(ann["updated_by"], "etl");
    let bo = by_first("Bo");
    assert_eq!(bo["created"], "2026-01-02 03:04:05");
    assert!(bo["updated"].is_null());
    let ed = by_first("Ed");
    assert_eq!(ed["created"], "2026-01-02 12:04:05");
    assert!(ed["updated"].is_null());
}
