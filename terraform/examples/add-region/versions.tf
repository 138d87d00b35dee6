terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0.0"
    }
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0.0"
    }
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.0.0"
    }
  }
}

# One configuration per cloud serves every region of that cloud: the AWS resources set their
# own region (AWS provider 6), and GCP and Azure resources name their region or location.
provider "aws" {
  region = "us-east-1"
}

provider "google" {
  project = var.gcp_project
}

provider "azurerm" {
  features {}
  subscription_id = var.azure_subscription_id
}
