output "configs" {
  description = "tern.toml text per region that runs workers (regions that receive at least one flow), keyed by alias. Pass it to the region's cloud module as tern_config."
  value       = local.configs

  precondition {
    condition     = local.identity_loop == ""
    error_message = local.identity_loop
  }
}

output "flows" {
  description = "Every flow, sorted by name (\"source->target\"), with its settings and origin (\"pattern\" or \"flows\")."
  value       = local.flow_list

  precondition {
    condition     = local.identity_loop == ""
    error_message = local.identity_loop
  }
}

output "workers" {
  description = "Per region that runs workers: cloud, cloud_region, the names of the flows it runs (those whose target it is) and the clusters it connects to."
  value       = local.workers
}

output "secret_env" {
  description = "Per region that runs workers: environment variable => secret name, for the credentials of every cluster those workers connect to. Pass it to the region's cloud module as secret_env; the secrets must exist under these names in that cloud's secret store."
  value       = local.secret_env
}

output "regions_without_workers" {
  description = "Regions that receive no flow, so run no workers (for example the active side of an active-passive pair)."
  value       = [for a in local.aliases : a if !contains(local.worker_regions, a)]
}
