resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_144:Cross-region replication is a disaster-recovery decision per deployment, not a default; raw files stay versioned in place.
  #checkov:skip=CKV_AWS_18:Access logging needs a separate log bucket per account; CloudTrail data events are the recommended audit trail and are account-wide.
  #checkov:skip=CKV2_AWS_62:Only the raw bucket needs event notifications (EventBridge, below); the lake, extracts and Athena buckets are written by the pipeline itself.
  for_each      = local.buckets
  bucket        = each.value
  force_destroy = false
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each                = local.buckets
  bucket                  = aws_s3_bucket.this[each.key].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = local.buckets
  bucket   = aws_s3_bucket.this[each.key].id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = local.buckets
  bucket   = aws_s3_bucket.this[each.key].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.main.arn
    }
    bucket_key_enabled = true
  }
}

# Versioning everywhere: raw files are kept in every version (auditors), and an overwritten
# curated object can be recovered.
resource "aws_s3_bucket_versioning" "this" {
  for_each = local.buckets
  bucket   = aws_s3_bucket.this[each.key].id
  versioning_configuration {
    status = "Enabled"
  }
}

data "aws_iam_policy_document" "tls_only" {
  for_each = local.buckets
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:GetObject", "s3:PutObject", "s3:ListBucket", "s3:DeleteObject", "s3:GetObjectVersion"]
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
    resources = [aws_s3_bucket.this[each.key].arn, "${aws_s3_bucket.this[each.key].arn}/*"]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "tls_only" {
  for_each   = local.buckets
  bucket     = aws_s3_bucket.this[each.key].id
  policy     = data.aws_iam_policy_document.tls_only[each.key].json
  depends_on = [aws_s3_bucket_public_access_block.this]
}

# Every bucket: aborted multipart uploads and old versions go away. The lake: manifests are
# temporary, quarantine is kept var.quarantine_retention_days. Athena results: 30 days.
resource "aws_s3_bucket_lifecycle_configuration" "this" {
  #checkov:skip=CKV_AWS_300:The first (static, whole-bucket) rule aborts incomplete uploads after 2 days in every bucket; checkov 3.3.30 drops static rules when a block also has dynamic ones.
  for_each = local.buckets
  bucket   = aws_s3_bucket.this[each.key].id

  rule {
    id     = "old-versions-and-aborted-uploads"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = each.key == "raw" ? 365 : 90
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 2
    }
  }

  # Temporary or retained prefixes, per bucket (local.expiring_prefixes).
  dynamic "rule" {
    for_each = { for r in local.expiring_prefixes : r.id => r if r.bucket == each.key }
    content {
      id     = rule.key
      status = "Enabled"
      filter {
        prefix = rule.value.prefix
      }
      expiration {
        days = rule.value.days
      }
      abort_incomplete_multipart_upload {
        days_after_initiation = 2
      }
    }
  }
}

locals {
  expiring_prefixes = [
    # Kept as long as Step Functions keeps the execution (90 days): a redrive (up to 14 days
    # after a stop that can come long after the start) and its report read them.
    { bucket = "lake", id = "manifests-are-temporary", prefix = "manifests/", days = 90 },
    { bucket = "lake", id = "quarantine-retention", prefix = "quarantine/", days = var.quarantine_retention_days },
    # Parts of an ingest that never published (a bad file, a crash); a retry writes them again,
    # a publish copies and removes them (functions/src/stage.rs).
    { bucket = "lake", id = "staged-outputs-are-temporary", prefix = "_sluice/staging/", days = 7 },
    { bucket = "athena", id = "query-results-are-temporary", prefix = "results/", days = 30 },
  ]
}

# Uploads to the raw bucket reach the state machine through EventBridge ("Object Created").
resource "aws_s3_bucket_notification" "raw" {
  bucket      = aws_s3_bucket.this["raw"].id
  eventbridge = true
}
