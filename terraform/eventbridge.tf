# The hourly run.
resource "aws_cloudwatch_event_rule" "hourly" {
  name                = "${local.prefix}-hourly"
  description         = "Sluice ${var.env}: hourly ingestion of the raw bucket's last hours"
  schedule_expression = var.hourly_schedule
}

resource "aws_cloudwatch_event_target" "hourly" {
  rule     = aws_cloudwatch_event_rule.hourly.name
  arn      = aws_sfn_state_machine.ingest.arn
  role_arn = aws_iam_role.events.arn
}

# The reconciliation: a full listing of every spec prefix, unpartitioned ones included,
# registering any object that no event and no hourly listing brought in (a bounded batch per
# run, SSM reconcile_batch; the next run goes on after the last key checked).
resource "aws_cloudwatch_event_rule" "reconcile" {
  name                = "${local.prefix}-reconcile"
  description         = "Sluice ${var.env}: reconcile the raw bucket with the work table"
  schedule_expression = var.reconcile_schedule
}

resource "aws_cloudwatch_event_target" "reconcile" {
  rule     = aws_cloudwatch_event_rule.reconcile.name
  arn      = aws_sfn_state_machine.ingest.arn
  role_arn = aws_iam_role.events.arn
  input_transformer {
    input_paths = {
      id   = "$.id"
      time = "$.time"
    }
    input_template = <<-JSON
      {"version": "0", "id": <id>, "detail-type": "Scheduled Event", "source": "sluice.reconcile", "time": <time>, "resources": [], "detail": {"reconcile": true}}
    JSON
  }
}

# Each upload to the raw bucket: registered as a work item by the queue-generator function
# (no execution per upload: a burst of 1,000 files is 1,000 cheap registrations); the drain
# run below ingests what waits.
resource "aws_cloudwatch_event_rule" "object_created" {
  name        = "${local.prefix}-object-created"
  description = "Sluice ${var.env}: a file landed in the raw bucket"
  event_pattern = jsonencode({
    source        = ["aws.s3"]
    "detail-type" = ["Object Created"]
    detail = {
      bucket = { name = [aws_s3_bucket.this["raw"].id] }
    }
  })
}

resource "aws_cloudwatch_event_target" "object_created" {
  rule = aws_cloudwatch_event_rule.object_created.name
  arn  = aws_lambda_function.function["queue-generator"].arn
  retry_policy {
    maximum_event_age_in_seconds = 86400
    maximum_retry_attempts       = 185
  }
}

# The drain: every few minutes an execution takes the items events registered (and requeued
# or swept ones); with an empty queue it ends at once (AnythingToDo?).
resource "aws_cloudwatch_event_rule" "drain" {
  name                = "${local.prefix}-drain"
  description         = "Sluice ${var.env}: ingest the work items registered by S3 events"
  schedule_expression = var.drain_schedule
}

resource "aws_cloudwatch_event_target" "drain" {
  rule     = aws_cloudwatch_event_rule.drain.name
  arn      = aws_sfn_state_machine.ingest.arn
  role_arn = aws_iam_role.events.arn
  input_transformer {
    input_paths = {
      id   = "$.id"
      time = "$.time"
    }
    input_template = <<-JSON
      {"version": "0", "id": <id>, "detail-type": "Scheduled Event", "source": "sluice.drain", "time": <time>, "resources": [], "detail": {"drain": true}}
    JSON
  }
}

# Every execution that ends badly (FAILED, TIMED_OUT, ABORTED): the one failure notice (notify
# reads the failed state, error and cause from the execution's history) and the release of the
# lock it may hold. The definition has no catch-all path: errors a human must fix stay
# uncaught, so the failed state is where Redrive resumes.
resource "aws_cloudwatch_event_rule" "execution_failed" {
  name        = "${local.prefix}-execution-failed"
  description = "Sluice ${var.env}: an ingestion or extract execution FAILED, TIMED_OUT or was ABORTED"
  event_pattern = jsonencode({
    source        = ["aws.states"]
    "detail-type" = ["Step Functions Execution Status Change"]
    detail = {
      status          = ["FAILED", "TIMED_OUT", "ABORTED"]
      stateMachineArn = [aws_sfn_state_machine.ingest.arn, aws_sfn_state_machine.extract.arn]
    }
  })
}

resource "aws_cloudwatch_event_target" "notify_on_failure" {
  rule = aws_cloudwatch_event_rule.execution_failed.name
  arn  = aws_lambda_function.function["notify"].arn
  input_transformer {
    input_paths = {
      execution = "$.detail.executionArn"
      status    = "$.detail.status"
    }
    input_template = <<-JSON
      {"kind": "failure", "execution": <execution>, "status": <status>}
    JSON
  }
}

resource "aws_cloudwatch_event_target" "release_on_failure" {
  rule = aws_cloudwatch_event_rule.execution_failed.name
  arn  = aws_lambda_function.function["in-progress-check"].arn
  input_transformer {
    input_paths = {
      execution = "$.detail.executionArn"
    }
    input_template = <<-JSON
      {"action": "release", "execution": <execution>}
    JSON
  }
}

# A redriven execution that then succeeded: notify sends a short "recovered" message (it
# reads redriveCount from DescribeExecution and says nothing for an ordinary success).
resource "aws_cloudwatch_event_rule" "execution_succeeded" {
  name        = "${local.prefix}-execution-succeeded"
  description = "Sluice ${var.env}: an ingestion or extract execution SUCCEEDED (a recovered notice after a redrive)"
  event_pattern = jsonencode({
    source        = ["aws.states"]
    "detail-type" = ["Step Functions Execution Status Change"]
    detail = {
      status          = ["SUCCEEDED"]
      stateMachineArn = [aws_sfn_state_machine.ingest.arn, aws_sfn_state_machine.extract.arn]
    }
  })
}

resource "aws_cloudwatch_event_target" "notify_on_recovery" {
  rule = aws_cloudwatch_event_rule.execution_succeeded.name
  arn  = aws_lambda_function.function["notify"].arn
  input_transformer {
    input_paths = {
      execution = "$.detail.executionArn"
    }
    input_template = <<-JSON
      {"kind": "recovered", "execution": <execution>}
    JSON
  }
}

# The monthly bank extract.
resource "aws_cloudwatch_event_rule" "monthly_extract" {
  name                = "${local.prefix}-monthly-extract"
  description         = "Sluice ${var.env}: the monthly bank extract (completed months only)"
  schedule_expression = var.extract_schedule
}

resource "aws_cloudwatch_event_target" "monthly_extract" {
  rule     = aws_cloudwatch_event_rule.monthly_extract.name
  arn      = aws_sfn_state_machine.extract.arn
  role_arn = aws_iam_role.events.arn
}

# Database sources with a cadence of their own (source.database.every_minutes other than 60):
# one rule per cadence; its runs register those sources' pulls (the hourly run registers the
# hourly ones) and ingest them.
resource "aws_cloudwatch_event_rule" "pull" {
  for_each            = local.pull_cadences
  name                = "${local.prefix}-pull-every-${each.key}-min"
  description         = "Sluice ${var.env}: pull the database sources read every ${each.key} minutes"
  schedule_expression = each.key == "1" ? "rate(1 minute)" : "rate(${each.key} minutes)"
}

resource "aws_cloudwatch_event_target" "pull" {
  for_each = local.pull_cadences
  rule     = aws_cloudwatch_event_rule.pull[each.key].name
  arn      = aws_sfn_state_machine.ingest.arn
  role_arn = aws_iam_role.events.arn
  input_transformer {
    input_paths = {
      id   = "$.id"
      time = "$.time"
    }
    input_template = <<-JSON
      {"version": "0", "id": <id>, "detail-type": "Scheduled Event", "source": "sluice.pull", "time": <time>, "resources": [], "detail": {"pull_every_minutes": ${each.key}}}
    JSON
  }
}
