# Tern workers on Azure: a Container App (fixed replica count) in its own environment on the
# given subnet, with an internal load balancer. Ingress allows only the given CIDRs, liveness
# probes /livez and readiness /readyz, secrets are Key Vault references resolved with a user-assigned identity when
# a replica starts, and logs and metrics go to a Log Analytics workspace and Azure Monitor.

module "worker" {
  source = "../worker-config"

  tern_config = var.tern_config
  web_port    = var.web_port
  secret_env  = var.secret_env
  log_level   = var.log_level
}

locals {
  tags = merge(var.labels, { tern-worker-group = var.name })

  image_host = split("/", var.image)[0]

  # Container App secret names: lowercase letters, digits and '-'.
  secret_names = { for k in keys(var.secret_env) : k => lower(replace(k, "_", "-")) }

  # /subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.KeyVault/vaults/<name>
  vault_id_parts = var.secret_store == null ? [] : split("/", var.secret_store)
}

data "azurerm_key_vault" "secrets" {
  count = length(var.secret_env) > 0 ? 1 : 0

  name                = local.vault_id_parts[8]
  resource_group_name = local.vault_id_parts[4]

  lifecycle {
    precondition {
      condition     = var.secret_store != null && can(regex("^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft.KeyVault/vaults/[^/]+$", var.secret_store))
      error_message = "secret_env names secrets, so secret_store must be the resource ID of their Key Vault (/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.KeyVault/vaults/<name>); got ${jsonencode(var.secret_store)}."
    }
  }
}

resource "azurerm_resource_group" "workers" {
  name     = "rg-${var.name}"
  location = var.cloud_region
  tags     = local.tags
}

resource "azurerm_log_analytics_workspace" "workers" {
  name                = "log-${var.name}"
  location            = azurerm_resource_group.workers.location
  resource_group_name = azurerm_resource_group.workers.name
  sku                 = "PerGB2018"
  retention_in_days   = var.log_retention_days
  tags                = local.tags

  lifecycle {
    precondition {
      condition     = var.log_retention_days >= 30 && var.log_retention_days <= 730
      error_message = "log_retention_days must be 30 to 730 for a Log Analytics workspace; got ${var.log_retention_days}."
    }
  }
}

resource "azurerm_user_assigned_identity" "workers" {
  name                = "id-${var.name}"
  location            = azurerm_resource_group.workers.location
  resource_group_name = azurerm_resource_group.workers.name
  tags                = local.tags
}

# One role assignment per secret, scoped to that secret: the workers' identity may read the
# secrets this module names and nothing else in the vault.
resource "azurerm_role_assignment" "read_secrets" {
  for_each = toset(values(var.secret_env))

  scope                = "${data.azurerm_key_vault.secrets[0].id}/secrets/${each.value}"
  role_definition_name = "Key Vault Secrets User"
  principal_id         = azurerm_user_assigned_identity.workers.principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_container_app_environment" "workers" {
  name                           = "cae-${var.name}"
  location                       = azurerm_resource_group.workers.location
  resource_group_name            = azurerm_resource_group.workers.name
  log_analytics_workspace_id     = azurerm_log_analytics_workspace.workers.id
  infrastructure_subnet_id       = var.network.subnet_ids[0]
  internal_load_balancer_enabled = true
  tags                           = local.tags

  workload_profile {
    name                  = "Consumption"
    workload_profile_type = "Consumption"
  }

  lifecycle {
    precondition {
      condition     = var.network.id == null || startswith(lower(var.network.subnet_ids[0]), "${lower(coalesce(var.network.id, "-"))}/subnets/")
      error_message = "network.subnet_ids[0] is not a subnet of network.id (${coalesce(var.network.id, "-")})."
    }
  }
}

resource "azurerm_container_app" "workers" {
  name                         = var.name
  container_app_environment_id = azurerm_container_app_environment.workers.id
  resource_group_name          = azurerm_resource_group.workers.name
  revision_mode                = "Single"
  workload_profile_name        = "Consumption"
  tags                         = local.tags

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.workers.id]
  }

  # A private Azure Container Registry is pulled with the workers' identity (grant it AcrPull).
  dynamic "registry" {
    for_each = endswith(local.image_host, ".azurecr.io") ? [local.image_host] : []
    content {
      server   = registry.value
      identity = azurerm_user_assigned_identity.workers.id
    }
  }

  dynamic "secret" {
    for_each = var.secret_env
    content {
      name                = local.secret_names[secret.key]
      key_vault_secret_id = "${data.azurerm_key_vault.secrets[0].vault_uri}secrets/${secret.value}"
      identity            = azurerm_user_assigned_identity.workers.id
    }
  }

  template {
    # A fixed number of always-running replicas: replication is not request-driven.
    min_replicas = var.worker_count
    max_replicas = var.worker_count

    container {
      name   = "tern"
      image  = var.image
      cpu    = var.cpu
      memory = "${var.memory_mib / 1024}Gi"

      dynamic "env" {
        for_each = module.worker.environment
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = var.secret_env
        content {
          name        = env.key
          secret_name = local.secret_names[env.key]
        }
      }

      # Liveness restarts a replica after three failures 30 s apart: /livez answers while the
      # process serves, so an outage of a remote cluster restarts nothing.
      liveness_probe {
        transport               = "HTTP"
        port                    = var.web_port
        path                    = module.worker.liveness_path
        initial_delay           = 30
        interval_seconds        = 30
        timeout                 = 5
        failure_count_threshold = 3
      }

      # Readiness takes a replica whose flows report errors out of the ingress's traffic.
      readiness_probe {
        transport               = "HTTP"
        port                    = var.web_port
        path                    = module.worker.readiness_path
        interval_seconds        = 10
        timeout                 = 5
        failure_count_threshold = 3
      }

      startup_probe {
        transport               = "TCP"
        port                    = var.web_port
        interval_seconds        = 5
        failure_count_threshold = 10
      }
    }
  }

  # The environment's load balancer is internal: "external" here means reachable from the
  # VNet, and the IP restrictions narrow that to dashboard_allowed_cidrs.
  ingress {
    external_enabled = true
    target_port      = var.web_port
    transport        = "http"

    traffic_weight {
      latest_revision = true
      percentage      = 100
    }

    dynamic "ip_security_restriction" {
      for_each = var.dashboard_allowed_cidrs
      content {
        name             = "dashboard-${ip_security_restriction.key}"
        description      = "Tern dashboard, /metrics, /livez and /readyz"
        action           = "Allow"
        ip_address_range = ip_security_restriction.value
      }
    }
  }

  depends_on = [azurerm_role_assignment.read_secrets]

  lifecycle {
    precondition {
      condition     = var.memory_mib == var.cpu * 2048
      error_message = "Container Apps runs 2 GiB per vCPU: with cpu = ${var.cpu}, memory_mib must be ${var.cpu * 2048}; got ${var.memory_mib}."
    }
    precondition {
      condition     = length(var.dashboard_allowed_cidrs) > 0
      error_message = "dashboard_allowed_cidrs is empty: Container Apps ingress without IP restrictions would be open to the whole VNet; give at least one CIDR."
    }
  }
}
