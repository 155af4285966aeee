# The load step's database end: the application database the `load` function writes
# (config/targets/), and the network the function needs to reach it.
#
# Either Terraform creates an Aurora Serverless v2 cluster (var.database_engine =
# "aurora-mysql" or "aurora-postgresql": KMS-encrypted, TLS required, deletion protection,
# backups, the master password kept and rotated by RDS in Secrets Manager), or you bring your
# own database by the ARN of its secret (var.database_secret_arn, the JSON RDS writes). With
# var.load_target = "" there is no target: the Load state finds none and does nothing.
#
# The load function then runs in the VPC's private subnets with a security group of its own;
# the database's security group admits only that group. Gateway endpoints (S3, DynamoDB) and
# interface endpoints (Secrets Manager, SSM, KMS, STS, Step Functions, X-Ray) let it reach AWS
# with no NAT gateway.

locals {
  load_enabled    = var.load_target != ""
  create_database = local.load_enabled && var.database_engine != ""
  database_port   = var.database_engine == "aurora-postgresql" ? 5432 : 3306
  # The secret the load reads: the managed master secret of the cluster created here, or yours.
  database_secret_arn = local.create_database ? aws_rds_cluster.app[0].master_user_secret[0].secret_arn : var.database_secret_arn
  target_document     = local.load_enabled ? jsondecode(file("${path.module}/../config/targets/${var.load_target}.json")) : null
  interface_endpoints = toset(["secretsmanager", "ssm", "kms", "sts", "states", "xray"])
}

# The target document, with its secret set to the one deployed here.
resource "aws_s3_object" "target" {
  count        = local.load_enabled ? 1 : 0
  bucket       = aws_s3_bucket.this["lake"].id
  key          = "config/targets/${var.load_target}.json"
  content_type = "application/json"
  content = jsonencode(merge(local.target_document, {
    connection = merge(local.target_document.connection, { secret = local.database_secret_arn })
  }))
}

resource "aws_security_group" "load" {
  count       = local.load_enabled ? 1 : 0
  name        = "${local.prefix}-load"
  description = "The load function: out to the database and to the VPC endpoints only"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_egress_rule" "load_to_database" {
  count                        = local.load_enabled ? 1 : 0
  security_group_id            = aws_security_group.load[0].id
  description                  = "The application database"
  ip_protocol                  = "tcp"
  from_port                    = local.database_port
  to_port                      = local.database_port
  referenced_security_group_id = local.create_database ? aws_security_group.database[0].id : null
  cidr_ipv4                    = local.create_database ? null : var.database_cidr
}

resource "aws_vpc_security_group_egress_rule" "load_to_endpoints" {
  count                        = local.load_enabled ? 1 : 0
  security_group_id            = aws_security_group.load[0].id
  description                  = "AWS APIs through the interface endpoints"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.endpoints[0].id
}

resource "aws_vpc_security_group_egress_rule" "load_to_gateways" {
  count             = local.load_enabled ? 1 : 0
  security_group_id = aws_security_group.load[0].id
  description       = "S3 and DynamoDB through the gateway endpoints"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = aws_vpc_endpoint.gateway["s3"].prefix_list_id
}

resource "aws_vpc_security_group_egress_rule" "load_to_dynamodb" {
  count             = local.load_enabled ? 1 : 0
  security_group_id = aws_security_group.load[0].id
  description       = "DynamoDB through its gateway endpoint"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = aws_vpc_endpoint.gateway["dynamodb"].prefix_list_id
}

resource "aws_security_group" "endpoints" {
  count       = local.load_enabled ? 1 : 0
  name        = "${local.prefix}-endpoints"
  description = "Interface endpoints: HTTPS from the load function only"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_from_load" {
  count                        = local.load_enabled ? 1 : 0
  security_group_id            = aws_security_group.endpoints[0].id
  description                  = "HTTPS from the load function"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.load[0].id
}

resource "aws_vpc_endpoint" "gateway" {
  for_each          = local.load_enabled ? toset(["s3", "dynamodb"]) : toset([])
  vpc_id            = var.vpc_id
  service_name      = "com.amazonaws.${var.region}.${each.key}"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = var.private_route_table_ids
}

resource "aws_vpc_endpoint" "interface" {
  for_each            = local.load_enabled ? local.interface_endpoints : toset([])
  vpc_id              = var.vpc_id
  service_name        = "com.amazonaws.${var.region}.${each.key}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = var.private_subnet_ids
  security_group_ids  = [aws_security_group.endpoints[0].id]
  private_dns_enabled = true
}

# ---------------------------------------------------------------------------------------------
# Aurora Serverless v2 (when var.database_engine is set)

resource "aws_security_group" "database" {
  count       = local.create_database ? 1 : 0
  name        = "${local.prefix}-database"
  description = "The application database: from the load function only"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "database_from_load" {
  count                        = local.create_database ? 1 : 0
  security_group_id            = aws_security_group.database[0].id
  description                  = "The load function"
  ip_protocol                  = "tcp"
  from_port                    = local.database_port
  to_port                      = local.database_port
  referenced_security_group_id = aws_security_group.load[0].id
}

resource "aws_db_subnet_group" "app" {
  count      = local.create_database ? 1 : 0
  name       = "${local.prefix}-app"
  subnet_ids = var.private_subnet_ids
}

# TLS required by the server: MySQL `require_secure_transport`, PostgreSQL `rds.force_ssl`
# (https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/AuroraMySQL.Security.html,
# https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/AuroraPostgreSQL.Security.html).
resource "aws_rds_cluster_parameter_group" "app" {
  count       = local.create_database ? 1 : 0
  name        = "${local.prefix}-app"
  family      = var.database_engine == "aurora-postgresql" ? "aurora-postgresql16" : "aurora-mysql8.0"
  description = "Sluice application database: TLS required"
  parameter {
    name  = var.database_engine == "aurora-postgresql" ? "rds.force_ssl" : "require_secure_transport"
    value = var.database_engine == "aurora-postgresql" ? "1" : "ON"
  }
}

resource "aws_rds_cluster" "app" {
  #checkov:skip=CKV2_AWS_8:Backups are the cluster's own (backup_retention_period); an AWS Backup plan is the account's choice.
  count                           = local.create_database ? 1 : 0
  cluster_identifier              = "${local.prefix}-app"
  engine                          = var.database_engine
  engine_mode                     = "provisioned"
  engine_version                  = var.database_engine == "aurora-postgresql" ? "16.4" : "8.0.mysql_aurora.3.08.0"
  database_name                   = "app"
  master_username                 = "sluice_admin"
  # RDS keeps the master password in Secrets Manager, encrypted with our key, and rotates it
  # (every 7 days by default): https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/rds-secrets-manager.html
  manage_master_user_password         = true
  master_user_secret_kms_key_id       = aws_kms_key.main.arn
  storage_encrypted                   = true
  kms_key_id                          = aws_kms_key.main.arn
  deletion_protection                 = true
  backup_retention_period             = var.database_backup_days
  preferred_backup_window             = "03:00-04:00"
  copy_tags_to_snapshot               = true
  skip_final_snapshot                 = false
  final_snapshot_identifier           = "${local.prefix}-app-final"
  iam_database_authentication_enabled = true
  db_subnet_group_name                = aws_db_subnet_group.app[0].name
  db_cluster_parameter_group_name     = aws_rds_cluster_parameter_group.app[0].name
  vpc_security_group_ids              = [aws_security_group.database[0].id]
  enabled_cloudwatch_logs_exports     = var.database_engine == "aurora-postgresql" ? ["postgresql"] : ["audit", "error", "slowquery"]

  serverlessv2_scaling_configuration {
    min_capacity = var.database_min_acu
    max_capacity = var.database_max_acu
  }
}

resource "aws_rds_cluster_instance" "app" {
  count                                 = local.create_database ? 1 : 0
  identifier                            = "${local.prefix}-app-1"
  cluster_identifier                    = aws_rds_cluster.app[0].id
  instance_class                        = "db.serverless"
  engine                                = aws_rds_cluster.app[0].engine
  engine_version                        = aws_rds_cluster.app[0].engine_version
  db_subnet_group_name                  = aws_db_subnet_group.app[0].name
  auto_minor_version_upgrade            = true
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.main.arn
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.rds_monitoring[0].arn
  publicly_accessible                   = false
}

data "aws_iam_policy_document" "rds_monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "rds_monitoring" {
  count              = local.create_database ? 1 : 0
  name               = "${local.prefix}-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.rds_monitoring_assume.json
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  count      = local.create_database ? 1 : 0
  role       = aws_iam_role.rds_monitoring[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}
