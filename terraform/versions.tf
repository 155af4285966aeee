terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      # 6.x only: 6.x deprecates a global secondary index's hash_key/range_key for key_schema
      # blocks, which 5.x lacks, so no one configuration is silent on both majors; the work
      # table uses key_schema. 6.40.0 is the lowest release checked to have it
      # (scripts/provider-schema; the Terraform schema test holds the configuration to 6.40.0
      # and 6.66.0). 5.95.0 was the floor for TransferSecurityPolicy-2025-03 (sftp.tf).
      version = ">= 6.40.0, < 7.0.0"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      project     = "sluice"
      environment = var.env
    }
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
