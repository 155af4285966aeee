# The Glue database only. Tables come from one place: the table specs (config/tables/),
# through `ensure_table` in the ingest function (and `sluice bootstrap` locally). A spec is the
# single source of truth for a dataset's columns; declaring the same columns here would be a
# second copy that drifts, and a new dataset would need a deploy instead of a spec.
resource "aws_glue_catalog_database" "lake" {
  name        = local.glue_database
  description = "Sluice ${var.env}: curated datasets (tables created from the table specs)"
}

resource "aws_athena_workgroup" "analysts" {
  name          = "${local.prefix}-analysts"
  force_destroy = false
  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    result_configuration {
      output_location = "s3://${aws_s3_bucket.this["athena"].id}/results/"
      encryption_configuration {
        encryption_option = "SSE_KMS"
        kms_key_arn       = aws_kms_key.main.arn
      }
    }
  }
}
