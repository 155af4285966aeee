# AWS DMS: the managed way to read SQL Server, Oracle, MySQL or PostgreSQL on premises into the
# raw bucket, as a full load and then the changes (CDC), for the datasets whose specs are change
# logs under dms/ (`sluice spec import-dms --change-log --prefix dms/` writes them). Off unless
# var.dms_source is set.
#
# DMS Serverless (a replication config: no instance to size) writes CSV with no header line,
# `Op` first on every line (IncludeOpForFullLoad), the commit timestamp next
# (TimestampColumnName = dms_commit_ts), under dms/<schema>/<table>/ with the CDC files in
# yyyy/mm/dd folders: what those specs read. The table mappings come from the specs: one
# selection rule per change-log spec, its schema and table taken from its prefix.
# https://docs.aws.amazon.com/dms/latest/userguide/CHAP_Target.S3.html
# https://docs.aws.amazon.com/dms/latest/userguide/CHAP_Serverless.html

locals {
  dms_enabled = var.dms_source != null
  # dms/<schema>/<table>/ of every change-log spec.
  dms_tables = [
    for s in local.table_specs : {
      schema = split("/", s.source.prefix)[1]
      table  = split("/", s.source.prefix)[2]
    }
    if try(s.change_log, null) != null && length(split("/", try(s.source.prefix, ""))) >= 4 && startswith(try(s.source.prefix, ""), "dms/")
  ]
  dms_table_mappings = jsonencode({
    rules = [
      for i, t in local.dms_tables : {
        "rule-type"      = "selection"
        "rule-id"        = tostring(i + 1)
        "rule-name"      = "${t.schema}.${t.table}"
        "object-locator" = { "schema-name" = t.schema, "table-name" = t.table }
        "rule-action"    = "include"
      }
    ]
  })
}

data "aws_iam_policy_document" "dms_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["dms.amazonaws.com", "dms.${var.region}.amazonaws.com"]
    }
  }
}

# DMS looks for this role by name to manage its network interfaces.
resource "aws_iam_role" "dms_vpc" {
  count              = local.dms_enabled && var.create_dms_vpc_role ? 1 : 0
  name               = "dms-vpc-role"
  assume_role_policy = data.aws_iam_policy_document.dms_assume.json
}

resource "aws_iam_role_policy_attachment" "dms_vpc" {
  count      = local.dms_enabled && var.create_dms_vpc_role ? 1 : 0
  role       = aws_iam_role.dms_vpc[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonDMSVPCManagementRole"
}

# Writing under dms/ in the raw bucket (and nothing else), encrypted with the project's key;
# reading the source's connection secret.
resource "aws_iam_role" "dms" {
  count              = local.dms_enabled ? 1 : 0
  name               = "${local.prefix}-dms"
  assume_role_policy = data.aws_iam_policy_document.dms_assume.json
}

data "aws_iam_policy_document" "dms" {
  statement {
    sid       = "WriteChangeFiles"
    actions   = ["s3:PutObject", "s3:DeleteObject", "s3:PutObjectTagging"]
    resources = ["${aws_s3_bucket.this["raw"].arn}/dms/*"]
  }
  statement {
    sid       = "ListItsFolder"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.this["raw"].arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["dms/*"]
    }
  }
  statement {
    sid       = "TheProjectKey"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.main.arn]
  }
  statement {
    sid       = "TheSourcesSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [local.dms_enabled ? var.dms_source.secret_arn : "arn:${local.partition}:secretsmanager:${var.region}:${local.account_id}:secret:${local.prefix}-no-dms"]
  }
}

resource "aws_iam_role_policy" "dms" {
  count  = local.dms_enabled ? 1 : 0
  name   = "dms"
  role   = aws_iam_role.dms[0].id
  policy = data.aws_iam_policy_document.dms.json
}

resource "aws_dms_replication_subnet_group" "dms" {
  count                                = local.dms_enabled ? 1 : 0
  replication_subnet_group_id          = "${local.prefix}-dms"
  replication_subnet_group_description = "Sluice ${var.env}: DMS Serverless"
  subnet_ids                           = var.private_subnet_ids
  depends_on                           = [aws_iam_role_policy_attachment.dms_vpc]
}

# DMS reaches the source database and S3 (through the gateway endpoint), nothing else.
resource "aws_security_group" "dms" {
  count       = local.dms_enabled ? 1 : 0
  name        = "${local.prefix}-dms"
  description = "DMS Serverless: to the source database and S3"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_egress_rule" "dms_to_source" {
  count             = local.dms_enabled ? 1 : 0
  security_group_id = aws_security_group.dms[0].id
  description       = "The source database"
  ip_protocol       = "tcp"
  from_port         = var.dms_source.port
  to_port           = var.dms_source.port
  cidr_ipv4         = var.dms_source.cidr
}

resource "aws_vpc_security_group_egress_rule" "dms_to_s3" {
  count             = local.dms_enabled && local.load_enabled ? 1 : 0
  security_group_id = aws_security_group.dms[0].id
  description       = "S3 through its gateway endpoint"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = aws_vpc_endpoint.gateway["s3"].prefix_list_id
}

resource "aws_dms_endpoint" "source" {
  count                           = local.dms_enabled ? 1 : 0
  endpoint_id                     = "${local.prefix}-source"
  endpoint_type                   = "source"
  engine_name                     = var.dms_source.engine_name
  database_name                   = var.dms_source.database_name
  secrets_manager_arn             = var.dms_source.secret_arn
  secrets_manager_access_role_arn = aws_iam_role.dms[0].arn
  ssl_mode                        = "require"
  kms_key_arn                     = aws_kms_key.main.arn
}

resource "aws_dms_s3_endpoint" "raw" {
  count                             = local.dms_enabled ? 1 : 0
  endpoint_id                       = "${local.prefix}-raw"
  endpoint_type                     = "target"
  bucket_name                       = aws_s3_bucket.this["raw"].id
  bucket_folder                     = "dms"
  service_access_role_arn           = aws_iam_role.dms[0].arn
  data_format                       = "csv"
  add_column_name                   = false
  include_op_for_full_load          = true
  timestamp_column_name             = "dms_commit_ts"
  date_partition_enabled            = true
  date_partition_sequence           = "YYYYMMDD"
  date_partition_delimiter          = "SLASH"
  cdc_max_batch_interval            = 60
  encryption_mode                   = "SSE_KMS"
  server_side_encryption_kms_key_id = aws_kms_key.main.arn
  kms_key_arn                       = aws_kms_key.main.arn
}

resource "aws_dms_replication_config" "sync" {
  count                         = local.dms_enabled ? 1 : 0
  replication_config_identifier = "${local.prefix}-sync"
  replication_type              = "full-load-and-cdc"
  source_endpoint_arn           = aws_dms_endpoint.source[0].endpoint_arn
  target_endpoint_arn           = aws_dms_s3_endpoint.raw[0].endpoint_arn
  table_mappings                = local.dms_table_mappings
  start_replication             = true

  compute_config {
    replication_subnet_group_id = aws_dms_replication_subnet_group.dms[0].id
    vpc_security_group_ids      = [aws_security_group.dms[0].id]
    max_capacity_units          = var.dms_max_capacity_units
    multi_az                    = false
    kms_key_id                  = aws_kms_key.main.arn
  }
}
