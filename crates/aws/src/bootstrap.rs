//! `sluice bootstrap`: creates everything the pipeline needs on the target endpoint and loads
//! the table specs. Each step looks before it creates, so a second run changes nothing.
//! Settings already present are left alone: an operator's change is never overwritten.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration,
    VersioningConfiguration,
};
use serde::Serialize;
use sluice_core::model::ModelSpec;
use sluice_core::ports::{
    Catalog, ObjectStore, PortError, PortResult, SpecChange, SpecStore, TableChange,
};
use sluice_core::TableSpec;

use crate::dynamo::{DynamoSpecs, BATCH_INDEX, EXPIRES_AT, OPEN_STATUS, STATUS_INDEX};
use crate::error::{code_of, port_error};
use crate::glue::GlueCatalog;
use crate::s3::S3Store;
use crate::{sns, Clients, Names};

/// Settings written when absent: (name under the settings path, value, what it does).
pub const DEFAULT_SETTINGS: &[(&str, &str, &str)] = &[
    (
        "lookback_hours",
        "6",
        "hours before the watermark re-listed for late files",
    ),
    (
        "lease_seconds",
        "1800",
        "pipeline lock lease (at least 960: the longest function timeout plus retry backoff); renewed while ingest works",
    ),
    (
        "max_file_bytes",
        "10737418240",
        "raw objects larger than this are refused as Sluice.BadFile (read as they download, never spooled to /tmp)",
    ),
    (
        "max_workbook_bytes",
        "1073741824",
        "workbooks larger than this are refused as Sluice.BadFile (ingest's /tmp holds the workbook and its outputs)",
    ),
    (
        "output_roll_rows",
        "5000000",
        "rows a partition's output file holds before it rolls; a closed file leaves ingest's /tmp at once",
    ),
    (
        "work_retention_days",
        "400",
        "days a done work item is kept (DynamoDB TTL); the reconciliation lists no older object",
    ),
    (
        "reconcile_batch",
        "50000",
        "objects one reconciliation run checks against the work table",
    ),
    (
        "ingest_max_concurrency",
        "4",
        "items ingested at once by the distributed Map (its MaxConcurrency)",
    ),
    (
        "notify_on_quarantine",
        "true",
        "notify when rows were quarantined even if nothing failed",
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Created,
    Updated,
    Unchanged,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub resource: String,
    pub change: Change,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct BootstrapReport {
    pub steps: Vec<Step>,
}

impl BootstrapReport {
    fn push(&mut self, resource: String, change: Change, detail: Option<String>) {
        self.steps.push(Step {
            resource,
            change,
            detail,
        });
    }

    pub fn changed(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| s.change != Change::Unchanged)
            .count()
    }
}

pub async fn bootstrap(
    clients: &Clients,
    names: &Names,
    specs: &[(TableSpec, String)],
    models: &[(ModelSpec, String)],
) -> PortResult<BootstrapReport> {
    let datasets: Vec<&str> = specs.iter().map(|(s, _)| s.dataset.as_str()).collect();
    for (m, _) in models {
        m.check_against(&datasets)
            .map_err(|e| PortError::permanent("bootstrap", e.to_string()))?;
    }
    let mut report = BootstrapReport::default();
    for bucket in [
        &names.raw_bucket,
        &names.lake_bucket,
        &names.extracts_bucket,
    ] {
        let change = ensure_bucket(clients, bucket).await?;
        report.push(format!("s3 bucket {bucket}"), change, None);
        if bucket == &names.raw_bucket {
            // Raw objects are kept in every version: an overwritten upload is still there to audit.
            let change = ensure_versioning(clients, bucket, change == Change::Created).await?;
            report.push(format!("s3 versioning {bucket}"), change, None);
        }
    }

    for (table, key, indexes) in [
        (&names.specs_table, "dataset", false),
        (&names.work_table, "id", true),
        (&names.locks_table, "name", false),
    ] {
        let change = ensure_dynamo_table(clients, table, key, indexes).await?;
        report.push(format!("dynamodb table {table}"), change, None);
    }

    for (name, value, description) in DEFAULT_SETTINGS {
        let full = format!("{}{name}", names.settings_path);
        let change = ensure_parameter(clients, &full, value, description).await?;
        report.push(format!("ssm parameter {full}"), change, None);
    }

    let change = match sns::find_topic(&clients.sns, &names.topic_name).await? {
        Some(_) => Change::Unchanged,
        None => {
            clients
                .sns
                .create_topic()
                .name(&names.topic_name)
                .send()
                .await
                .map_err(|e| port_error("sns:CreateTopic", e))?;
            Change::Created
        }
    };
    report.push(format!("sns topic {}", names.topic_name), change, None);

    let catalog = GlueCatalog::new(clients.glue.clone());
    let created = catalog.ensure_database(&names.glue_database).await?;
    report.push(
        format!("glue database {}", names.glue_database),
        if created {
            Change::Created
        } else {
            Change::Unchanged
        },
        None,
    );
    let store = DynamoSpecs::new(clients.dynamodb.clone(), &names.specs_table);
    for (spec, document) in specs {
        let location = names.table_location(&spec.dataset);
        let (change, detail) = match catalog
            .ensure_table(&names.glue_database, spec, &location)
            .await?
        {
            TableChange::Created => (Change::Created, None),
            TableChange::ColumnsAdded { columns } => (
                Change::Updated,
                Some(format!("added {}", columns.join(", "))),
            ),
            TableChange::Unchanged => (Change::Unchanged, None),
        };
        report.push(
            format!("glue table {}.{}", names.glue_database, spec.dataset),
            change,
            detail,
        );
        let change = match store.put_spec(spec, document).await? {
            SpecChange::Created => Change::Created,
            SpecChange::Updated => Change::Updated,
            SpecChange::Unchanged => Change::Unchanged,
        };
        report.push(format!("table spec {}", spec.dataset), change, None);
    }
    // Models: the document where the normalize function reads it, and a Glue table per
    // target table.
    let store = S3Store::new(clients.s3.clone());
    for (model, document) in models {
        let key = format!("config/models/{}.json", model.model);
        let change = match store.get_bytes(&names.lake_bucket, &key).await? {
            Some(b) if b == document.as_bytes() => Change::Unchanged,
            Some(_) => Change::Updated,
            None => Change::Created,
        };
        if change != Change::Unchanged {
            store
                .put_bytes(&names.lake_bucket, &key, document.as_bytes().to_vec())
                .await?;
        }
        report.push(
            format!("model s3://{}/{key}", names.lake_bucket),
            change,
            None,
        );
        for t in &model.tables {
            let spec = model.lake_spec(t);
            let location = names.table_location(&spec.dataset);
            let change = match catalog
                .ensure_table(&names.glue_database, &spec, &location)
                .await?
            {
                TableChange::Created => Change::Created,
                TableChange::ColumnsAdded { .. } => Change::Updated,
                TableChange::Unchanged => Change::Unchanged,
            };
            report.push(
                format!("glue table {}.{}", names.glue_database, spec.dataset),
                change,
                None,
            );
        }
    }
    Ok(report)
}

async fn ensure_bucket(clients: &Clients, bucket: &str) -> PortResult<Change> {
    match clients.s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => return Ok(Change::Unchanged),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {}
        Err(e) => return Err(port_error("s3:HeadBucket", e)),
    }
    let mut req = clients.s3.create_bucket().bucket(bucket);
    let region = clients.config.region().map(|r| r.as_ref().to_owned());
    if let Some(region) = region.filter(|r| r != "us-east-1") {
        req = req.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region.as_str()))
                .build(),
        );
    }
    match req.send().await {
        Ok(_) => Ok(Change::Created),
        Err(e) if code_of(&e) == Some("BucketAlreadyOwnedByYou") => Ok(Change::Unchanged),
        Err(e) => Err(port_error("s3:CreateBucket", e)),
    }
}

async fn ensure_versioning(
    clients: &Clients,
    bucket: &str,
    new_bucket: bool,
) -> PortResult<Change> {
    if new_bucket {
        enable_versioning(clients, bucket).await?;
        return Ok(Change::Created);
    }
    match clients
        .s3
        .get_bucket_versioning()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(current) if current.status() == Some(&BucketVersioningStatus::Enabled) => {
            return Ok(Change::Unchanged)
        }
        Ok(_) => {}
        // The emulator (moto 5.2.5) answers GetBucketVersioning with a document the SDK cannot
        // parse (a 200 whose root is not VersioningConfiguration). Enabling is idempotent, so
        // send it again rather than fail; AWS itself answers properly.
        Err(e) if code_of(&e).is_none() && crate::error::status_of(&e) == Some(200) => {
            enable_versioning(clients, bucket).await?;
            return Ok(Change::Unchanged);
        }
        Err(e) => return Err(port_error("s3:GetBucketVersioning", e)),
    }
    enable_versioning(clients, bucket).await?;
    Ok(Change::Updated)
}

async fn enable_versioning(clients: &Clients, bucket: &str) -> PortResult<()> {
    clients
        .s3
        .put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .map_err(|e| port_error("s3:PutBucketVersioning", e))?;
    Ok(())
}

fn build_err(e: impl std::fmt::Display) -> PortError {
    PortError::permanent("dynamodb:CreateTable", format!("building the request: {e}"))
}

fn key(name: &str, kind: KeyType) -> PortResult<KeySchemaElement> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(build_err)
}

fn attr(name: &str, ty: ScalarAttributeType) -> PortResult<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ty)
        .build()
        .map_err(build_err)
}

fn index(name: &str, hash: &str, range: &str) -> PortResult<GlobalSecondaryIndex> {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(hash, KeyType::Hash)?)
        .key_schema(key(range, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(build_err)
}

/// Done work items expire ([`EXPIRES_AT`]), as Terraform's `ttl` block says.
async fn enable_ttl(clients: &Clients, table: &str) -> PortResult<()> {
    let spec = aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
        .attribute_name(EXPIRES_AT)
        .enabled(true)
        .build()
        .map_err(build_err)?;
    clients
        .dynamodb
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(spec)
        .send()
        .await
        .map_err(|e| port_error("dynamodb:UpdateTimeToLive", e))?;
    Ok(())
}

async fn ensure_dynamo_table(
    clients: &Clients,
    table: &str,
    hash: &str,
    work_indexes: bool,
) -> PortResult<Change> {
    match clients
        .dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await
    {
        Ok(_) => return Ok(Change::Unchanged),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) => {}
        Err(e) => return Err(port_error("dynamodb:DescribeTable", e)),
    }
    let mut req = clients
        .dynamodb
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(hash, KeyType::Hash)?)
        .attribute_definitions(attr(hash, ScalarAttributeType::S)?);
    if work_indexes {
        req = req
            .attribute_definitions(attr(OPEN_STATUS, ScalarAttributeType::S)?)
            .attribute_definitions(attr("updated_at", ScalarAttributeType::N)?)
            .attribute_definitions(attr("batch", ScalarAttributeType::S)?)
            .global_secondary_indexes(index(STATUS_INDEX, OPEN_STATUS, "updated_at")?)
            .global_secondary_indexes(index(BATCH_INDEX, "batch", "id")?);
    }
    match req.send().await {
        Ok(_) => {}
        Err(e) if code_of(&e) == Some("ResourceInUseException") => return Ok(Change::Unchanged),
        Err(e) => return Err(port_error("dynamodb:CreateTable", e)),
    }
    // A new table is usable once ACTIVE (at once on the emulator, seconds on AWS).
    for _ in 0..120 {
        let out = clients
            .dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| port_error("dynamodb:DescribeTable", e))?;
        if out
            .table()
            .and_then(|t| t.table_status())
            .map(|s| s.as_str())
            == Some("ACTIVE")
        {
            if work_indexes {
                enable_ttl(clients, table).await?;
            }
            return Ok(Change::Created);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    Err(PortError::retryable(
        "dynamodb:CreateTable",
        format!("{table} did not become ACTIVE in 60 s"),
    ))
}

async fn ensure_parameter(
    clients: &Clients,
    name: &str,
    value: &str,
    description: &str,
) -> PortResult<Change> {
    let result = clients
        .ssm
        .put_parameter()
        .name(name)
        .value(value)
        .description(description)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(false)
        .send()
        .await;
    match result {
        Ok(_) => Ok(Change::Created),
        Err(e) if code_of(&e) == Some("ParameterAlreadyExists") => Ok(Change::Unchanged),
        Err(e) => Err(port_error("ssm:PutParameter", e)),
    }
}
