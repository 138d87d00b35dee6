terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    azurerm = {
      source = "hashicorp/azurerm"
      # 4.x: Container Apps with Key Vault secret references and workload profiles.
      version = ">= 4.0.0"
    }
  }
}
