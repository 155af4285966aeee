# Shapes match `sluice bootstrap` (crates/aws/src/bootstrap.rs).
resource "aws_dynamodb_table" "specs" {
  name         = "${local.prefix}-specs"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "dataset"

  attribute {
    name = "dataset"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }
  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.main.arn
  }
}

resource "aws_dynamodb_table" "work" {
  name         = "${local.prefix}-work"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "id"

  attribute {
    name = "id"
    type = "S"
  }
  attribute {
    name = "open_status"
    type = "S"
  }
  attribute {
    name = "updated_at"
    type = "N"
  }
  attribute {
    name = "batch"
    type = "S"
  }

  # Sparse: only open items (queued, running, failed) carry open_status, so done items, the
  # exactly-once record of every object ever ingested, never crowd one hot index partition.
  # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-indexes-general-sparse-indexes.html
  global_secondary_index {
    name            = "open-status-index"
    projection_type = "ALL"
    key_schema {
      attribute_name = "open_status"
      key_type       = "HASH"
    }
    key_schema {
      attribute_name = "updated_at"
      key_type       = "RANGE"
    }
  }
  global_secondary_index {
    name            = "batch-index"
    projection_type = "ALL"
    key_schema {
      attribute_name = "batch"
      key_type       = "HASH"
    }
    key_schema {
      attribute_name = "id"
      key_type       = "RANGE"
    }
  }

  # Done items expire after SSM work_retention_days; the reconciliation never lists objects
  # older than that, so an expired record is never mistaken for an object never seen.
  # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/TTL.html
  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }
  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.main.arn
  }
}

resource "aws_dynamodb_table" "locks" {
  name         = "${local.prefix}-locks"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "name"

  attribute {
    name = "name"
    type = "S"
  }

  # Expired leases disappear by themselves (the code never depends on it: an expired lease
  # is taken over whether or not TTL has removed it yet).
  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }
  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.main.arn
  }
}

# The table specs of config/tables/, loaded as `sluice bootstrap` loads them.
resource "aws_dynamodb_table_item" "spec" {
  for_each   = fileset("${path.module}/../config/tables", "*.json")
  table_name = aws_dynamodb_table.specs.name
  hash_key   = aws_dynamodb_table.specs.hash_key
  item = jsonencode({
    dataset  = { S = jsondecode(file("${path.module}/../config/tables/${each.value}")).dataset }
    document = { S = file("${path.module}/../config/tables/${each.value}") }
    version  = { N = "1" }
  })
}

# The target data models of config/models/, where the normalize function reads them (as
# `sluice bootstrap` puts them). Their Glue tables are created by the function on its first
# run, from the model, like the datasets' tables from their specs.
resource "aws_s3_object" "model" {
  for_each     = fileset("${path.module}/../config/models", "*.json")
  bucket       = aws_s3_bucket.this["lake"].id
  key          = "config/models/${jsondecode(file("${path.module}/../config/models/${each.value}")).model}.json"
  content      = file("${path.module}/../config/models/${each.value}")
  content_type = "application/json"
  kms_key_id   = aws_kms_key.main.arn
}
