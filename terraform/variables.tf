variable "env" {
  description = "Environment name; every resource name derives from it (sluice-<env>-raw, ...), as `sluice bootstrap` does."
  type        = string
  default     = "dev"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.env))
    error_message = "env: lowercase letters, digits and dashes, 2 to 21 characters, starting with a letter."
  }
}

variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "us-east-1"
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions per function, e.g. { ingest = 20, notify = 5 }; null (the default) reserves none. Reserving takes from the account's unreserved pool, which a new account may not have (AWS keeps at least 100 unreserved)."
  type        = map(number)
  default     = null
}

variable "artifacts_dir" {
  description = "Where `cargo lambda build --release --arm64 --output-format zip` put the functions (<dir>/<function>/bootstrap.zip)."
  type        = string
  default     = "../target/lambda"
}

variable "notification_email" {
  description = "Support address subscribed to the notification topic (it must confirm the subscription e-mail). null: no subscription."
  type        = string
  default     = null
}

variable "log_retention_days" {
  description = "Retention of the functions' and the state machine's log groups (days)."
  type        = number
  default     = 365
}

variable "hourly_schedule" {
  description = "When the hourly ingestion runs (EventBridge schedule expression, UTC)."
  type        = string
  default     = "cron(5 * * * ? *)"
}

variable "lookback_hours" {
  description = "Hours before the watermark that the hourly run lists again, for late files."
  type        = number
  default     = 6
}

variable "lease_seconds" {
  description = "Lease of the pipeline lock, renewed while ingest works; a holder no longer running, or past its lease and not running, is taken over."
  type        = number
  default     = 1800
  validation {
    condition     = var.lease_seconds >= 960
    error_message = "lease_seconds must be at least 960: the longest function timeout (900 s) plus retry backoff."
  }
}

variable "quarantine_retention_days" {
  description = "Days quarantine records are kept in the lake bucket."
  type        = number
  default     = 400
}

variable "secure_settings" {
  description = "Each function's secrets (function => name => value), stored as SSM SecureString parameters under /sluice-secrets/<env>/<function>/ and readable by that function alone."
  type        = map(map(string))
  default     = {}
  sensitive   = true
  validation {
    condition     = alltrue([for f in keys(var.secure_settings) : contains(["queue-generator", "in-progress-check", "ingest", "notify", "extract", "normalize", "load"], f)])
    error_message = "secure_settings is keyed by function: queue-generator, in-progress-check, ingest, notify, extract, normalize or load."
  }
}

variable "drain_schedule" {
  description = "How often the work items registered by S3 events are ingested (EventBridge schedule expression)."
  type        = string
  default     = "rate(5 minutes)"
}

variable "reconcile_schedule" {
  description = "When the reconciliation of the raw bucket with the work table runs (EventBridge schedule expression, UTC)."
  type        = string
  default     = "cron(35 */6 * * ? *)"
}

variable "extract_schedule" {
  description = "When the monthly bank extract runs (EventBridge schedule expression, UTC): the 1st of the month, 01:00."
  type        = string
  default     = "cron(0 1 1 * ? *)"
}

variable "sftp_users" {
  description = "Users of the external system that fetch extracts over SFTP: name => SSH public key. Read-only access to the extracts bucket."
  type        = map(string)
  default     = {}
}

variable "load_target" {
  description = "The load target to deploy (config/targets/<name>.json), e.g. app_mysql; empty: no database load"
  type        = string
  default     = ""
}

variable "database_engine" {
  description = "Create an Aurora Serverless v2 cluster for the load target: aurora-mysql or aurora-postgresql; empty: bring your own (database_secret_arn)"
  type        = string
  default     = ""
  validation {
    condition     = contains(["", "aurora-mysql", "aurora-postgresql"], var.database_engine)
    error_message = "database_engine is aurora-mysql, aurora-postgresql or empty."
  }
}

variable "database_secret_arn" {
  description = "Bring your own database: the ARN of its Secrets Manager secret (host, port, username, password, dbname, as RDS writes it)"
  type        = string
  default     = ""
}

variable "database_cidr" {
  description = "Bring your own database: the CIDR the load function may reach it in"
  type        = string
  default     = null
}

variable "vpc_id" {
  description = "The VPC of the application database (needed when load_target is set)"
  type        = string
  default     = ""
}

variable "private_subnet_ids" {
  description = "Private subnets for the load function, the database and the interface endpoints"
  type        = list(string)
  default     = []
}

variable "private_route_table_ids" {
  description = "Route tables of those subnets (the S3 and DynamoDB gateway endpoints)"
  type        = list(string)
  default     = []
}

variable "database_min_acu" {
  description = "Aurora Serverless v2 capacity, minimum (ACU)"
  type        = number
  default     = 0.5
}

variable "database_max_acu" {
  description = "Aurora Serverless v2 capacity, maximum (ACU)"
  type        = number
  default     = 8
}

variable "database_backup_days" {
  description = "Automated backup retention of the created cluster (days)"
  type        = number
  default     = 7
}

variable "dms_source" {
  description = "AWS DMS from an on-premises or RDS database into the raw bucket (dms/<schema>/<table>/): engine_name (sqlserver, oracle, mysql, postgres…), the ARN of the secret holding its connection, database_name, and the CIDR and port DMS reaches it at; null: no DMS"
  type = object({
    engine_name   = string
    secret_arn    = string
    database_name = string
    cidr          = string
    port          = number
  })
  default = null
}

variable "dms_max_capacity_units" {
  description = "DMS Serverless: the most DMS capacity units (DCU) the replication may scale to"
  type        = number
  default     = 4
}

variable "create_dms_vpc_role" {
  description = "Create the account's dms-vpc-role (DMS needs it by that name; set false when the account has it)"
  type        = bool
  default     = true
}

variable "quarantine_rate_alarm" {
  description = "Share of a dataset's rows read in an hour (0 to 1) whose quarantine raises its quarantine-rate alarm."
  type        = number
  default     = 0.05
  validation {
    condition     = var.quarantine_rate_alarm > 0 && var.quarantine_rate_alarm <= 1
    error_message = "quarantine_rate_alarm is a share of the rows: more than 0, at most 1."
  }
}
