//! `sluice ingest` then `sluice normalize` on the Aspen workbook, as a data engineer runs them,
//! and `sluice spec check` on models. The seed tests show as ignored where ../shared is absent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(sluice_testkit::repo_root())
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{text}");
    text
}

/// The Aspen workbook of the seed data; its tests are ignored where `../shared` is absent.
fn workbook() -> String {
    let p = sluice_testkit::repo_root()
        .join("../shared/seed-data/aspencapital-candidate-project-data-engineer/data_engineer_raw_data.xlsx");
    assert!(p.exists(), "{} is absent", p.display());
    p.display().to_string()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[cfg_attr(
    not(sluice_shared),
    ignore = "needs ../shared (absent when this was built)"
)]
#[test]
fn ingest_then_normalize_the_aspen_workbook() {
    let xlsx = workbook();
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    for spec in ["aspen_borrower", "aspen_role_profile"] {
        ok(sluice(&[
            "ingest",
            &xlsx,
            "--spec",
            &format!("config/tables/{spec}.json"),
            "--out",
            path(&lake),
        ]));
    }
    let out = dir.path().join("model");
    let summary = ok(sluice(&[
        "normalize",
        "--model",
        "aspen",
        "--input",
        path(&lake),
        "--out",
        path(&out),
    ]));
    for line in [
        "user_profile           written    1000  quarantined     0",
        "phone_number           written    1461  quarantined     0  absent 539",
        "email                  written     683  quarantined     0  absent 317",
    ] {
        assert!(summary.contains(line), "{line:?} not in:\n{summary}");
    }
    let file = out.join("data/aspen_model_email/aspen_model_email.parquet");
    let first = std::fs::read(&file).unwrap();
    assert!(!out.join(".staging-normalize-aspen").exists());

    // Again, as JSON, with the model given as a file: the same bytes (the default `created`
    // is when the newest input was written, and the inputs did not change).
    let json = ok(sluice(&[
        "normalize",
        "--model",
        "config/models/aspen.json",
        "--input",
        path(&lake),
        "--out",
        path(&out),
        "--json",
    ]));
    let report: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(report["tables"].as_array().unwrap().len(), 9);
    assert_eq!(report["tables"][6]["rows_written"], 1461);
    assert_eq!(std::fs::read(&file).unwrap(), first);

    // Without the curated data: one clear line, nothing written.
    let empty = dir.path().join("empty");
    let o = sluice(&[
        "normalize",
        "--model",
        "aspen",
        "--input",
        path(&empty),
        "--out",
        path(&dir.path().join("nothing")),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no Parquet files of dataset aspen_borrower"),
        "{err}"
    );
}

#[test]
fn spec_check_reads_models_and_refuses_a_lake_name_taken_by_a_dataset() {
    let text = ok(sluice(&[
        "spec",
        "check",
        "config/tables/aspen_borrower.json",
        "config/tables/aspen_role_profile.json",
        "config/models/aspen.json",
    ]));
    assert!(
        text.contains("ok  config/models/aspen.json (model aspen, 9 tables)"),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let model =
        std::fs::read_to_string(sluice_testkit::repo_root().join("config/models/aspen.json"))
            .unwrap()
            .replace(
                "\"lake_prefix\": \"aspen_model_\"",
                "\"lake_prefix\": \"aspen_\"",
            );
    let bad = dir.path().join("aspen.json");
    std::fs::write(&bad, model).unwrap();
    let o = sluice(&[
        "spec",
        "check",
        "config/tables/aspen_role_profile.json",
        path(&bad),
    ]);
    assert!(!o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("lake table 'aspen_role_profile' is also a dataset's name"),
        "{out}"
    );
}
