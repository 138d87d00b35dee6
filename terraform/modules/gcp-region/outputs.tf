output "worker_group" {
  description = "The regional managed instance group that runs the workers."
  value       = google_compute_region_instance_group_manager.workers.instance_group
}

output "identity" {
  description = "Email of the workers' service account (logs, metrics, image pull, secrets)."
  value       = google_service_account.workers.email
}

output "logs" {
  description = "The Cloud Logging bucket that keeps the workers' logs."
  value       = google_logging_project_bucket_config.workers.id
}

output "dashboard" {
  description = "How to reach the dashboard, /metrics, /livez and /readyz."
  value       = "http://<VM internal IP>:${var.web_port}/ from ${length(var.dashboard_allowed_cidrs) == 0 ? "nowhere (dashboard_allowed_cidrs is empty)" : join(", ", var.dashboard_allowed_cidrs)}; named port \"dashboard\" of ${google_compute_region_instance_group_manager.workers.instance_group}"
}

output "tern_config" {
  description = "The tern.toml the workers run (tern_config with [web] listen = 0.0.0.0:web_port)."
  value       = module.worker.tern_config
}
