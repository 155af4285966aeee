locals {
  # The table specs, and those pulled from a database (source.kind postgres or mysql).
  table_specs  = [for f in fileset("${path.module}/../config/tables", "*.json") : jsondecode(file("${path.module}/../config/tables/${f}"))]
  pulled_specs = [for s in local.table_specs : s if contains(["postgres", "mysql"], try(s.source.kind, "files"))]
  # The cadences (minutes) other than the hourly run's, one EventBridge rule each.
  pull_cadences = toset([for m in distinct([for s in local.pulled_specs : try(s.source.database.every_minutes, 60)]) : tostring(m) if m != 60])
  # The secrets of the database sources (queue-generator fixes ranges, ingest pulls them).
  source_secrets = toset([for s in local.pulled_specs : s.source.database.connection.secret])

  prefix        = "sluice-${var.env}"
  account_id    = data.aws_caller_identity.current.account_id
  partition     = data.aws_partition.current.partition
  settings_path = "/sluice/${var.env}/"
  # Each function's SecureString secrets, under <secrets_path><function>/: outside
  # settings_path, because a read by path covers every level below it (ssm.tf, iam.tf).
  secrets_path = "/sluice-secrets/${var.env}/"
  glue_database = "sluice_${replace(var.env, "-", "_")}"

  buckets = {
    raw      = "${local.prefix}-raw"
    lake     = "${local.prefix}-lake"
    extracts = "${local.prefix}-extracts"
    athena   = "${local.prefix}-athena-results"
  }

  # One entry per function of sluice_functions::registry, with its description (a test
  # checks both).
  functions = {
    "queue-generator"   = { memory = 512, timeout = 300, description = "Scheduled or S3 event -> registered work items" }
    "in-progress-check" = { memory = 128, timeout = 30, description = "The pipeline lock: acquire with stale-lock takeover, release" }
    "ingest"            = { memory = 2048, timeout = 900, description = "One work item -> curated Parquet, quarantine, Glue partitions" }
    "notify"            = { memory = 256, timeout = 60, description = "Run summary or failure -> SNS" }
    "extract"           = { memory = 2048, timeout = 900, description = "Monthly bank extract -> one CSV per bank and month" }
    "normalize"         = { memory = 2048, timeout = 900, description = "Models reading this run's datasets -> target tables, quarantine, Glue tables" }
    "load"              = { memory = 512, timeout = 900, description = "Lake tables this run touched -> the application databases (config/targets/), exactly once, reconciled" }
  }

  # What every function's configuration reads (sluice_aws::names::ENV_VARS).
  function_environment = {
    SLUICE_ENV             = var.env
    SLUICE_RAW_BUCKET      = local.buckets.raw
    SLUICE_LAKE_BUCKET     = local.buckets.lake
    SLUICE_EXTRACTS_BUCKET = local.buckets.extracts
    SLUICE_SPECS_TABLE     = aws_dynamodb_table.specs.name
    SLUICE_WORK_TABLE      = aws_dynamodb_table.work.name
    SLUICE_LOCKS_TABLE     = aws_dynamodb_table.locks.name
    SLUICE_SETTINGS_PATH   = local.settings_path
    SLUICE_TOPIC_NAME      = aws_sns_topic.notifications.name
    SLUICE_TOPIC_ARN       = aws_sns_topic.notifications.arn
    SLUICE_GLUE_DATABASE   = local.glue_database
  }

  settings = {
    lookback_hours         = tostring(var.lookback_hours)
    lease_seconds          = tostring(var.lease_seconds)
    ingest_max_concurrency = "4"
    reconcile_batch        = "50000"
    work_retention_days    = "400"
    output_roll_rows       = "5000000"
    max_file_bytes         = "10737418240"
    max_workbook_bytes     = "1073741824"
    notify_on_quarantine   = "true"
  }
}
