terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 6.0 brought the per-resource region argument this module sets on every resource.
      version = ">= 6.0.0"
    }
  }
}
