output "tern_config" {
  description = "The tern.toml the container runs: the given one with [web] listen = 0.0.0.0:<web_port>."
  value       = local.tern_config
}

output "config_path" {
  description = "Where the image's entrypoint writes TERN_CONFIG and where `tern run --config` reads it."
  value       = "/etc/tern/tern.toml"
}

output "environment" {
  description = "Plain environment of the container: TERN_CONFIG (the tern.toml text, written to config_path at start), RUST_LOG, and TERN_WEB_PORT (read by the image's HEALTHCHECK)."
  value = {
    TERN_CONFIG   = local.tern_config
    RUST_LOG      = var.log_level
    TERN_WEB_PORT = tostring(var.web_port)
  }
}

output "secret_env" {
  description = "Environment variable => secret name, validated; filled from the cloud's secret store when the container starts."
  value       = var.secret_env
}

output "liveness_path" {
  description = "HTTP path that restarts a worker when it fails: 200 while the process serves, whatever the clusters do (an outage of a remote cluster is not cured by a restart)."
  value       = "/livez"
}

output "readiness_path" {
  description = "HTTP path for traffic and rollouts: 200 while every flow runs without flow-level errors, 503 naming them otherwise."
  value       = "/readyz"
}
