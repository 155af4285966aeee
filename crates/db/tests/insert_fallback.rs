//! A MySQL server that refuses LOCAL INFILE: the load falls back to batched INSERTs, says so,
//! and loads the same rows. Its own test binary: it turns `local_infile` off for the whole
//! (private, local) server while it runs, and test binaries run one after another.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use sluice_core::target::Engine;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_refusing_local_infile_gets_batched_inserts_and_the_same_rows() {
    let engine = Engine::Mysql;
    let creds = fresh_db(engine).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = credit_spec();
    ingest(dir.path(), &spec, &hour_key(0), &credit_csv(1, 1_234, 0));
    let t = target(engine, "append_by_file");
    let tables = plan(&t, &spec);
    admin_exec(engine, &creds, "SET GLOBAL local_infile = 0").await;
    let r = load(&t, &tables, &creds, dir.path(), &quick()).await;
    admin_exec(engine, &creds, "SET GLOBAL local_infile = 1").await;
    let r = r.unwrap();
    assert!(
        r.method
            .starts_with("batched INSERT (the server refuses LOCAL INFILE"),
        "{}",
        r.method
    );
    assert_eq!(
        (r.tables[0].rows_loaded, r.tables[0].database_rows),
        (1_234, 1_234)
    );
    assert!(r.tables[0].reconciled);
    assert_eq!(
        count(
            engine,
            &creds,
            "SELECT count(*) FROM credit WHERE monthly_income IS NULL"
        )
        .await,
        176
    );
}
