terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      # 5.95.0: the first release that accepts TransferSecurityPolicy-2025-03 (sftp.tf).
      version = ">= 5.95.0, < 7.0.0"
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
