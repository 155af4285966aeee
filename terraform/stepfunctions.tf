resource "aws_cloudwatch_log_group" "state_machine" {
  name              = "/aws/vendedlogs/states/${local.prefix}-ingest"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

resource "aws_sfn_state_machine" "ingest" {
  name     = "${local.prefix}-ingest"
  type     = "STANDARD"
  role_arn = aws_iam_role.state_machine["ingest"].arn
  # The same definition `sluice run` executes locally; one placeholder per function.
  definition = templatefile("${path.module}/../statemachine/ingest.asl.json", {
    queue_generator_arn   = aws_lambda_function.function["queue-generator"].arn
    in_progress_check_arn = aws_lambda_function.function["in-progress-check"].arn
    ingest_arn            = aws_lambda_function.function["ingest"].arn
    notify_arn            = aws_lambda_function.function["notify"].arn
    normalize_arn         = aws_lambda_function.function["normalize"].arn
    load_arn              = aws_lambda_function.function["load"].arn
  })

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.state_machine.arn}:*"
    include_execution_data = true
    level                  = "ERROR"
  }

  tracing_configuration {
    enabled = true
  }

  encryption_configuration {
    type                              = "CUSTOMER_MANAGED_KMS_KEY"
    kms_key_id                        = aws_kms_key.main.arn
    kms_data_key_reuse_period_seconds = 300
  }
}

resource "aws_cloudwatch_log_group" "extract_state_machine" {
  name              = "/aws/vendedlogs/states/${local.prefix}-extract"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

resource "aws_sfn_state_machine" "extract" {
  name     = "${local.prefix}-extract"
  type     = "STANDARD"
  role_arn = aws_iam_role.state_machine["extract"].arn
  definition = templatefile("${path.module}/../statemachine/extract.asl.json", {
    extract_arn = aws_lambda_function.function["extract"].arn
    notify_arn  = aws_lambda_function.function["notify"].arn
  })

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.extract_state_machine.arn}:*"
    include_execution_data = true
    level                  = "ERROR"
  }

  tracing_configuration {
    enabled = true
  }

  encryption_configuration {
    type                              = "CUSTOMER_MANAGED_KMS_KEY"
    kms_key_id                        = aws_kms_key.main.arn
    kms_data_key_reuse_period_seconds = 300
  }
}
