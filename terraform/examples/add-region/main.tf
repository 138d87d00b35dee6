# Tern across regions and clouds. Everything specific to a deployment is in regions.auto.tfvars:
# the regions map and the pattern decide the flows (module "topology"), and each region that
# receives flows gets workers from its cloud's module, which run the flows into that region.
# Adding a region is one more entry in that map (compare ../three-region and ../add-region).

module "topology" {
  source = "../../modules/topology"

  regions       = var.regions
  pattern       = var.pattern
  flows         = var.flows
  flow_defaults = var.flow_defaults
  web_port      = var.web_port
}

locals {
  # Regions that run workers, per cloud (a region that receives no flow runs none).
  workers_in = {
    for cloud in ["aws", "gcp", "azure"] : cloud => {
      for alias, w in module.topology.workers : alias => w if w.cloud == cloud
    }
  }
}

module "aws_region" {
  source   = "../../modules/aws-region"
  for_each = local.workers_in["aws"]

  name                    = "tern-${each.key}"
  cloud_region            = each.value.cloud_region
  tern_config             = module.topology.configs[each.key]
  secret_env              = module.topology.secret_env[each.key]
  secret_store            = var.regions[each.key].secret_store
  network                 = var.regions[each.key].network
  image                   = var.image["aws"]
  worker_count            = var.worker_count
  web_port                = var.web_port
  dashboard_allowed_cidrs = var.dashboard_allowed_cidrs
  labels                  = { service = "tern", region = each.key }
}

module "gcp_region" {
  source   = "../../modules/gcp-region"
  for_each = local.workers_in["gcp"]

  name                    = "tern-${each.key}"
  cloud_region            = each.value.cloud_region
  tern_config             = module.topology.configs[each.key]
  secret_env              = module.topology.secret_env[each.key]
  secret_store            = var.regions[each.key].secret_store
  network                 = var.regions[each.key].network
  image                   = var.image["gcp"]
  worker_count            = var.worker_count
  web_port                = var.web_port
  dashboard_allowed_cidrs = var.dashboard_allowed_cidrs
  labels                  = { service = "tern", region = each.key }
}

module "azure_region" {
  source   = "../../modules/azure-region"
  for_each = local.workers_in["azure"]

  name                    = "tern-${each.key}"
  cloud_region            = each.value.cloud_region
  tern_config             = module.topology.configs[each.key]
  secret_env              = module.topology.secret_env[each.key]
  secret_store            = var.regions[each.key].secret_store
  network                 = var.regions[each.key].network
  image                   = var.image["azure"]
  worker_count            = var.worker_count
  web_port                = var.web_port
  dashboard_allowed_cidrs = var.dashboard_allowed_cidrs
  labels                  = { service = "tern", region = each.key }
}
