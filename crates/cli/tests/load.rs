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
    let servers = sluice_testkit::local_db();
    for (engine, mut creds) in [("postgres", servers.postgres), ("mysql", servers.mysql)] {
        let db = sluice_testkit::unique("aspen").replace('-', "_");
        sql(engine, &creds, &format!("CREATE DATABASE {db}")).unwrap();
        creds["dbname"] = db.into();
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
