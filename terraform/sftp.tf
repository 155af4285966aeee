# The external system fetches the extracts over SFTP (AWS Transfer Family): service-managed
# users with SSH keys from var.sftp_users, each seeing the extracts bucket as "/", read-only.

resource "aws_cloudwatch_log_group" "sftp" {
  name              = "/aws/transfer/${local.prefix}-extracts"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

data "aws_iam_policy_document" "transfer_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["transfer.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "sftp_logging" {
  name               = "${local.prefix}-sftp-logging"
  assume_role_policy = data.aws_iam_policy_document.transfer_assume.json
}

data "aws_iam_policy_document" "sftp_logging" {
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.sftp.arn}:*"]
  }
}

resource "aws_iam_role_policy" "sftp_logging" {
  name   = "${local.prefix}-sftp-logging"
  role   = aws_iam_role.sftp_logging.id
  policy = data.aws_iam_policy_document.sftp_logging.json
}

resource "aws_transfer_server" "extracts" {
  #checkov:skip=CKV_AWS_164:The external system connects from outside AWS; access is by SSH key per user and read-only to one bucket.
  identity_provider_type      = "SERVICE_MANAGED"
  protocols                   = ["SFTP"]
  endpoint_type               = "PUBLIC"
  security_policy_name        = "TransferSecurityPolicy-2025-03"
  logging_role                = aws_iam_role.sftp_logging.arn
  structured_log_destinations = ["${aws_cloudwatch_log_group.sftp.arn}:*"]
  tags = {
    Name = "${local.prefix}-extracts"
  }
}

resource "aws_iam_role" "sftp_user" {
  name               = "${local.prefix}-sftp-user"
  assume_role_policy = data.aws_iam_policy_document.transfer_assume.json
}

data "aws_iam_policy_document" "sftp_user" {
  statement {
    sid       = "ListExtracts"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [aws_s3_bucket.this["extracts"].arn]
  }
  statement {
    sid       = "ReadExtracts"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = ["${aws_s3_bucket.this["extracts"].arn}/*"]
  }
  statement {
    sid       = "Key"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.main.arn]
  }
}

resource "aws_iam_role_policy" "sftp_user" {
  name   = "${local.prefix}-sftp-user"
  role   = aws_iam_role.sftp_user.id
  policy = data.aws_iam_policy_document.sftp_user.json
}

resource "aws_transfer_user" "extracts" {
  for_each            = var.sftp_users
  server_id           = aws_transfer_server.extracts.id
  user_name           = each.key
  role                = aws_iam_role.sftp_user.arn
  home_directory_type = "LOGICAL"
  home_directory_mappings {
    entry  = "/"
    target = "/${aws_s3_bucket.this["extracts"].id}"
  }
}

resource "aws_transfer_ssh_key" "extracts" {
  for_each  = var.sftp_users
  server_id = aws_transfer_server.extracts.id
  user_name = aws_transfer_user.extracts[each.key].user_name
  body      = each.value
}
