//! The sync loop with AWS DMS's files, on real servers (`scripts/local-db`), both engines: a
//! source table changes (inserts, updates, a row updated twice, deletes, a key deleted and
//! inserted again); the full-load and CDC files DMS would write for it (no header line, `Op`
//! first, then the commit timestamp) go through the normal ingest into the lake, and the
//! `apply_changes` load makes the datastore's table equal to the source table, checked by a
//! query on both sides. Bad change files are refused whole.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::*;
use sluice_core::target::{Engine, TargetSpec};
use sluice_core::{IngestOptions, Source, TableSpec};

fn payments_spec() -> TableSpec {
    TableSpec::from_json(
        "payments.json",
        r#"{"dataset": "payments",
            "source": {"prefix": "dms/legacy/payments/", "pattern": "**/*.csv", "header_row": 0},
            "columns": [{"name": "op", "source": "Op", "type": "string", "nullable": false},
                        {"name": "commit_ts", "type": "timestamp", "nullable": false},
                        {"name": "id", "type": "bigint", "nullable": false},
                        {"name": "amount", "type": "decimal(12,2)"},
                        {"name": "status", "type": "string"}],
            "primary_key": ["id"],
            "change_log": {"op_column": "op", "commit_column": "commit_ts"}}"#,
    )
    .unwrap()
}

fn apply_target(engine: Engine) -> TargetSpec {
    TargetSpec::from_json(
        "app.json",
        &format!(
            r#"{{"target":"app","engine":"{engine}","connection":{{"secret":"sluice/test/app","tls":"disable"}},
               "tables":[{{"dataset":"payments","mode":"apply_changes"}}]}}"#
        ),
    )
    .unwrap()
}

/// The source table and a model of it, changed together; every change is also a DMS line.
struct Legacy {
    engine: Engine,
    creds: serde_json::Value,
    rows: BTreeMap<i64, (String, String)>,
    lines: Vec<String>,
    clock: u32,
}

impl Legacy {
    fn line(&mut self, op: &str, id: i64, amount: &str, status: &str) {
        self.clock += 1;
        let ts = format!(
            "2026-11-30 04:{:02}:{:02}.000000",
            self.clock / 60,
            self.clock % 60
        );
        let status = if status.contains(',') {
            format!("\"{status}\"")
        } else {
            status.to_owned()
        };
        self.lines.push(format!("{op},{ts},{id},{amount},{status}"));
    }

    async fn upsert(&mut self, id: i64, amount: &str, status: &str) {
        let (op, sql) = if self.rows.contains_key(&id) {
            (
                "U",
                format!(
                    "UPDATE payments SET amount = {amount}, status = '{status}' WHERE id = {id}"
                ),
            )
        } else {
            (
                "I",
                format!(
                    "INSERT INTO payments (id, amount, status) VALUES ({id}, {amount}, '{status}')"
                ),
            )
        };
        admin_exec(self.engine, &self.creds, &sql).await;
        self.rows.insert(id, (amount.into(), status.into()));
        self.line(op, id, amount, status);
    }

    async fn delete(&mut self, id: i64) {
        admin_exec(
            self.engine,
            &self.creds,
            &format!("DELETE FROM payments WHERE id = {id}"),
        )
        .await;
        // DMS writes a delete with the row's last values.
        let (amount, status) = self.rows.remove(&id).unwrap();
        self.line("D", id, &amount, &status);
    }

    /// The lines since the last file, as one file's text.
    fn file(&mut self) -> String {
        let mut text = self.lines.join("\n");
        text.push('\n');
        self.lines.clear();
        text
    }
}

/// `id|amount|status` of every row, from a query on the server.
async fn rows_of(engine: Engine, creds: &serde_json::Value) -> Vec<String> {
    let sql = match engine {
        Engine::Postgres => "SELECT string_agg(id || '|' || amount || '|' || coalesce(status, '~'), ';' ORDER BY id) FROM payments",
        Engine::Mysql => "SELECT GROUP_CONCAT(CONCAT(id, '|', amount, '|', coalesce(status, '~')) ORDER BY id SEPARATOR ';') FROM payments",
    };
    peek(engine, creds, sql)
        .await
        .unwrap()
        .split(';')
        .map(str::to_owned)
        .collect()
}

fn ingest_change_file(lake: &std::path::Path, spec: &TableSpec, key: &str, text: &str) {
    ingest(lake, spec, key, text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_datastore_mirrors_the_source_table_through_dms_files() {
    for engine in [Engine::Postgres, Engine::Mysql] {
        let source = fresh_db(engine).await;
        admin_exec(
            engine,
            &source,
            "CREATE TABLE payments (id bigint PRIMARY KEY, amount decimal(12,2), status varchar(40))",
        )
        .await;
        let mut src = Legacy {
            engine,
            creds: source.clone(),
            rows: BTreeMap::new(),
            lines: Vec::new(),
            clock: 0,
        };
        for id in 1..=20 {
            src.upsert(id, &format!("{id}.50"), "scheduled").await;
        }
        let spec = payments_spec();
        let lake = tempfile::tempdir().unwrap();
        // The full load (IncludeOpForFullLoad: every line an I).
        let full = src.file();
        ingest_change_file(
            lake.path(),
            &spec,
            "dms/legacy/payments/LOAD00000001.csv",
            &full,
        );

        let app = fresh_db(engine).await;
        let t = apply_target(engine);
        let tables = t
            .plan("app.json", std::slice::from_ref(&spec), &[])
            .unwrap();
        let r = load(&t, &tables, &app, lake.path(), &quick())
            .await
            .unwrap();
        assert_eq!(r.tables[0].files_loaded, 1, "{engine}: {r:?}");
        assert_eq!(
            rows_of(engine, &app).await,
            rows_of(engine, &source).await,
            "{engine}"
        );

        // CDC, two files: inserts, updates, one row updated twice, deletes, a key deleted and
        // inserted again, a status with a comma.
        src.upsert(21, "21.00", "new").await;
        src.upsert(3, "3.75", "paid").await;
        src.upsert(4, "4.00", "late").await;
        src.upsert(4, "4.10", "paid, late").await;
        src.delete(5).await;
        let cdc1 = src.file();
        src.delete(6).await;
        src.upsert(6, "6.60", "re-opened").await;
        src.upsert(22, "22.00", "new").await;
        src.delete(21).await;
        let cdc2 = src.file();
        // Written out of order on purpose: the load applies them in commit order.
        ingest_change_file(
            lake.path(),
            &spec,
            "dms/legacy/payments/2026/11/30/20261130-0405000000.csv",
            &cdc2,
        );
        ingest_change_file(
            lake.path(),
            &spec,
            "dms/legacy/payments/2026/11/30/20261130-0400000000.csv",
            &cdc1,
        );
        let r = load(&t, &tables, &app, lake.path(), &quick())
            .await
            .unwrap();
        assert_eq!(
            (r.tables[0].files_loaded, r.tables[0].files_unchanged),
            (2, 1),
            "{engine}: {r:?}"
        );
        let want = rows_of(engine, &source).await;
        assert_eq!(want.len(), 20, "{engine}: {want:?}");
        assert_eq!(rows_of(engine, &app).await, want, "{engine}");
        assert!(want.contains(&"4|4.10|paid, late".to_owned()), "{want:?}");
        assert!(!want
            .iter()
            .any(|r| r.starts_with("5|") || r.starts_with("21|")));

        // Loading again changes nothing: every file is in the ledger.
        let again = load(&t, &tables, &app, lake.path(), &quick())
            .await
            .unwrap();
        assert_eq!(again.tables[0].files_loaded, 0, "{engine}: {again:?}");
        assert_eq!(rows_of(engine, &app).await, want, "{engine}");
    }
}

fn try_ingest(spec: &TableSpec, key: &str, text: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let source = Source {
        object: key.into(),
        key: key.into(),
        version: None,
    };
    sluice_core::ingest(
        spec,
        &source,
        std::io::Cursor::new(text.as_bytes().to_vec()),
        &dir.path().join("out"),
        &IngestOptions::default(),
    )
    .map(|_| ())
    .map_err(|e| {
        let mut s = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            s.push_str(": ");
            s.push_str(&c.to_string());
            cause = c.source();
        }
        s
    })
}

#[test]
fn a_change_file_that_cannot_be_applied_is_refused_whole() {
    let spec = payments_spec();
    let good = "I,2026-11-30 04:00:01.000000,1,1.00,a\n";
    assert_eq!(try_ingest(&spec, "p/ok.csv", good), Ok(()));
    let cases = [
        (
            "I,2026-11-30 04:00:01.000000,1,1.00,a\nX,2026-11-30 04:00:02.000000,2,2.00,b\n",
            "line 2: op: unknown operation 'X' (expected I, U or D)",
        ),
        (
            "I,2026-11-30 04:00:01.000000,,1.00,a\n",
            "line 1: id: NULL in a NOT NULL column",
        ),
        (
            "U,2026-11-30 04:00:01.000000,1,1.00\n",
            "line 1: the row has 4 fields, not 5",
        ),
    ];
    for (text, want) in cases {
        let e = try_ingest(&spec, "p/bad.csv", text).unwrap_err();
        assert!(e.contains(want), "{e}");
        assert!(e.contains("nothing of this file was published"), "{e}");
    }
}

#[test]
fn apply_changes_needs_a_change_log() {
    let spec = credit_spec();
    let t = TargetSpec::from_json(
        "app.json",
        r#"{"target":"app","engine":"postgres","connection":{"secret":"s","tls":"disable"},
           "tables":[{"dataset":"credit","mode":"apply_changes"}]}"#,
    )
    .unwrap();
    let e = t
        .plan("app.json", std::slice::from_ref(&spec), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("apply_changes needs a change log"), "{e}");
}
