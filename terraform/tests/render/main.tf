# Renders what an example's workers would run, without any cloud: the topology module with the
# example's regions.auto.tfvars, then the worker-config rewrite every cloud module applies.
# terraform/tests/run.py applies this with -var-file and runs `tern check --offline` on the
# results. Provider-free, so it initialises and applies offline.

terraform {
  required_version = ">= 1.9.0, < 2.0.0"
}

variable "regions" {
  description = "The example's regions map (extra attributes such as network are dropped by the topology module's type)."
  type        = any
}

variable "pattern" {
  description = "The example's pattern."
  type        = string
  default     = "none"
}

variable "flows" {
  description = "The example's explicit flows."
  type        = any
  default     = []
}

variable "flow_defaults" {
  description = "The example's flow defaults."
  type        = any
  default     = {}
}

variable "web_port" {
  description = "The example's web port."
  type        = number
  default     = 8080
}

module "topology" {
  source = "../../modules/topology"

  regions       = var.regions
  pattern       = var.pattern
  flows         = var.flows
  flow_defaults = var.flow_defaults
  web_port      = var.web_port
}

module "worker" {
  source   = "../../modules/worker-config"
  for_each = module.topology.configs

  tern_config = each.value
  web_port    = var.web_port
  secret_env  = module.topology.secret_env[each.key]
}

output "configs" {
  description = "Per region, the tern.toml its containers run."
  value       = { for alias, w in module.worker : alias => w.tern_config }
}

output "flows" {
  description = "Every flow name."
  value       = [for f in module.topology.flows : f.name]
}

output "workers" {
  description = "The topology's workers."
  value       = module.topology.workers
}

output "secret_env" {
  description = "The topology's secret references per region."
  value       = module.topology.secret_env
}

output "probes" {
  description = "Per region, the paths its platform probes: liveness (restarts) and readiness (traffic)."
  value       = { for alias, w in module.worker : alias => { liveness = w.liveness_path, readiness = w.readiness_path } }
}
