resource "aws_cloudwatch_log_group" "function" {
  for_each          = local.functions
  name              = "/aws/lambda/${local.prefix}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

resource "aws_lambda_function" "function" {
  #checkov:skip=CKV_AWS_117:Only the load function reaches a VPC resource (the application database) and it runs in the VPC when a target is deployed; the others call only AWS APIs.
  #checkov:skip=CKV_AWS_116:Invoked synchronously by Step Functions (and EventBridge for notify/release, which retries itself); failures surface in the execution, not a DLQ.
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile per account; artifacts come from the CI build of this repository.
  for_each      = local.functions
  function_name = "${local.prefix}-${each.key}"
  description   = each.value.description
  role          = aws_iam_role.function[each.key].arn
  runtime       = "provided.al2023"
  architectures = ["arm64"]
  handler       = "bootstrap"
  # Built by: cargo lambda build --release --arm64 --output-format zip
  filename                       = "${var.artifacts_dir}/${each.key}/bootstrap.zip"
  source_code_hash               = filebase64sha256("${var.artifacts_dir}/${each.key}/bootstrap.zip")
  memory_size                    = each.value.memory
  timeout                        = each.value.timeout
  reserved_concurrent_executions = var.reserved_concurrency == null ? null : lookup(var.reserved_concurrency, each.key, null)
  kms_key_arn                    = aws_kms_key.main.arn

  environment {
    # SLUICE_SECRETS_PATH is the function's own: the only secrets path its role may read.
    variables = merge(local.function_environment, { SLUICE_SECRETS_PATH = "${local.secrets_path}${each.key}/" })
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.function[each.key].name
    application_log_level = "INFO"
    system_log_level      = "WARN"
  }

  tracing_config {
    mode = "Active"
  }

  # The load function reaches the application database from the VPC's private subnets.
  dynamic "vpc_config" {
    for_each = each.key == "load" && local.load_enabled ? [1] : []
    content {
      subnet_ids         = var.private_subnet_ids
      security_group_ids = [aws_security_group.load[0].id]
    }
  }

  ephemeral_storage {
    # ingest writes its outputs to /tmp (and a workbook, which must seek); load holds one lake
    # file at a time; normalize and extract read the lake one object at a time in memory and
    # write only their outputs.
    size = each.key == "ingest" ? 4096 : each.key == "load" ? 2048 : 512
  }
}

# EventBridge invokes notify and in-progress-check when an execution ends badly.
resource "aws_lambda_permission" "status_change" {
  for_each      = toset(["notify", "in-progress-check"])
  statement_id  = "AllowExecutionStatusChange"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function[each.key].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.execution_failed.arn
}

# S3 Object Created events register their work items through queue-generator.
resource "aws_lambda_permission" "object_created" {
  statement_id  = "AllowObjectCreated"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function["queue-generator"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.object_created.arn
}

# ... and notify when one succeeds (the recovered notice after a redrive).
resource "aws_lambda_permission" "recovered" {
  statement_id  = "AllowExecutionRecovered"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function["notify"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.execution_succeeded.arn
}
