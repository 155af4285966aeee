//! `Catalog` over the Glue Data Catalog: a database, a table per spec, partitions.

use aws_sdk_glue::types::{
    Column, DatabaseInput, PartitionInput, SerDeInfo, StorageDescriptor, TableInput,
};
use sluice_core::ports::{Catalog, PortError, PortResult, TableChange};
use sluice_core::spec::OutputFormat;
use sluice_core::TableSpec;

use crate::error::{code_of, port_error};

/// Glue takes at most this many partitions per BatchCreatePartition.
pub const PARTITION_BATCH: usize = 100;

fn build_err(e: impl std::fmt::Display) -> PortError {
    PortError::permanent("glue", format!("building the request: {e}"))
}

/// The spec's data columns as Glue columns (Athena types; the comment names the source
/// header, so an analyst can find a column in the original file).
pub fn glue_columns(spec: &TableSpec) -> PortResult<Vec<Column>> {
    spec.columns
        .iter()
        .map(|c| {
            let mut comment = format!("source: {}", c.source_header());
            comment.truncate(255);
            Column::builder()
                .name(&c.name)
                .r#type(c.ty.to_string())
                .comment(comment)
                .build()
                .map_err(build_err)
        })
        .collect()
}

/// The table Athena reads: external, the spec's columns, its partition keys (strings, as in
/// the folder names), the output format's SerDe, at `location`.
pub fn glue_table_input(
    spec: &TableSpec,
    location: &str,
    columns: Vec<Column>,
) -> PortResult<TableInput> {
    let (input_format, output_format, serde, classification) = match spec.output {
        OutputFormat::Parquet => (
            "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
            SerDeInfo::builder()
                .serialization_library(
                    "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                )
                .parameters("serialization.format", "1")
                .build(),
            "parquet",
        ),
        OutputFormat::Csv => (
            "org.apache.hadoop.mapred.TextInputFormat",
            "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
            SerDeInfo::builder()
                .serialization_library("org.apache.hadoop.hive.serde2.OpenCSVSerde")
                .parameters("separatorChar", ",")
                .parameters("quoteChar", "\"")
                .build(),
            "csv",
        ),
    };
    let mut sd = StorageDescriptor::builder()
        .set_columns(Some(columns))
        .location(location)
        .input_format(input_format)
        .output_format(output_format)
        .serde_info(serde);
    if spec.output == OutputFormat::Parquet {
        sd = sd.compressed(true);
    }
    let partition_keys = spec
        .partition_keys()
        .into_iter()
        .map(|k| {
            Column::builder()
                .name(k)
                .r#type("string")
                .build()
                .map_err(build_err)
        })
        .collect::<PortResult<Vec<_>>>()?;
    let mut t = TableInput::builder()
        .name(&spec.dataset)
        .table_type("EXTERNAL_TABLE")
        .storage_descriptor(sd.build())
        .set_partition_keys(Some(partition_keys))
        .parameters("classification", classification)
        .parameters("EXTERNAL", "TRUE");
    if spec.output == OutputFormat::Csv {
        t = t.parameters("skip.header.line.count", "1");
    }
    if let Some(d) = &spec.description {
        t = t.description(d);
    }
    t.build().map_err(build_err)
}

/// The table's columns with the spec's new ones appended (existing columns keep their place;
/// columns dropped from a spec stay, so old files still read). Also returns the new names.
pub fn merged_columns(existing: &[Column], wanted: Vec<Column>) -> (Vec<Column>, Vec<String>) {
    let mut out = existing.to_vec();
    let mut added = Vec::new();
    for c in wanted {
        if !existing
            .iter()
            .any(|e| e.name().eq_ignore_ascii_case(c.name()))
        {
            added.push(c.name().to_owned());
            out.push(c);
        }
    }
    (out, added)
}

/// A change log's current-state view (`<dataset>_current`) as Glue holds views Athena reads:
/// a `VIRTUAL_VIEW` whose original text is the Trino view definition (SQL, catalog, schema,
/// columns) base64-encoded inside `/* Presto View: … */`.
pub fn current_view_input(spec: &TableSpec, database: &str) -> PortResult<Option<TableInput>> {
    let Some(sql) = sluice_core::dms::current_view_sql(spec, database) else {
        return Ok(None);
    };
    let op = spec.change_log.as_ref().map(|l| l.op_column.as_str());
    let kept: Vec<_> = spec
        .columns
        .iter()
        .filter(|c| Some(c.name.as_str()) != op)
        .collect();
    let definition = serde_json::json!({
        "originalSql": sql,
        "catalog": "awsdatacatalog",
        "schema": database,
        "columns": kept.iter().map(|c| serde_json::json!({
            "name": c.name, "type": sluice_core::dms::view_type(c.ty)
        })).collect::<Vec<_>>(),
    });
    let encoded = aws_smithy_types::base64::encode(definition.to_string());
    let columns = kept
        .iter()
        .map(|c| {
            Column::builder()
                .name(&c.name)
                .r#type(c.ty.to_string())
                .build()
                .map_err(build_err)
        })
        .collect::<PortResult<Vec<_>>>()?;
    TableInput::builder()
        .name(sluice_core::dms::current_view_name(spec))
        .description(format!(
            "{}: the current state of the change log (latest change per key, deletes removed)",
            spec.dataset
        ))
        .table_type("VIRTUAL_VIEW")
        .parameters("presto_view", "true")
        .parameters("comment", "Presto View")
        .view_original_text(format!("/* Presto View: {encoded} */"))
        .view_expanded_text("/* Presto View */")
        .storage_descriptor(
            StorageDescriptor::builder()
                .set_columns(Some(columns))
                .build(),
        )
        .build()
        .map(Some)
        .map_err(build_err)
}

/// A partition's folder under the table location: `yyyy=2026/mm=11/`.
pub fn partition_location(table_location: &str, partition: &[(String, String)]) -> String {
    let mut loc = table_location.trim_end_matches('/').to_owned();
    for (k, v) in partition {
        loc.push_str(&format!("/{k}={v}"));
    }
    loc.push('/');
    loc
}

#[derive(Clone, Debug)]
pub struct GlueCatalog {
    client: crate::lazy::Lazy<aws_sdk_glue::Client>,
}

impl GlueCatalog {
    pub fn new(client: impl Into<crate::lazy::Lazy<aws_sdk_glue::Client>>) -> GlueCatalog {
        GlueCatalog {
            client: client.into(),
        }
    }

    pub fn client(&self) -> &aws_sdk_glue::Client {
        self.client.get()
    }
}

impl GlueCatalog {
    /// Creates or replaces a change log's current-state view (nothing for other specs).
    async fn ensure_current_view(&self, database: &str, spec: &TableSpec) -> PortResult<()> {
        let Some(input) = current_view_input(spec, database)? else {
            return Ok(());
        };
        let glue = self.client.get();
        match glue
            .create_table()
            .database_name(database)
            .table_input(input.clone())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if code_of(&e) == Some("AlreadyExistsException") => glue
                .update_table()
                .database_name(database)
                .table_input(input)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| port_error("glue:UpdateTable", e)),
            Err(e) => Err(port_error("glue:CreateTable", e)),
        }
    }
}

impl Catalog for GlueCatalog {
    async fn ensure_database(&self, database: &str) -> PortResult<bool> {
        match self.client.get().get_database().name(database).send().await {
            Ok(_) => return Ok(false),
            Err(e) if code_of(&e) == Some("EntityNotFoundException") => {}
            Err(e) => return Err(port_error("glue:GetDatabase", e)),
        }
        let input = DatabaseInput::builder()
            .name(database)
            .description("Sluice: curated datasets")
            .build()
            .map_err(build_err)?;
        match self
            .client
            .get()
            .create_database()
            .database_input(input)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if code_of(&e) == Some("AlreadyExistsException") => Ok(false),
            Err(e) => Err(port_error("glue:CreateDatabase", e)),
        }
    }

    async fn ensure_table(
        &self,
        database: &str,
        spec: &TableSpec,
        location: &str,
    ) -> PortResult<TableChange> {
        let existing = match self
            .client
            .get()
            .get_table()
            .database_name(database)
            .name(&spec.dataset)
            .send()
            .await
        {
            Ok(out) => out.table,
            Err(e) if code_of(&e) == Some("EntityNotFoundException") => None,
            Err(e) => return Err(port_error("glue:GetTable", e)),
        };
        let wanted = glue_columns(spec)?;
        let Some(table) = existing else {
            let input = glue_table_input(spec, location, wanted)?;
            let change = match self
                .client
                .get()
                .create_table()
                .database_name(database)
                .table_input(input)
                .send()
                .await
            {
                Ok(_) => TableChange::Created,
                Err(e) if code_of(&e) == Some("AlreadyExistsException") => TableChange::Unchanged,
                Err(e) => return Err(port_error("glue:CreateTable", e)),
            };
            self.ensure_current_view(database, spec).await?;
            return Ok(change);
        };
        let current = table
            .storage_descriptor()
            .map(|sd| sd.columns())
            .unwrap_or_default();
        let (columns, added) = merged_columns(current, wanted);
        if added.is_empty() {
            return Ok(TableChange::Unchanged);
        }
        self.ensure_current_view(database, spec).await?;
        let input = glue_table_input(spec, location, columns)?;
        self.client
            .get()
            .update_table()
            .database_name(database)
            .table_input(input)
            .send()
            .await
            .map_err(|e| port_error("glue:UpdateTable", e))?;
        Ok(TableChange::ColumnsAdded { columns: added })
    }

    async fn add_partitions(
        &self,
        database: &str,
        table: &str,
        table_location: &str,
        partitions: &[Vec<(String, String)>],
    ) -> PortResult<usize> {
        let mut created = 0;
        for chunk in partitions.chunks(PARTITION_BATCH) {
            let inputs: Vec<PartitionInput> = chunk
                .iter()
                .map(|p| {
                    PartitionInput::builder()
                        .set_values(Some(p.iter().map(|(_, v)| v.clone()).collect()))
                        .storage_descriptor(
                            StorageDescriptor::builder()
                                .location(partition_location(table_location, p))
                                .build(),
                        )
                        .build()
                })
                .collect();
            let out = self
                .client
                .get()
                .batch_create_partition()
                .database_name(database)
                .table_name(table)
                .set_partition_input_list(Some(inputs))
                .send()
                .await
                .map_err(|e| port_error("glue:BatchCreatePartition", e))?;
            let mut existed = 0;
            for err in out.errors() {
                let code = err
                    .error_detail()
                    .and_then(|d| d.error_code())
                    .unwrap_or("");
                if code == "AlreadyExistsException" {
                    existed += 1;
                } else {
                    let message = err
                        .error_detail()
                        .and_then(|d| d.error_message())
                        .unwrap_or("");
                    return Err(PortError::permanent(
                        "glue:BatchCreatePartition",
                        format!("{table} {:?}: {code}: {message}", err.partition_values()),
                    ));
                }
            }
            created += chunk.len() - existed;
        }
        Ok(created)
    }
}
