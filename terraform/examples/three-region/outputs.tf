output "flows" {
  description = "Every flow, as \"source->target\"."
  value       = [for f in module.topology.flows : f.name]
}

output "workers" {
  description = "Per region: cloud, flows run there, and the worker group, identity, logs and dashboard its cloud module reports."
  value = {
    for alias, w in module.topology.workers : alias => merge(w, {
      worker_group = try(module.aws_region[alias].worker_group, module.gcp_region[alias].worker_group, module.azure_region[alias].worker_group)
      identity     = try(module.aws_region[alias].identity, module.gcp_region[alias].identity, module.azure_region[alias].identity)
      logs         = try(module.aws_region[alias].logs, module.gcp_region[alias].logs, module.azure_region[alias].logs)
      dashboard    = try(module.aws_region[alias].dashboard, module.gcp_region[alias].dashboard, module.azure_region[alias].dashboard)
    })
  }
}
