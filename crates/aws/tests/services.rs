//! SSM, Glue and SNS adapters against the emulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use aws_sdk_ssm::types::ParameterType;
use sluice_aws::glue::GlueCatalog;
use sluice_aws::sns::SnsNotifier;
use sluice_aws::ssm::SsmSettings;
use sluice_core::ports::{Catalog, Notifier, Settings, TableChange};

#[tokio::test]
async fn settings_are_read_again_after_their_ttl_and_errors_are_never_defaults() {
    let (clients, names) = common::environment(&[]).await;
    let settings = SsmSettings::new(clients.ssm.clone(), &names.settings_path)
        .with_ttl(std::time::Duration::ZERO);
    assert_eq!(
        settings.get("lookback_hours").await.unwrap().as_deref(),
        Some("6")
    );
    clients
        .ssm
        .put_parameter()
        .name(format!("{}lookback_hours", names.settings_path))
        .value("12")
        .r#type(ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        settings.get("lookback_hours").await.unwrap().as_deref(),
        Some("12"),
        "a warm container sees the change once the TTL passed"
    );
    assert_eq!(settings.fetches(), 2);
    // SSM unreachable: an error, not "not set" (which would mean: use the default).
    let unreachable = aws_sdk_ssm::Client::from_conf(
        aws_sdk_ssm::config::Builder::from(&clients.config)
            .endpoint_url("http://127.0.0.1:9")
            .build(),
    );
    let broken = SsmSettings::new(unreachable, &names.settings_path);
    assert!(broken.get("lookback_hours").await.is_err());
}

#[tokio::test]
async fn securestring_round_trip_and_cached_second_read() {
    let (clients, names) = common::environment(&[]).await;
    clients
        .ssm
        .put_parameter()
        .name(format!(
            "/sluice-secrets/{}/extract/sftp_password",
            names.env
        ))
        .value("s3cr3t value")
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let settings = SsmSettings::new(clients.ssm.clone(), &names.settings_path)
        .with_secrets(Some(format!("/sluice-secrets/{}/extract/", names.env)));
    assert_eq!(
        settings.get("sftp_password").await.unwrap().as_deref(),
        Some("s3cr3t value")
    );
    assert_eq!(
        settings.get("lookback_hours").await.unwrap().as_deref(),
        Some("6"),
        "bootstrap default"
    );
    assert_eq!(settings.fetches(), 1);

    // Within the TTL a change in SSM is not seen: the second read was served from the cache.
    clients
        .ssm
        .put_parameter()
        .name(format!("{}lookback_hours", names.settings_path))
        .value("12")
        .r#type(ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        settings.get("lookback_hours").await.unwrap().as_deref(),
        Some("6")
    );
    assert_eq!(settings.fetches(), 1, "one read from SSM per TTL");
    let fresh = SsmSettings::new(clients.ssm.clone(), &names.settings_path);
    assert_eq!(
        fresh.get("lookback_hours").await.unwrap().as_deref(),
        Some("12")
    );
}

#[tokio::test]
async fn a_function_reads_its_own_secrets_and_no_other_functions() {
    let (clients, names) = common::environment(&[]).await;
    let root = format!("/sluice-secrets/{}/", names.env);
    let put = |name: String, value: &'static str| {
        let ssm = clients.ssm.clone();
        async move {
            ssm.put_parameter()
                .name(name)
                .value(value)
                .r#type(ParameterType::SecureString)
                .overwrite(true)
                .send()
                .await
                .unwrap();
        }
    };
    put(format!("{root}extract/sftp_password"), "extract's secret").await;
    put(format!("{root}ingest/api_token"), "ingest's secret").await;
    let of = |function: Option<&str>| {
        SsmSettings::new(clients.ssm.clone(), &names.settings_path)
            .with_secrets(function.map(|f| format!("{root}{f}/")))
    };
    let extract = of(Some("extract")).all().await.unwrap();
    assert_eq!(
        extract.get("sftp_password").map(String::as_str),
        Some("extract's secret")
    );
    assert!(
        !extract.contains_key("api_token"),
        "another function's secret"
    );
    assert_eq!(
        extract.get("lookback_hours").map(String::as_str),
        Some("6"),
        "shared settings too"
    );
    let ingest = of(Some("ingest")).all().await.unwrap();
    assert_eq!(
        ingest.get("api_token").map(String::as_str),
        Some("ingest's secret")
    );
    assert!(!ingest.contains_key("sftp_password"));
    // No secrets path (the CLI): shared settings only; the secrets are not under them.
    let shared = of(None).all().await.unwrap();
    assert!(
        shared.values().all(|v| !v.ends_with("'s secret")),
        "{shared:?}"
    );
    // A secret named like a shared setting is refused, never silently preferred.
    put(format!("{root}notify/lookback_hours"), "shadow").await;
    let e = of(Some("notify")).all().await.unwrap_err();
    assert!(e.message.contains("has the name of the setting"), "{e}");
}

#[tokio::test]
async fn a_table_from_a_spec_reads_back_with_its_types_and_partition_keys() {
    let specs = common::repo_specs();
    let (clients, names) = common::environment(&specs).await;
    let (loans, _) = specs.iter().find(|(s, _)| s.dataset == "loans").unwrap();
    let table = clients
        .glue
        .get_table()
        .database_name(&names.glue_database)
        .name("loans")
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let sd = table.storage_descriptor().unwrap();
    let got: Vec<(String, String)> = sd
        .columns()
        .iter()
        .map(|c| (c.name().to_owned(), c.r#type().unwrap_or("").to_owned()))
        .collect();
    let want: Vec<(String, String)> = loans
        .columns
        .iter()
        .map(|c| (c.name.clone(), c.ty.to_string()))
        .collect();
    assert_eq!(got, want);
    assert!(
        got.iter().any(|(_, t)| t.starts_with("decimal(")),
        "{got:?}"
    );
    let keys: Vec<&str> = table.partition_keys().iter().map(|c| c.name()).collect();
    assert_eq!(keys, ["year", "month"]);
    assert_eq!(sd.location(), Some(names.table_location("loans").as_str()));
    assert_eq!(
        sd.serde_info().and_then(|s| s.serialization_library()),
        Some("org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe")
    );

    // A new nullable column in the spec is appended; the rest stay as they are.
    let catalog = GlueCatalog::new(clients.glue.clone());
    let mut wider = loans.clone();
    let mut extra = wider.columns[0].clone();
    extra.name = "branch_code".into();
    extra.source = Some("Branch Code".into());
    extra.nullable = true;
    wider.columns.push(extra);
    let location = names.table_location("loans");
    assert_eq!(
        catalog
            .ensure_table(&names.glue_database, &wider, &location)
            .await
            .unwrap(),
        TableChange::ColumnsAdded {
            columns: vec!["branch_code".into()]
        }
    );
    assert_eq!(
        catalog
            .ensure_table(&names.glue_database, &wider, &location)
            .await
            .unwrap(),
        TableChange::Unchanged
    );
}

async fn glue_table(
    glue: &aws_sdk_glue::Client,
    db: &str,
    name: &str,
) -> aws_sdk_glue::types::Table {
    glue.get_table()
        .database_name(db)
        .name(name)
        .send()
        .await
        .unwrap()
        .table
        .unwrap()
}

/// A change log's table comes with its current-state view, as Athena reads Glue views: a
/// VIRTUAL_VIEW whose original text carries the Trino definition.
#[tokio::test]
async fn a_change_log_gets_its_current_state_view() {
    let (clients, names) = common::environment(&[]).await;
    let catalog = GlueCatalog::new(clients.glue.clone());
    let def = r#"{"TableCount": "1", "Tables": [{"TableName": "payment", "TablePath": "legacy/payment/",
        "TableColumns": [{"ColumnName": "id", "ColumnType": "INT8", "ColumnIsPk": "true"},
                         {"ColumnName": "amount", "ColumnType": "NUMERIC", "ColumnPrecision": "12", "ColumnScale": "2"}]}]}"#;
    let opts = sluice_core::dms::ImportOptions {
        change_log: true,
        ..Default::default()
    };
    let spec = sluice_core::dms::import("def.json", def, &opts)
        .unwrap()
        .remove(0);
    let location = names.table_location("payment");
    catalog.ensure_database(&names.glue_database).await.unwrap();
    catalog
        .ensure_table(&names.glue_database, &spec, &location)
        .await
        .unwrap();
    let view = glue_table(&clients.glue, &names.glue_database, "payment_current").await;
    assert_eq!(view.table_type(), Some("VIRTUAL_VIEW"));
    let text = view.view_original_text().unwrap();
    let encoded = text
        .strip_prefix("/* Presto View: ")
        .and_then(|t| t.strip_suffix(" */"))
        .unwrap();
    let decoded = aws_smithy_types::base64::decode(encoded).unwrap();
    let definition: serde_json::Value = serde_json::from_slice(&decoded).unwrap();
    let sql = definition["originalSql"].as_str().unwrap();
    assert!(
        sql.contains("PARTITION BY \"id\"") && sql.contains("\"op\" <> 'D'"),
        "{sql}"
    );
    let columns: Vec<&str> = definition["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["dms_commit_ts", "id", "amount"]);
    // Ensuring again (a new column in the spec) replaces the view, it does not fail.
    let mut wider = spec.clone();
    let mut note = wider.columns[3].clone();
    note.name = "note".into();
    note.source = None;
    note.nullable = true;
    wider.columns.push(note);
    catalog
        .ensure_table(&names.glue_database, &wider, &location)
        .await
        .unwrap();
    let view = glue_table(&clients.glue, &names.glue_database, "payment_current").await;
    let cols = view.storage_descriptor().unwrap().columns().len();
    assert_eq!(cols, 4);
}

#[tokio::test]
async fn partitions_added_twice_are_not_duplicated() {
    let specs = common::repo_specs();
    let (clients, names) = common::environment(&specs).await;
    let catalog = GlueCatalog::new(clients.glue.clone());
    let location = names.table_location("loans");
    // 150 partitions: more than one BatchCreatePartition call.
    let parts: Vec<Vec<(String, String)>> = (0..150)
        .map(|i| {
            vec![
                ("year".to_owned(), format!("{}", 2000 + i / 12)),
                ("month".to_owned(), format!("{:02}", i % 12 + 1)),
            ]
        })
        .collect();
    assert_eq!(
        catalog
            .add_partitions(&names.glue_database, "loans", &location, &parts)
            .await
            .unwrap(),
        150
    );
    assert_eq!(
        catalog
            .add_partitions(&names.glue_database, "loans", &location, &parts)
            .await
            .unwrap(),
        0
    );
    let mut pages = clients
        .glue
        .get_partitions()
        .database_name(&names.glue_database)
        .table_name("loans")
        .into_paginator()
        .send();
    let mut seen = Vec::new();
    while let Some(page) = pages.next().await {
        for p in page.unwrap().partitions() {
            seen.push((
                p.values().to_vec(),
                p.storage_descriptor()
                    .and_then(|s| s.location())
                    .unwrap_or("")
                    .to_owned(),
            ));
        }
    }
    assert_eq!(seen.len(), 150);
    let jan = seen.iter().find(|(v, _)| v == &["2003", "01"]).unwrap();
    assert_eq!(jan.1, format!("{location}year=2003/month=01/"));
}

#[tokio::test]
async fn a_published_message_can_be_read_back() {
    let (clients, names) = common::environment(&[]).await;
    let notifier = SnsNotifier::by_name(clients.sns.clone(), &names.topic_name)
        .await
        .unwrap();
    let inbox = sluice_testkit::sns_inbox(&clients.config, notifier.topic_arn()).await;

    let body = serde_json::json!({"execution": "arn:aws:states:us-east-1:123456789012:execution:ingest:run-1", "failed": 1});
    let id = notifier
        .publish("Sluice: 1 file failed", &body, "1 file failed")
        .await
        .unwrap();
    assert!(!id.is_empty());

    let (subject, message) = sluice_testkit::next_message(&clients.config, &inbox).await;
    assert_eq!(subject, "Sluice: 1 file failed");
    // A queue subscriber gets the JSON, not the e-mail text.
    assert_eq!(message, body);
}
