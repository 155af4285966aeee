terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80.0, < 7.0.0"
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
