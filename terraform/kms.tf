# One customer-managed key encrypts the buckets, tables, parameters, topic, logs and Athena
# results of this environment.
resource "aws_kms_key" "main" {
  description             = "Sluice ${var.env}: data at rest"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "main" {
  name          = "alias/${local.prefix}"
  target_key_id = aws_kms_key.main.key_id
}

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_109:A key policy: its "*" resource means this key only, and the account root must administer its own key.
  #checkov:skip=CKV_AWS_111:A key policy: its "*" resource means this key only; service use is limited to this account by aws:SourceAccount.
  #checkov:skip=CKV_AWS_356:A key policy: its "*" resource means this key only (AWS requires "*" in key policies).
  statement {
    sid = "AccountAdministers"
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
    actions = [
      "kms:CreateAlias", "kms:CreateGrant", "kms:DescribeKey", "kms:EnableKey", "kms:EnableKeyRotation",
      "kms:ListAliases", "kms:ListGrants", "kms:ListKeyPolicies", "kms:ListResourceTags", "kms:PutKeyPolicy",
      "kms:UpdateAlias", "kms:UpdateKeyDescription", "kms:RevokeGrant", "kms:DisableKey", "kms:DisableKeyRotation",
      "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:DeleteAlias", "kms:TagResource", "kms:UntagResource",
      "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion", "kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom",
      "kms:ReEncryptTo", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext",
    ]
    # A key policy's resource is the key itself: AWS requires "*" here.
    resources = ["*"]
  }

  statement {
    sid = "ServicesUseTheKey"
    principals {
      type        = "Service"
      identifiers = ["sns.amazonaws.com", "events.amazonaws.com", "states.amazonaws.com"]
    }
    actions = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:DescribeKey"]
    # A key policy's resource is the key itself: AWS requires "*" here.
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  # CloudWatch Logs encrypts a log group's data under the key with the group's ARN as the
  # encryption context; AWS documents this condition for it (not aws:SourceAccount):
  # https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html
  # Step Functions' execution logs go to a CloudWatch Logs group, which this covers; the
  # delivery.logs service principal needs the key only for S3 and Firehose destinations.
  statement {
    sid = "LogsEncryptThisAccountsLogGroups"
    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:DescribeKey"]
    # A key policy's resource is the key itself: AWS requires "*" here.
    resources = ["*"]
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:*"]
    }
  }

  # CloudWatch alarms publish to the KMS-encrypted SNS topic: CloudWatch needs the key, or
  # every notification fails with KMS AccessDenied in the alarm history.
  # https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services
  statement {
    sid = "AlarmsPublishToTheEncryptedTopic"
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    actions = ["kms:Decrypt", "kms:GenerateDataKey"]
    # A key policy's resource is the key itself: AWS requires "*" here.
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}
