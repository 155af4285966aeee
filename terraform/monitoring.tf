locals {
  execution_alarms = {
    "executions-failed"    = { metric = "ExecutionsFailed", description = "An ingestion execution failed, timed out or was aborted: see the notification, then redrive." }
    "executions-timed-out" = { metric = "ExecutionsTimedOut", description = "An ingestion execution timed out." }
  }
  # One alarm per function and metric.
  function_alarms = {
    for pair in setproduct(keys(local.functions), ["Errors", "Throttles"]) :
    "${pair[0]}-${lower(pair[1])}" => { function = pair[0], metric = pair[1] }
  }
}

resource "aws_cloudwatch_metric_alarm" "executions" {
  for_each            = local.execution_alarms
  alarm_name          = "${local.prefix}-${each.key}"
  alarm_description   = each.value.description
  namespace           = "AWS/States"
  metric_name         = each.value.metric
  dimensions          = { StateMachineArn = aws_sfn_state_machine.ingest.arn }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.notifications.arn]
}

resource "aws_cloudwatch_metric_alarm" "function" {
  for_each            = local.function_alarms
  alarm_name          = "${local.prefix}-${each.key}"
  alarm_description   = "The ${each.value.function} function reported ${lower(each.value.metric)}."
  namespace           = "AWS/Lambda"
  metric_name         = each.value.metric
  dimensions          = { FunctionName = aws_lambda_function.function[each.value.function].function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.notifications.arn]
}

# Work items left failed or running at the end of a run: notify logs `stuck_items` in its
# JSON log line "run summary".
resource "aws_cloudwatch_log_metric_filter" "stuck_items" {
  name           = "${local.prefix}-stuck-items"
  log_group_name = aws_cloudwatch_log_group.function["notify"].name
  pattern        = "{ $.fields.stuck_items > 0 }"
  metric_transformation {
    name      = "StuckWorkItems"
    namespace = "Sluice/${var.env}"
    value     = "$.fields.stuck_items"
  }
}

resource "aws_cloudwatch_metric_alarm" "stuck_items" {
  alarm_name          = "${local.prefix}-work-items-stuck"
  alarm_description   = "A run ended with work items failed or still running: see the work table and the notification."
  namespace           = "Sluice/${var.env}"
  metric_name         = "StuckWorkItems"
  statistic           = "Maximum"
  period              = 3600
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.notifications.arn]
}

resource "aws_cloudwatch_dashboard" "pipeline" {
  dashboard_name = "${local.prefix}-pipeline"
  dashboard_body = jsonencode({
    widgets = [
      {
        # The functions' EMF metrics, one line per dataset (CloudWatch metric search).
        type = "metric", x = 0, y = 12, width = 24, height = 6
        properties = {
          title  = "Rows written and quarantined per dataset (hourly)"
          region = var.region
          period = 3600
          metrics = [
            [{ expression = "SEARCH('{Sluice,Environment,Dataset} MetricName=\"RowsWritten\" Environment=\"${var.env}\"', 'Sum', 3600)", id = "written" }],
            [{ expression = "SEARCH('{Sluice,Environment,Dataset} MetricName=\"RowsQuarantined\" Environment=\"${var.env}\"', 'Sum', 3600)", id = "quarantined" }],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title  = "Executions"
          region = var.region
          stat   = "Sum"
          period = 3600
          metrics = [
            ["AWS/States", "ExecutionsSucceeded", "StateMachineArn", aws_sfn_state_machine.ingest.arn],
            ["AWS/States", "ExecutionsFailed", "StateMachineArn", aws_sfn_state_machine.ingest.arn],
            ["AWS/States", "ExecutionsTimedOut", "StateMachineArn", aws_sfn_state_machine.ingest.arn],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title   = "Function errors and throttles"
          region  = var.region
          stat    = "Sum"
          period  = 300
          metrics = concat([for k, f in aws_lambda_function.function : ["AWS/Lambda", "Errors", "FunctionName", f.function_name]], [for k, f in aws_lambda_function.function : ["AWS/Lambda", "Throttles", "FunctionName", f.function_name]])
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 12, height = 6
        properties = {
          title   = "ingest duration (p95)"
          region  = var.region
          stat    = "p95"
          period  = 300
          metrics = [["AWS/Lambda", "Duration", "FunctionName", aws_lambda_function.function["ingest"].function_name]]
        }
      },
      {
        type = "metric", x = 12, y = 6, width = 12, height = 6
        properties = {
          title   = "Work items left failed or running"
          region  = var.region
          stat    = "Maximum"
          period  = 3600
          metrics = [["Sluice/${var.env}", "StuckWorkItems"]]
        }
      },
    ]
  })
}

# Freshness: every dataset pulled from a database (source.kind postgres or mysql), read from
# DMS's change files, or whose spec expects files (source.expect_every_minutes) gets an alarm when no item of it was ingested for two of its cadences
# (ingest's EMF metric Sluice/ItemsIngested, dimensions Environment and Dataset) (a stopped DMS
# task, an unreachable source, a run that keeps failing). An hour is the shortest period
# (pulls more often than hourly still alarm after two hours without an item).
locals {
  fresh_datasets = {
    for s in local.table_specs : s.dataset => max(60, try(s.source.database.every_minutes, s.source.expect_every_minutes, 60))
    if contains(["postgres", "mysql"], try(s.source.kind, "files")) || try(s.change_log, null) != null || try(s.source.expect_every_minutes, null) != null
  }
}

resource "aws_cloudwatch_metric_alarm" "stale" {
  for_each            = local.fresh_datasets
  alarm_name          = "${local.prefix}-stale-${each.key}"
  alarm_description   = "No item of dataset ${each.key} was ingested for two of its cadences: is its source (database or DMS task) reachable, and are runs succeeding?"
  namespace           = "Sluice"
  metric_name         = "ItemsIngested"
  dimensions          = { Environment = var.env, Dataset = each.key }
  statistic           = "Sum"
  period              = each.value * 60
  evaluation_periods  = 2
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = [aws_sns_topic.notifications.arn]
}

# Quarantine rate: a dataset whose rows are quarantined past var.quarantine_rate_alarm of the
# rows read in an hour (a format change at the source, a spec that no longer fits) alarms,
# from ingest's EMF metrics Sluice/RowsQuarantined and Sluice/RowsRead. Metric math:
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/using-metric-math.html
resource "aws_cloudwatch_metric_alarm" "quarantine_rate" {
  for_each            = { for s in local.table_specs : s.dataset => s }
  alarm_name          = "${local.prefix}-quarantine-rate-${each.key}"
  alarm_description   = "More than ${var.quarantine_rate_alarm * 100} % of dataset ${each.key}'s rows read in an hour were quarantined: read the run summaries and s3://${aws_s3_bucket.this["lake"].bucket}/quarantine/${each.key}/ (a format change at the source?)"
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.quarantine_rate_alarm * 100
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.notifications.arn]
  metric_query {
    id          = "rate"
    expression  = "IF(rows_read > 0, 100 * rows_quarantined / rows_read, 0)"
    label       = "quarantined % of rows read"
    return_data = true
  }
  metric_query {
    id = "rows_read"
    metric {
      namespace   = "Sluice"
      metric_name = "RowsRead"
      dimensions  = { Environment = var.env, Dataset = each.key }
      period      = 3600
      stat        = "Sum"
    }
  }
  metric_query {
    id = "rows_quarantined"
    metric {
      namespace   = "Sluice"
      metric_name = "RowsQuarantined"
      dimensions  = { Environment = var.env, Dataset = each.key }
      period      = 3600
      stat        = "Sum"
    }
  }
}

# Lag: a dataset whose files took more than two hours from upload (S3 LastModified) to
# published rows (ingest's EMF metric Sluice/LagSeconds): runs failing, or a backlog.
resource "aws_cloudwatch_metric_alarm" "lag" {
  for_each            = { for s in local.table_specs : s.dataset => s }
  alarm_name          = "${local.prefix}-lag-${each.key}"
  alarm_description   = "A file of dataset ${each.key} took more than 2 hours from upload to the lake: are runs failing or behind? (the on-call section of the README)"
  namespace           = "Sluice"
  metric_name         = "LagSeconds"
  dimensions          = { Environment = var.env, Dataset = each.key }
  statistic           = "Maximum"
  period              = 3600
  evaluation_periods  = 1
  threshold           = 7200
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.notifications.arn]
}

# Saved Logs Insights queries for on-call (CloudWatch console, Logs Insights, Queries). The
# functions log JSON; ingest's lines carry the item's span (execution, item, dataset, key).
resource "aws_cloudwatch_query_definition" "file_history" {
  name            = "${local.prefix}/what happened to file X"
  log_group_names = [aws_cloudwatch_log_group.function["queue-generator"].name, aws_cloudwatch_log_group.function["ingest"].name]
  query_string    = <<-EOT
    fields @timestamp, level, fields.message, spans.0.execution, spans.0.dataset, fields.rows_written, fields.rows_quarantined
    | filter @message like /REPLACE-WITH-THE-OBJECT-KEY/
    | sort @timestamp asc
  EOT
}

resource "aws_cloudwatch_query_definition" "execution_failure" {
  name            = "${local.prefix}/why did execution Y fail"
  log_group_names = [for f in keys(local.functions) : aws_cloudwatch_log_group.function[f].name]
  query_string    = <<-EOT
    fields @timestamp, @log, level, fields.message, spans.0.item, spans.0.key
    | filter @message like /REPLACE-WITH-THE-EXECUTION-NAME/ and (level = "ERROR" or level = "WARN" or ispresent(errorType))
    | sort @timestamp asc
  EOT
}

resource "aws_cloudwatch_query_definition" "quarantined_by_reason" {
  name            = "${local.prefix}/rows quarantined by reason today"
  log_group_names = [aws_cloudwatch_log_group.function["ingest"].name]
  query_string    = <<-EOT
    filter fields.message = "rows quarantined"
    | stats sum(fields.rows) as rows by spans.0.dataset, fields.column, fields.reason
    | sort rows desc
  EOT
}

resource "aws_cloudwatch_query_definition" "quarantined_today" {
  name            = "${local.prefix}/rows quarantined by dataset today"
  log_group_names = [aws_cloudwatch_log_group.function["ingest"].name]
  query_string    = <<-EOT
    filter fields.message = "item ingested" and fields.rows_quarantined > 0
    | stats sum(fields.rows_quarantined) as quarantined, count(*) as files by fields.dataset
    | sort quarantined desc
  EOT
}
