# One role per function, each with only the actions and resources that function uses.

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  for_each           = local.functions
  name               = "${local.prefix}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

resource "aws_iam_role_policy" "function" {
  for_each = local.functions
  name     = "${local.prefix}-${each.key}"
  role     = aws_iam_role.function[each.key].id
  policy = {
    "queue-generator"   = data.aws_iam_policy_document.queue_generator.json
    "in-progress-check" = data.aws_iam_policy_document.in_progress_check.json
    "ingest"            = data.aws_iam_policy_document.ingest.json
    "notify"            = data.aws_iam_policy_document.notify.json
    "extract"           = data.aws_iam_policy_document.extract.json
    "normalize"         = data.aws_iam_policy_document.normalize.json
    "load"              = data.aws_iam_policy_document.load.json
  }[each.key]
}

locals {
  settings_arn = "arn:${local.partition}:ssm:${var.region}:${local.account_id}:parameter${trimsuffix(local.settings_path, "/")}"
  secrets_arn  = "arn:${local.partition}:ssm:${var.region}:${local.account_id}:parameter${trimsuffix(local.secrets_path, "/")}"
  glue_catalog = "arn:${local.partition}:glue:${var.region}:${local.account_id}:catalog"
  glue_db      = "arn:${local.partition}:glue:${var.region}:${local.account_id}:database/${local.glue_database}"
  glue_tables  = "arn:${local.partition}:glue:${var.region}:${local.account_id}:table/${local.glue_database}/*"
}

# What every function does: write its logs, send traces, read settings, use the key.
data "aws_iam_policy_document" "common" {
  for_each = local.functions
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function[each.key].arn}:*"]
  }
  statement {
    sid     = "Traces"
    actions = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    # X-Ray trace segments have no resource ARN: AWS requires "*" here.
    resources = ["*"]
  }
  statement {
    sid       = "Settings"
    # Settings are read by path (sluice_aws::ssm); no function reads one parameter alone.
    actions   = ["ssm:GetParametersByPath"]
    resources = [local.settings_arn, "${local.settings_arn}/*"]
  }
  statement {
    sid = "OwnSecrets"
    # This function's secrets only: another function's path is not a level of this one.
    actions   = ["ssm:GetParametersByPath"]
    resources = ["${local.secrets_arn}/${each.key}", "${local.secrets_arn}/${each.key}/*"]
  }
  statement {
    sid       = "Key"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.main.arn]
  }
}

data "aws_iam_policy_document" "queue_generator" {
  source_policy_documents = [data.aws_iam_policy_document.common["queue-generator"].json, data.aws_iam_policy_document.database_sources.json]
  statement {
    sid       = "ListRaw"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.this["raw"].arn]
  }
  statement {
    sid       = "HeadRaw"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.this["raw"].arn}/*"]
  }
  statement {
    sid       = "WriteManifests"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.this["lake"].arn}/manifests/*"]
  }
  statement {
    sid = "RegisterWork"
    # UpdateItem: requeue (failed -> queued) and the sweep (stranded running -> queued).
    actions   = ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.work.arn, "${aws_dynamodb_table.work.arn}/index/*"]
  }
  statement {
    sid       = "ReadSpecs"
    actions   = ["dynamodb:Scan"]
    resources = [aws_dynamodb_table.specs.arn]
  }
  statement {
    # The sweep: can the execution that left an item running still finish it?
    sid       = "IsTheItemsExecutionRedrivable"
    actions   = ["states:DescribeExecution"]
    resources = ["arn:${local.partition}:states:${var.region}:${local.account_id}:execution:${local.prefix}-ingest:*"]
  }
}

data "aws_iam_policy_document" "in_progress_check" {
  source_policy_documents = [data.aws_iam_policy_document.common["in-progress-check"].json]
  statement {
    sid       = "Lock"
    actions   = ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
    resources = [aws_dynamodb_table.locks.arn]
  }
  statement {
    sid       = "IsTheOwnerStillRunning"
    actions   = ["states:DescribeExecution"]
    resources = ["arn:${local.partition}:states:${var.region}:${local.account_id}:execution:${local.prefix}-ingest:*"]
  }
}

data "aws_iam_policy_document" "ingest" {
  source_policy_documents = [data.aws_iam_policy_document.common["ingest"].json, data.aws_iam_policy_document.database_sources.json]
  statement {
    sid       = "ReadRaw"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = ["${aws_s3_bucket.this["raw"].arn}/*"]
  }
  statement {
    sid       = "ReadManifests"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.this["lake"].arn}/manifests/*"]
  }
  statement {
    # Without it a deleted raw object reads as AccessDenied instead of "no such key".
    sid       = "ListRaw"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.this["raw"].arn]
  }
  statement {
    sid       = "WriteCurated"
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = ["${aws_s3_bucket.this["lake"].arn}/data/*", "${aws_s3_bucket.this["lake"].arn}/quarantine/*"]
  }
  statement {
    # on_overwrite: replace removes the outputs of an object's earlier version (lake only;
    # raw objects are never deleted).
    sid       = "ReplaceEarlierVersions"
    actions   = ["s3:DeleteObject"]
    resources = ["${aws_s3_bucket.this["lake"].arn}/data/*", "${aws_s3_bucket.this["lake"].arn}/quarantine/*"]
  }
  statement {
    sid       = "OutputManifests"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${aws_s3_bucket.this["lake"].arn}/_sluice/outputs/*"]
  }
  statement {
    # Specs with "drift": each file's compact profile, and the dataset's previous ones read
    # back as the baseline.
    sid       = "DriftProfiles"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${aws_s3_bucket.this["lake"].arn}/_sluice/profiles/*"]
  }
  statement {
    sid = "StagedOutputs"
    # Files closed before the end of their input wait here until the file is published
    # (functions/src/stage.rs): uploaded, read as a copy source, removed.
    actions   = ["s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = ["${aws_s3_bucket.this["lake"].arn}/_sluice/staging/*"]
  }
  statement {
    sid       = "ListDriftProfiles"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.this["lake"].arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["_sluice/profiles/*"]
    }
  }
  statement {
    # PutItem: the marker of the version the lake holds per object and dataset.
    sid       = "WorkItem"
    actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem"]
    resources = [aws_dynamodb_table.work.arn]
  }
  statement {
    sid       = "HoldTheLock"
    actions   = ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.locks.arn]
  }
  statement {
    sid       = "ReadItsSpec"
    actions   = ["dynamodb:GetItem"]
    resources = [aws_dynamodb_table.specs.arn]
  }
  statement {
    sid       = "Catalog"
    actions   = ["glue:GetTable", "glue:CreateTable", "glue:UpdateTable", "glue:BatchCreatePartition"]
    resources = [local.glue_catalog, local.glue_db, local.glue_tables]
  }
}

data "aws_iam_policy_document" "notify" {
  source_policy_documents = [data.aws_iam_policy_document.common["notify"].json]
  statement {
    # The run's items: its manifest, then each item with a strongly consistent GetItem
    # (never the eventually consistent batch index).
    sid       = "ReadBatch"
    actions   = ["dynamodb:GetItem"]
    resources = [aws_dynamodb_table.work.arn]
  }
  statement {
    sid       = "ReadBatchManifest"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.this["lake"].arn}/manifests/*"]
  }
  statement {
    sid       = "Publish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.notifications.arn]
  }
  statement {
    # The failure notice reads the failed state, error, cause and redrive count of the
    # execution the status-change event names (DescribeExecution, GetExecutionHistory).
    sid     = "ReadFailedExecution"
    actions = ["states:DescribeExecution", "states:GetExecutionHistory"]
    resources = [
      "arn:${local.partition}:states:${var.region}:${local.account_id}:execution:${local.prefix}-ingest:*",
      "arn:${local.partition}:states:${var.region}:${local.account_id}:execution:${local.prefix}-extract:*",
    ]
  }
  statement {
    # Execution data of the state machines is encrypted with the main key.
    sid       = "DecryptExecutionData"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.main.arn]
  }
}

data "aws_iam_policy_document" "extract" {
  source_policy_documents = [data.aws_iam_policy_document.common["extract"].json]
  statement {
    sid       = "ListCurated"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.this["lake"].arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["data/*"]
    }
  }
  statement {
    sid       = "ReadCurated"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.this["lake"].arn}/data/*"]
  }
  statement {
    # GetObject: a month's file is rewritten only when its content changed (a correction).
    sid       = "WriteExtracts"
    actions   = ["s3:PutObject", "s3:GetObject"]
    resources = ["${aws_s3_bucket.this["extracts"].arn}/*"]
  }
  statement {
    sid       = "Watermark"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem"]
    resources = [aws_dynamodb_table.work.arn]
  }
  statement {
    # The pipeline lock: the extract never reads half a publish.
    sid       = "HoldTheLock"
    actions   = ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
    resources = [aws_dynamodb_table.locks.arn]
  }
  statement {
    sid       = "IsTheLockOwnerRunning"
    actions   = ["states:DescribeExecution"]
    resources = ["arn:${local.partition}:states:${var.region}:${local.account_id}:execution:${local.prefix}-ingest:*"]
  }
}

data "aws_iam_policy_document" "normalize" {
  source_policy_documents = [data.aws_iam_policy_document.common["normalize"].json]
  statement {
    sid       = "ListModelsAndCurated"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.this["lake"].arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["config/models/*", "data/*"]
    }
  }
  statement {
    sid       = "ReadModelsAndCurated"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.this["lake"].arn}/config/models/*", "${aws_s3_bucket.this["lake"].arn}/data/*"]
  }
  statement {
    sid       = "WriteTargetTables"
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = ["${aws_s3_bucket.this["lake"].arn}/data/*", "${aws_s3_bucket.this["lake"].arn}/quarantine/*"]
  }
  statement {
    # The run's items: its manifest, then each item with a strongly consistent GetItem
    # (never the eventually consistent batch index).
    sid       = "ReadBatch"
    actions   = ["dynamodb:GetItem"]
    resources = [aws_dynamodb_table.work.arn]
  }
  statement {
    sid       = "ReadBatchManifest"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.this["lake"].arn}/manifests/*"]
  }
  statement {
    sid       = "HoldTheLock"
    actions   = ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.locks.arn]
  }
  statement {
    sid       = "Catalog"
    actions   = ["glue:GetTable", "glue:CreateTable", "glue:UpdateTable"]
    resources = [local.glue_catalog, local.glue_db, local.glue_tables]
  }
}

# The state machines: invoke the functions, log, trace.
data "aws_iam_policy_document" "states_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["states.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# One role per state machine, each invoking only the functions its definition names: the
# extract machine cannot invoke the ingest functions, nor start the ingest machine's children.
locals {
  machine_functions = {
    ingest  = ["queue-generator", "in-progress-check", "ingest", "normalize", "load", "notify"]
    extract = ["extract"]
  }
}

resource "aws_iam_role" "state_machine" {
  for_each           = local.machine_functions
  name               = "${local.prefix}-${each.key}-machine"
  assume_role_policy = data.aws_iam_policy_document.states_assume.json
}

data "aws_iam_policy_document" "state_machine" {
  for_each = local.machine_functions
  statement {
    sid       = "InvokeFunctions"
    actions   = ["lambda:InvokeFunction"]
    resources = [for f in each.value : aws_lambda_function.function[f].arn]
  }
  statement {
    sid     = "DeliverLogs"
    actions = ["logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups"]
    # CloudWatch Logs delivery for Step Functions does not support resource-level permissions: AWS requires "*" here.
    resources = ["*"]
  }
  statement {
    sid     = "Traces"
    actions = ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"]
    # X-Ray has no resource ARNs for these actions: AWS requires "*" here.
    resources = ["*"]
  }
  statement {
    sid       = "Key"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.main.arn]
  }
  # The ingest machine's distributed Map (ProcessItems) starts one child execution per item and
  # manages its Map Run (Step Functions developer guide, "IAM policies for using Distributed
  # Map states"), reading the batch manifest.
  dynamic "statement" {
    for_each = each.key == "ingest" ? local.distributed_map_statements : {}
    content {
      sid       = statement.key
      actions   = statement.value.actions
      resources = statement.value.resources
    }
  }
}

locals {
  distributed_map_statements = {
    DistributedMapChildren = {
      actions   = ["states:StartExecution"]
      resources = ["arn:${local.partition}:states:${var.region}:${local.account_id}:stateMachine:${local.prefix}-ingest"]
    }
    DistributedMapRuns = {
      actions   = ["states:DescribeExecution", "states:StopExecution"]
      resources = ["arn:${local.partition}:states:${var.region}:${local.account_id}:execution:${local.prefix}-ingest/*"]
    }
    DistributedMapRedrive = {
      actions   = ["states:RedriveExecution"]
      resources = ["arn:${local.partition}:states:${var.region}:${local.account_id}:mapRun:${local.prefix}-ingest/*"]
    }
    ReadBatchManifests = {
      actions   = ["s3:GetObject"]
      resources = ["${aws_s3_bucket.this["lake"].arn}/manifests/*"]
    }
  }
}

resource "aws_iam_role_policy" "state_machine" {
  for_each = local.machine_functions
  name     = "${local.prefix}-${each.key}-machine"
  role     = aws_iam_role.state_machine[each.key].id
  policy   = data.aws_iam_policy_document.state_machine[each.key].json
}

# EventBridge starts executions.
data "aws_iam_policy_document" "events_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "events" {
  name               = "${local.prefix}-events"
  assume_role_policy = data.aws_iam_policy_document.events_assume.json
}

data "aws_iam_policy_document" "events" {
  statement {
    sid       = "StartExecutions"
    actions   = ["states:StartExecution"]
    resources = [aws_sfn_state_machine.ingest.arn, aws_sfn_state_machine.extract.arn]
  }
  # The state machines are encrypted with the customer-managed key: starting an execution
  # encrypts its input under it, so the caller needs the key as well as StartExecution.
  # https://docs.aws.amazon.com/step-functions/latest/dg/encryption-at-rest.html
  statement {
    sid       = "EncryptExecutionInput"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.main.arn]
  }
}

resource "aws_iam_role_policy" "events" {
  name   = "${local.prefix}-events"
  role   = aws_iam_role.events.id
  policy = data.aws_iam_policy_document.events.json
}

# On call: look at executions and redrive them; attach to the on-call group or role.
data "aws_iam_policy_document" "oncall" {
  statement {
    sid       = "SeeTheStateMachines"
    actions   = ["states:DescribeStateMachine", "states:ListExecutions"]
    resources = [aws_sfn_state_machine.ingest.arn, aws_sfn_state_machine.extract.arn]
  }
  statement {
    sid     = "SeeAndRedriveExecutions"
    actions = ["states:DescribeExecution", "states:GetExecutionHistory", "states:RedriveExecution", "states:StopExecution"]
    resources = [
      "arn:${local.partition}:states:${var.region}:${local.account_id}:execution:${aws_sfn_state_machine.ingest.name}:*",
      "arn:${local.partition}:states:${var.region}:${local.account_id}:execution:${aws_sfn_state_machine.extract.name}:*",
    ]
  }
  statement {
    sid       = "ReadWorkItems"
    actions   = ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan"]
    resources = [aws_dynamodb_table.work.arn, "${aws_dynamodb_table.work.arn}/index/*", aws_dynamodb_table.locks.arn]
  }
  statement {
    sid       = "ReadQuarantine"
    actions   = ["s3:GetObject", "s3:ListBucket"]
    resources = [aws_s3_bucket.this["lake"].arn, "${aws_s3_bucket.this["lake"].arn}/quarantine/*"]
  }
  # The executions are encrypted with the customer-managed key: reading their history needs
  # Decrypt, and a redrive writes encrypted execution data (GenerateDataKey), as the Step
  # Functions encryption page describes for the execution APIs (read, not tried on an account):
  # https://docs.aws.amazon.com/step-functions/latest/dg/encryption-at-rest.html
  statement {
    sid       = "Key"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.main.arn]
  }
}

resource "aws_iam_policy" "oncall" {
  name        = "${local.prefix}-oncall"
  description = "Sluice ${var.env} on call: inspect executions and work items, read quarantine, redrive failed executions."
  policy      = data.aws_iam_policy_document.oncall.json
}

data "aws_iam_policy_document" "load" {
  source_policy_documents = [data.aws_iam_policy_document.common["load"].json]
  statement {
    sid       = "ListTargetsAndCurated"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.this["lake"].arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["config/targets/*", "config/models/*", "data/*"]
    }
  }
  statement {
    sid       = "ReadTargetsModelsCuratedAndTheRun"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.this["lake"].arn}/config/targets/*", "${aws_s3_bucket.this["lake"].arn}/config/models/*", "${aws_s3_bucket.this["lake"].arn}/data/*", "${aws_s3_bucket.this["lake"].arn}/manifests/*"]
  }
  statement {
    sid       = "ReadSpecsAndTheRunsItems"
    actions   = ["dynamodb:Scan", "dynamodb:GetItem"]
    resources = [aws_dynamodb_table.specs.arn, aws_dynamodb_table.work.arn]
  }
  statement {
    sid       = "HoldTheLock"
    actions   = ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.locks.arn]
  }
  statement {
    sid       = "IsTheOwnerStillRunning"
    actions   = ["states:DescribeExecution"]
    resources = ["arn:${local.partition}:states:${var.region}:${local.account_id}:execution:${local.prefix}-ingest:*"]
  }
  statement {
    # The target's connection: that one secret only (none when no target is deployed).
    sid       = "TheTargetsSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [local.load_enabled ? local.database_secret_arn : "arn:${local.partition}:secretsmanager:${var.region}:${local.account_id}:secret:${local.prefix}-no-target"]
  }
}

# A function in a VPC creates and removes its network interfaces: AWS's managed policy for
# exactly that (https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html).
resource "aws_iam_role_policy_attachment" "load_vpc" {
  count      = local.load_enabled ? 1 : 0
  role       = aws_iam_role.function["load"].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

# Database sources' connections (config/tables/ specs with source.kind postgres or mysql), for
# the two functions that reach them (queue-generator fixes ranges, ingest pulls them): those
# secrets only. Their names get a random suffix in the ARN. Empty without such specs.
data "aws_iam_policy_document" "database_sources" {
  dynamic "statement" {
    for_each = length(local.source_secrets) > 0 ? [1] : []
    content {
      sid       = "DatabaseSourceSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [for s in local.source_secrets : "arn:${local.partition}:secretsmanager:${var.region}:${local.account_id}:secret:${s}-*"]
    }
  }
}
