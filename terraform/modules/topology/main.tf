# The topology of a Tern deployment: which flows run, and the tern.toml of each region's workers.
#
# Workers run in the TARGET region of their flows. Replication fetches from the remote source and
# produces to the local target: Tern pipelines fetches over long links, while produce
# acknowledgements stay on the short local path, and the progress commits that follow them
# (delivery is at-least-once) do too. It is MirrorMaker 2's recommended placement as well
# ("consume remotely, produce locally"). A region that receives no flow gets no workers.

locals {
  aliases = sort(keys(var.regions))

  # Pairs generated from the regions' roles. `relayed` lists the copies from third regions a
  # full-mesh flow leaves out: every region receives those directly from their origin.
  pattern_pairs = concat(
    [for p in setproduct(local.aliases, local.aliases) : {
      source  = p[0]
      target  = p[1]
      relayed = [for other in local.aliases : "${other}\\..*" if other != p[0] && other != p[1]]
    } if var.pattern == "full-mesh" && p[0] != p[1]],
    [for p in setproduct(local.aliases, local.aliases) : {
      source  = p[0]
      target  = p[1]
      relayed = []
    } if var.pattern == "hub-and-spoke" && var.regions[p[0]].role != var.regions[p[1]].role],
    [for alias in local.aliases : {
      source  = var.regions[alias].primary
      target  = alias
      relayed = []
    } if var.pattern == "active-passive" && var.regions[alias].role == "passive"],
  )

  pattern_flows = {
    for p in local.pattern_pairs : "${p.source}->${p.target}" => {
      source              = p.source
      target              = p.target
      topics              = var.flow_defaults.topics
      topics_exclude      = tolist(concat(var.flow_defaults.topics_exclude, p.relayed))
      groups              = var.flow_defaults.groups
      groups_exclude      = var.flow_defaults.groups_exclude
      naming              = var.flow_defaults.naming
      sync_group_offsets  = var.flow_defaults.sync_group_offsets
      emit_heartbeats     = var.flow_defaults.emit_heartbeats
      checkpoint_interval = var.flow_defaults.checkpoint_interval
      origin              = "pattern"
    }
  }

  explicit_flows = {
    for f in var.flows : "${f.source}->${f.target}" => {
      source              = f.source
      target              = f.target
      topics              = f.topics != null ? f.topics : var.flow_defaults.topics
      topics_exclude      = f.topics_exclude != null ? f.topics_exclude : var.flow_defaults.topics_exclude
      groups              = f.groups != null ? f.groups : var.flow_defaults.groups
      groups_exclude      = f.groups_exclude != null ? f.groups_exclude : var.flow_defaults.groups_exclude
      naming              = f.naming != null ? f.naming : var.flow_defaults.naming
      sync_group_offsets  = f.sync_group_offsets != null ? f.sync_group_offsets : var.flow_defaults.sync_group_offsets
      emit_heartbeats     = f.emit_heartbeats != null ? f.emit_heartbeats : var.flow_defaults.emit_heartbeats
      checkpoint_interval = f.checkpoint_interval != null ? f.checkpoint_interval : var.flow_defaults.checkpoint_interval
      origin              = "flows"
    }
  }

  # An explicit flow replaces the generated one with the same source and target.
  flows_by_name = merge(local.pattern_flows, local.explicit_flows)
  flow_list     = [for name in sort(keys(local.flows_by_name)) : merge(local.flows_by_name[name], { name = name })]

  # Identity naming keeps topic names, so a cycle of identity flows sends every record around it
  # forever (prefix naming is cycle-safe: a flow skips topics that came from its target). Tern
  # refuses such a cycle within one tern.toml, but each region's file holds only its inbound
  # flows, so the cycle has to be caught here across all of them. Reachability by repeated
  # squaring: reach_N holds the regions reachable in at most N identity hops; 64 hops cover
  # any cycle among the at most 64 regions the regions validation allows.
  identity_next = { for a in local.aliases : a => distinct([for f in local.flow_list : f.target if f.source == a && f.naming == "identity"]) }
  reach_2       = { for a, n in local.identity_next : a => distinct(concat(n, flatten([for b in n : lookup(local.identity_next, b, [])]))) }
  reach_4       = { for a, n in local.reach_2 : a => distinct(concat(n, flatten([for b in n : lookup(local.reach_2, b, [])]))) }
  reach_8       = { for a, n in local.reach_4 : a => distinct(concat(n, flatten([for b in n : lookup(local.reach_4, b, [])]))) }
  reach_16      = { for a, n in local.reach_8 : a => distinct(concat(n, flatten([for b in n : lookup(local.reach_8, b, [])]))) }
  reach_32      = { for a, n in local.reach_16 : a => distinct(concat(n, flatten([for b in n : lookup(local.reach_16, b, [])]))) }
  reach_64      = { for a, n in local.reach_32 : a => distinct(concat(n, flatten([for b in n : lookup(local.reach_32, b, [])]))) }
  looping       = [for a, n in local.reach_64 : a if contains(n, a)]
  looping_flows = [for f in local.flow_list : f.name if f.naming == "identity" && contains(local.looping, f.source) && contains(local.looping, f.target)]
  identity_loop = length(local.looping) == 0 ? "" : "identity naming would loop: records would circulate forever among ${join(", ", local.looping)} through the identity flows ${join(", ", local.looping_flows)}; use naming = \"prefix\" on at least one of them."

  worker_regions = sort(distinct([for f in local.flow_list : f.target]))

  workers = {
    for r in local.worker_regions : r => {
      cloud        = var.regions[r].cloud
      cloud_region = var.regions[r].cloud_region
      flows        = [for f in local.flow_list : f.name if f.target == r]
      # The region's own cluster and the sources of its inbound flows.
      clusters = sort(distinct(concat([r], [for f in local.flow_list : f.source if f.target == r])))
    }
  }

  # Credentials reach the workers as environment variables filled from the cloud's secret store:
  # TERN_<ALIAS>__<NAME>, e.g. TERN_US_EAST__SASL_PASSWORD. The aliases' single hyphens and the
  # double underscore keep these names unique.
  secret_env = {
    for r, w in local.workers : r => merge([
      for c in w.clusters : {
        for name, secret in var.regions[c].credentials : "TERN_${upper(replace(c, "-", "_"))}__${upper(name)}" => secret
      }
    ]...)
  }

  configs = {
    for r, w in local.workers : r => templatefile("${path.module}/templates/tern.toml.tftpl", {
      region   = r
      worker   = var.regions[r]
      clusters = { for c in w.clusters : c => var.regions[c] }
      flows    = [for f in local.flow_list : f if f.target == r]
      web_port = var.web_port
    })
  }
}
