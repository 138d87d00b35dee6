output "worker_group" {
  description = "Resource ID of the Container App that runs the workers."
  value       = azurerm_container_app.workers.id
}

output "identity" {
  description = "Principal ID of the workers' user-assigned identity (Key Vault secrets; grant it AcrPull on a private registry)."
  value       = azurerm_user_assigned_identity.workers.principal_id
}

output "logs" {
  description = "Resource ID of the Log Analytics workspace that keeps the workers' logs."
  value       = azurerm_log_analytics_workspace.workers.id
}

output "dashboard" {
  description = "How to reach the dashboard, /metrics, /livez and /readyz."
  value       = "https://${azurerm_container_app.workers.ingress[0].fqdn}/ from ${join(", ", var.dashboard_allowed_cidrs)}"
}

output "tern_config" {
  description = "The tern.toml the workers run (tern_config with [web] listen = 0.0.0.0:web_port)."
  value       = module.worker.tern_config
}
