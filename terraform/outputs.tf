output "state_machine_arn" {
  description = "The ingestion state machine (console: Step Functions → this ARN → Redrive)."
  value       = aws_sfn_state_machine.ingest.arn
}

output "buckets" {
  description = "Bucket names: raw (uploads), lake (curated + quarantine), extracts, athena (query results)."
  value       = { for k, b in aws_s3_bucket.this : k => b.id }
}

output "tables" {
  description = "DynamoDB tables: specs, work items (and the watermark), locks."
  value = {
    specs = aws_dynamodb_table.specs.name
    work  = aws_dynamodb_table.work.name
    locks = aws_dynamodb_table.locks.name
  }
}

output "functions" {
  description = "Lambda function names."
  value       = { for k, f in aws_lambda_function.function : k => f.function_name }
}

output "notification_topic_arn" {
  description = "SNS topic for run reports and failures; subscribe the support address to it."
  value       = aws_sns_topic.notifications.arn
}

output "glue_database" {
  description = "Glue database Athena queries (tables are created from the table specs)."
  value       = aws_glue_catalog_database.lake.name
}

output "athena_workgroup" {
  description = "Athena workgroup for analysts (encrypted results)."
  value       = aws_athena_workgroup.analysts.name
}

output "oncall_policy_arn" {
  description = "Attach to the on-call group or role: inspect executions and work items, redrive."
  value       = aws_iam_policy.oncall.arn
}

output "settings_path" {
  description = "SSM path of the settings."
  value       = local.settings_path
}

output "extract_state_machine_arn" {
  description = "The monthly bank extract state machine."
  value       = aws_sfn_state_machine.extract.arn
}

output "sftp_endpoint" {
  description = "Host name the external system fetches extracts from over SFTP."
  value       = aws_transfer_server.extracts.endpoint
}
