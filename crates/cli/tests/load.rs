//! `sluice ingest`, `sluice normalize`, then `sluice load` of the Aspen model into both local
//! servers (`scripts/local-db`), as a data engineer runs them: the nine tables with their foreign
//! keys, so the database itself confirms the model's referential integrity; a rebuild replaces
//! them in one transaction. The seed tests show as ignored where ../shared is absent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use sluice_testkit::sql;

fn sluice(args: &[&str], env: &[(&str, String)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(sluice_testkit::repo_root())
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: Output) -> String {
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    t
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[cfg_attr(
    not(sluice_shared),
    ignore = "needs ../shared (absent when this was built)"
)]
#[test]
fn the_aspen_model_loads_into_both_engines_with_its_foreign_keys_enforced() {
    let xlsx = sluice_testkit::repo_root()
        .join("../shared/seed-data/aspencapital-candidate-project-data-engineer/data_engineer_raw_data.xlsx");
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    for spec in ["aspen_borrower", "aspen_role_profile"] {
        let spec = format!("config/tables/{spec}.json");
        ok(sluice(
            &["ingest", path(&xlsx), "--spec", &spec, "--out", path(&lake)],
            &[],
        ));
    }
    // A model rebuilt from scratch (its earlier tables gone, so `created` is the new time).
    let normalize = |as_of: &str| {
        for e in std::fs::read_dir(lake.join("data")).unwrap() {
            let p = e.unwrap().path();
            if p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("aspen_model_")
            {
                std::fs::remove_dir_all(p).unwrap();
            }
        }
        ok(sluice(
            &[
                "normalize",
                "--model",
                "aspen",
                "--input",
                path(&lake),
                "--out",
                path(&lake),
                "--as-of",
                as_of,
            ],
            &[],
        ))
    };
    normalize("2026-11-29 10:00:00");
    for engine in ["postgres", "mysql"] {
        let creds = sluice_testkit::fresh_database(engine, "aspen");
        let target = dir.path().join(format!("app_{engine}.json"));
        std::fs::write(
            &target,
            format!(
                r#"{{"target":"app_{engine}","engine":"{engine}","connection":{{"secret":"sluice/test/app","tls":"disable"}},
                   "tables":[{{"model":"aspen","mode":"replace"}}]}}"#
            ),
        )
        .unwrap();
        let env = [(
            if engine == "postgres" {
                "SLUICE_TARGET_APP_POSTGRES"
            } else {
                "SLUICE_TARGET_APP_MYSQL"
            },
            creds.to_string(),
        )];
        let load = || {
            sluice(
                &[
                    "load",
                    "--target",
                    path(&target),
                    "--input",
                    path(&lake),
                    "--json",
                ],
                &env,
            )
        };
        let report: serde_json::Value = serde_json::from_str(&ok(load())).unwrap();
        let tables = report["tables"].as_array().unwrap();
        assert_eq!(tables.len(), 9, "{engine}: {report}");
        for (name, rows) in sluice_testkit::ASPEN_TABLES {
            let rows = rows as i64;
            let t = tables.iter().find(|t| t["table"] == name).unwrap();
            assert_eq!(
                (t["lake_rows"].as_i64(), t["database_rows"].as_i64()),
                (Some(rows), Some(rows)),
                "{engine} {name}"
            );
            assert_eq!(t["reconciled"], true);
            let n = sql(
                engine,
                &creds,
                &format!("SELECT count(*) FROM {}", quoted(engine, name)),
            )
            .unwrap();
            assert_eq!(n, rows.to_string(), "{engine} {name}");
        }
        // The database enforces the model's references: a phone number of no role profile is
        // refused, and so is removing a profile that phone numbers point at.
        let orphan = sql(engine, &creds, "INSERT INTO phone_number (phone_number_id, role_profile_id, phone_number_type_id, value, created, created_by) VALUES ('x', 'no-such-profile', 51, '1', '2026-11-29 10:00:00', 't')");
        let e = orphan.unwrap_err();
        assert!(e.to_lowercase().contains("foreign key"), "{engine}: {e}");
        let e = sql(
            engine,
            &creds,
            &format!("DELETE FROM {}", quoted(engine, "user")),
        )
        .unwrap_err();
        assert!(e.to_lowercase().contains("foreign key"), "{engine}: {e}");

        // The same lake again: nothing to do. A rebuild (another `created` time): replaced.
        let again: serde_json::Value = serde_json::from_str(&ok(load())).unwrap();
        assert!(
            again["tables"]
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t["files_loaded"] == 0 && t["files_unchanged"] == 1),
            "{again}"
        );
        normalize("2026-11-30 10:00:00");
        let rebuilt: serde_json::Value = serde_json::from_str(&ok(load())).unwrap();
        assert!(
            rebuilt["tables"]
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t["files_loaded"] == 1 && t["reconciled"] == true),
            "{rebuilt}"
        );
        let created = sql(
            engine,
            &creds,
            "SELECT count(*) FROM email WHERE created = '2026-11-30 10:00:00'",
        )
        .unwrap();
        assert_eq!(created, "683", "{engine}");
        // Put back for the other engine's run.
        normalize("2026-11-29 10:00:00");
    }
}

fn quoted(engine: &str, name: &str) -> String {
    if engine == "postgres" {
        format!("\"{name}\"")
    } else {
        format!("`{name}`")
    }
}

#[test]
fn spec_check_refuses_a_hostile_table_name_and_a_target_without_its_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = dir.path().join("hostile.json");
    std::fs::write(
        &hostile,
        r#"{"target":"app","engine":"postgres","connection":{"secret":"s"},
           "tables":[{"dataset":"credit","table":"credit\"; drop table users; --","mode":"append_by_file"}]}"#,
    )
    .unwrap();
    let missing = dir.path().join("missing.json");
    std::fs::write(
        &missing,
        r#"{"target":"other","engine":"mysql","connection":{"secret":"s"},"tables":[{"dataset":"nope","mode":"merge"}]}"#,
    )
    .unwrap();
    let out = sluice(
        &[
            "spec",
            "check",
            "config/tables/credit.json",
            path(&hostile),
            path(&missing),
        ],
        &[],
    );
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("hostile.json: tables (credit): table name 'credit\"; drop table users; --' is not [a-z_][a-z0-9_]*"), "{t}");
    assert!(
        t.contains("missing.json: tables[0].dataset: no table spec for dataset 'nope'"),
        "{t}"
    );
    // A hostile column name never reaches a target: the table spec itself is refused.
    let spec = dir.path().join("bad_column.json");
    let text_of =
        std::fs::read_to_string(sluice_testkit::repo_root().join("config/tables/credit.json"))
            .unwrap();
    std::fs::write(
        &spec,
        text_of.replace("\"name\": \"age\"", "\"name\": \"age`; drop table x; --\""),
    )
    .unwrap();
    let out = sluice(&["spec", "check", path(&spec)], &[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("columns[3].name"), "{}", text(&out));
}

#[test]
fn load_without_the_connection_says_which_variable_and_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = sluice(
        &[
            "load",
            "--target",
            "app_postgres",
            "--input",
            path(dir.path()),
        ],
        &[],
    );
    let t = text(&out);
    assert!(!out.status.success());
    assert!(t.contains("target app_postgres: set SLUICE_TARGET_APP_POSTGRES to the JSON of secret sluice/dev/app-postgres"), "{t}");
}

/// The rows of one `INSERT INTO <table> (…) VALUES (…), (…);` of a SQL script, as text.
fn insert_rows(script: &str, table: &str) -> Vec<Vec<String>> {
    let at = script
        .find(&format!("INSERT INTO {table} "))
        .unwrap_or_else(|| panic!("no INSERT INTO {table}"));
    let body = &script[at..];
    let body = &body[body.find("VALUES").unwrap() + 6..];
    let (mut rows, mut depth, mut start, mut in_str) = (Vec::new(), 0, 0, false);
    for (i, ch) in body.char_indices() {
        match ch {
            '\'' => in_str = !in_str,
            '(' if !in_str => {
                depth += 1;
                if depth == 1 {
                    start = i + 1;
                }
            }
            ')' if !in_str => {
                depth -= 1;
                if depth == 0 {
                    rows.push(sluice_testkit::sql_values(&body[start..i]));
                }
            }
            ';' if !in_str && depth == 0 => break,
            _ => {}
        }
    }
    rows
}

/// One file as DMS writes it: no header, `Op`, the commit time, then the row (NULL empty).
fn dms_file(path: &Path, lines: &[(&str, &str, Vec<String>)]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut w = csv::WriterBuilder::new().from_path(path).unwrap();
    for (op, ts, row) in lines {
        let mut rec = vec![op.to_string(), ts.to_string()];
        rec.extend(row.iter().cloned());
        w.write_record(&rec).unwrap();
    }
    w.flush().unwrap();
}

/// Aspen's legacy payment schedule end to end: the two SQL Server tables of init.sql as DMS
/// would deliver them (a full load, then changes: a second projection, an insert, an update and
/// a delete of actuals), ingested as change logs, each projection's XML rowset exploded by the
/// aspen_legacy model, and all of it loaded: the change logs mirrored (apply_changes), the
/// schedule lines replaced, on both engines; the counts checked against the XML itself.
#[cfg_attr(
    not(sluice_shared),
    ignore = "needs ../shared (absent when this was built)"
)]
#[test]
fn the_legacy_payment_schedule_lands_with_its_rowset_exploded() {
    let init = std::fs::read_to_string(sluice_testkit::repo_root().join(
        "../shared/seed-data/aspencapital-candidate-project-data-engineer/legacy-2020-payment-schedule/init.sql",
    ))
    .unwrap();
    let projections = insert_rows(&init, "Projections");
    let actuals = insert_rows(&init, "Actuals");
    assert_eq!((projections.len(), actuals.len()), (1, 7));
    let xml1 = projections[0][1].clone();
    // A second projection a year later: the same schedule, the insurance renamed.
    let xml2 = xml1.replace(
        "Description=\"Insurance\"",
        "Description=\"Hazard insurance\"",
    );
    let rows_of = |xml: &str| xml.matches("<z:row ").count();
    // DATETIME2 as DMS writes it: seven fraction digits.
    let datetime2 = |d: &str| format!("{d} 00:00:00.0000000");
    let dir = tempfile::tempdir().unwrap();
    let (raw, lake) = (dir.path().join("raw"), dir.path().join("lake"));
    let full = "2026-11-30 03:00:00.000000";
    let p_load = raw.join("dms/dbo/Projections/LOAD00000001.csv");
    dms_file(
        &p_load,
        &[(
            "I",
            full,
            vec!["1".into(), datetime2(&projections[0][0]), xml1.clone()],
        )],
    );
    let a_load = raw.join("dms/dbo/Actuals/LOAD00000001.csv");
    let full_actuals: Vec<(&str, &str, Vec<String>)> = actuals
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let (amount, memo, date, p) = (&a[0], &a[1], &a[2], &a[3]);
            let row = vec![
                (i + 1).to_string(),
                amount.clone(),
                memo.clone(),
                datetime2(date),
                p.clone(),
            ];
            ("I", full, row)
        })
        .collect();
    dms_file(&a_load, &full_actuals);
    let p_cdc = raw.join("dms/dbo/Projections/2026/11/30/20261130-0400000000.csv");
    dms_file(
        &p_cdc,
        &[(
            "I",
            "2026-11-30 04:00:01.000000",
            vec![
                "2".into(),
                "2020-04-01 00:00:00.0000000".into(),
                xml2.clone(),
            ],
        )],
    );
    let a_cdc = raw.join("dms/dbo/Actuals/2026/11/30/20261130-0400000000.csv");
    let row = |id: &str, amount: &str, memo: &str, date: &str, p: &str| {
        vec![
            id.into(),
            amount.into(),
            memo.into(),
            datetime2(date),
            p.into(),
        ]
    };
    dms_file(
        &a_cdc,
        &[
            (
                "I",
                "2026-11-30 04:00:02.000000",
                row("8", "-2.10", "Insurance", "2019-09-01", "1"),
            ),
            (
                "U",
                "2026-11-30 04:00:03.000000",
                row("2", "-2.30", "Insurance, corrected", "2019-05-01", "1"),
            ),
            (
                "D",
                "2026-11-30 04:00:04.000000",
                row("6", "-9.38", "Insurance", "2019-08-01", "1"),
            ),
            (
                "I",
                "2026-11-30 04:00:05.000000",
                row("9", "-2.50", "Hazard insurance", "2020-04-01", "2"),
            ),
        ],
    );
    for (file, dataset) in [
        (&p_load, "aspen_legacy_projections"),
        (&a_load, "aspen_legacy_actuals"),
        (&p_cdc, "aspen_legacy_projections"),
        (&a_cdc, "aspen_legacy_actuals"),
    ] {
        let key = file.strip_prefix(&raw).unwrap().to_str().unwrap();
        let text = ok(sluice(
            &[
                "ingest",
                path(file),
                "--spec",
                &format!("config/tables/{dataset}.json"),
                "--out",
                path(&lake),
                "--key",
                key,
            ],
            &[],
        ));
        assert!(text.contains("quarantined  0"), "{key}:\n{text}");
    }
    let report: serde_json::Value = serde_json::from_str(&ok(sluice(
        &[
            "normalize",
            "--model",
            "aspen_legacy",
            "--input",
            path(&lake),
            "--out",
            path(&lake),
            "--as-of",
            "2026-11-30 05:00:00",
            "--json",
        ],
        &[],
    )))
    .unwrap();
    let lines = rows_of(&xml1) + rows_of(&xml2);
    let t = &report["tables"][0];
    assert_eq!(
        (t["rows_written"].as_u64(), t["rows_quarantined"].as_u64()),
        (Some(lines as u64), Some(0)),
        "{report}"
    );
    // The rowset's typed values, read back by pyarrow: the starting balance has no month.
    let files: Vec<std::path::PathBuf> =
        std::fs::read_dir(lake.join("data/aspen_legacy_schedule_line"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
    let data = sluice_testkit::read_parquet(&files);
    let first = data["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["projection_id"] == 1 && r["position"] == 1)
        .cloned()
        .unwrap();
    assert_eq!(first["description"], "Starting Balance", "{first}");
    assert!(first["month_year"].is_null(), "{first}");

    for engine in ["postgres", "mysql"] {
        let creds = sluice_testkit::fresh_database(engine, "legacy");
        let target = dir.path().join(format!("legacy_{engine}.json"));
        std::fs::write(
            &target,
            format!(
                r#"{{"target":"legacy","engine":"{engine}","connection":{{"secret":"sluice/test/legacy","tls":"disable"}},
                   "tables":[{{"dataset":"aspen_legacy_projections","table":"projections","mode":"apply_changes"}},
                             {{"dataset":"aspen_legacy_actuals","table":"actuals","mode":"apply_changes"}},
                             {{"model":"aspen_legacy","mode":"replace"}}]}}"#
            ),
        )
        .unwrap();
        ok(sluice(
            &["load", "--target", path(&target), "--input", path(&lake)],
            &[("SLUICE_TARGET_LEGACY", creds.to_string())],
        ));
        let q = |s: &str| sql(engine, &creds, s).unwrap();
        assert_eq!(q("SELECT count(*) FROM projections"), "2", "{engine}");
        assert_eq!(
            q("SELECT count(*) FROM schedule_line"),
            lines.to_string(),
            "{engine}"
        );
        // Actuals: 7 loaded, one inserted, one updated, one deleted, one for projection 2.
        let ids = match engine {
            "postgres" => {
                q("SELECT string_agg(actual_id::text, ',' ORDER BY actual_id) FROM actuals")
            }
            _ => q("SELECT GROUP_CONCAT(actual_id ORDER BY actual_id) FROM actuals"),
        };
        assert_eq!(ids, "1,2,3,4,5,7,8,9", "{engine}");
        let two = q("SELECT memo FROM actuals WHERE actual_id = 2");
        assert_eq!(two, "Insurance, corrected", "{engine}");
        let hazard = q(
            "SELECT count(*) FROM schedule_line WHERE projection_id = 2 AND description = 'Hazard insurance'",
        );
        assert_eq!(
            hazard,
            xml2.matches("Hazard insurance").count().to_string(),
            "{engine}"
        );
    }
}
