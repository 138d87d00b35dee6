variable "regions" {
  description = <<-EOT
    The Kafka clusters Tern connects, one per cloud region, keyed by cluster alias. The alias names
    the cluster in tern.toml, prefixes remote topics ("us-east.orders") and names cloud resources,
    so it is lowercase letters, digits and single hyphens, at most 24 characters.
      cloud        "aws", "gcp" or "azure": where this region's workers run
      cloud_region the cloud's region name ("us-east-1", "europe-west1", "westeurope")
      bootstrap    comma-separated host:port list of the cluster's brokers
      role         "active" (default), "passive", "hub" or "spoke"; the pattern reads it
      primary      for role "passive": the active region it mirrors
      credentials  secret references, never secret values: credential name ("sasl_username",
                   "sasl_password") => name of a secret in the secret store of every cloud whose
                   workers connect to this cluster
      sasl         SASL over TLS (SASL_SSL) to this cluster: { mechanism = "SCRAM-SHA-512" (default),
                   "SCRAM-SHA-256" or "PLAIN", username = "..." unless credentials has
                   sasl_username }. The password is always credentials.sasl_password, which
                   tern.toml names by its environment variable only.
  EOT
  type = map(object({
    cloud        = string
    cloud_region = string
    bootstrap    = string
    role         = optional(string, "active")
    primary      = optional(string)
    credentials  = optional(map(string), {})
    sasl = optional(object({
      mechanism = optional(string, "SCRAM-SHA-512")
      username  = optional(string)
    }))
  }))

  validation {
    condition     = length(var.regions) > 0 && length(var.regions) <= 64
    error_message = "regions: give between 1 and 64 regions (the identity-loop check follows paths of up to 64 hops); got ${length(var.regions)}."
  }
  validation {
    condition     = alltrue([for alias in keys(var.regions) : can(regex("^[a-z][a-z0-9]*(-[a-z0-9]+)*$", alias)) && length(alias) <= 24])
    error_message = "regions: cluster aliases must be lowercase letters, digits and single hyphens, start with a letter and be at most 24 characters (no '.', which separates the prefix of remote topics); refused: ${join(", ", [for alias in keys(var.regions) : alias if !(can(regex("^[a-z][a-z0-9]*(-[a-z0-9]+)*$", alias)) && length(alias) <= 24)])}."
  }
  validation {
    condition     = alltrue([for r in values(var.regions) : contains(["aws", "gcp", "azure"], r.cloud)])
    error_message = "regions: cloud must be \"aws\", \"gcp\" or \"azure\"; refused: ${join(", ", [for alias, r in var.regions : "${alias} (${jsonencode(r.cloud)})" if !contains(["aws", "gcp", "azure"], r.cloud)])}."
  }
  validation {
    condition     = alltrue([for r in values(var.regions) : contains(["active", "passive", "hub", "spoke"], r.role)])
    error_message = "regions: role must be \"active\", \"passive\", \"hub\" or \"spoke\"; refused: ${join(", ", [for alias, r in var.regions : "${alias} (${jsonencode(r.role)})" if !contains(["active", "passive", "hub", "spoke"], r.role)])}."
  }
  validation {
    condition     = alltrue([for r in values(var.regions) : can(regex("^[a-z0-9-]+$", r.cloud_region))])
    error_message = "regions: cloud_region must be the cloud's region name such as \"us-east-1\", \"europe-west1\" or \"westeurope\"; refused: ${join(", ", [for alias, r in var.regions : "${alias} (${jsonencode(r.cloud_region)})" if !can(regex("^[a-z0-9-]+$", r.cloud_region))])}."
  }
  validation {
    condition = alltrue([for r in values(var.regions) : length(split(",", r.bootstrap)) > 0 && alltrue([
      for hp in split(",", r.bootstrap) : can(regex("^[A-Za-z0-9.-]+:[0-9]{1,5}$", trimspace(hp)))
    ])])
    error_message = "regions: bootstrap must be a comma-separated list of host:port; refused: ${join(", ", [for alias, r in var.regions : "${alias} (${jsonencode(r.bootstrap)})" if !alltrue([for hp in split(",", r.bootstrap) : can(regex("^[A-Za-z0-9.-]+:[0-9]{1,5}$", trimspace(hp)))])])}."
  }
  validation {
    condition = length(distinct([for r in values(var.regions) : "${r.cloud} ${r.cloud_region}"])) == length(var.regions)
    error_message = "regions: each cloud region may appear once; listed more than once: ${join(", ", distinct([
      for r in values(var.regions) : "${r.cloud} ${r.cloud_region} (${join(", ", sort([for alias, s in var.regions : alias if s.cloud == r.cloud && s.cloud_region == r.cloud_region]))})"
      if length([for s in values(var.regions) : s if s.cloud == r.cloud && s.cloud_region == r.cloud_region]) > 1
    ]))}."
  }
  validation {
    condition = length(flatten([for r in values(var.regions) : split(",", r.bootstrap)])) == length(distinct(flatten([
      for r in values(var.regions) : [for hp in split(",", r.bootstrap) : lower(trimspace(hp))]
    ])))
    error_message = "regions: the same cluster is listed twice (it would replicate into itself): regions ${join(" and ", sort([
      for alias, r in var.regions : alias if anytrue([
        for hp in split(",", r.bootstrap) : length([for s in values(var.regions) : s if contains([for x in split(",", s.bootstrap) : lower(trimspace(x))], lower(trimspace(hp)))]) > 1
      ])
      ]))} share the broker addresses ${join(", ", distinct([
      for hp in flatten([for r in values(var.regions) : [for x in split(",", r.bootstrap) : lower(trimspace(x))]]) : hp if length([for y in flatten([for r in values(var.regions) : [for x in split(",", r.bootstrap) : lower(trimspace(x))]]) : y if y == hp]) > 1
    ]))}."
  }
  validation {
    condition     = alltrue([for alias, r in var.regions : r.primary == null || (contains(keys(var.regions), coalesce(r.primary, "-")) && r.primary != alias)])
    error_message = "regions: primary must name another region of this map; refused: ${join(", ", [for alias, r in var.regions : "${alias} (primary = ${jsonencode(r.primary)}; regions: ${join(", ", sort(keys(var.regions)))})" if !(r.primary == null || (contains(keys(var.regions), coalesce(r.primary, "-")) && r.primary != alias))])}."
  }
  validation {
    condition = alltrue(flatten([for r in values(var.regions) : [
      for name, secret in r.credentials : can(regex("^[a-z][a-z0-9_]*$", name)) && can(regex("^[A-Za-z0-9-]{1,127}$", secret))
    ]]))
    error_message = "regions: credentials map a lowercase name (letters, digits, '_') to a secret name of letters, digits and '-' (at most 127, valid in AWS Secrets Manager, GCP Secret Manager and Azure Key Vault alike); put the secret's name here, never its value. Refused: ${join(", ", flatten([for alias, r in var.regions : [for name, secret in r.credentials : "${alias}.credentials.${name}" if !(can(regex("^[a-z][a-z0-9_]*$", name)) && can(regex("^[A-Za-z0-9-]{1,127}$", secret)))]]))}."
  }
  validation {
    condition = alltrue([for r in values(var.regions) : r.sasl == null || (
      contains(["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"], try(r.sasl.mechanism, "")) &&
      contains(keys(r.credentials), "sasl_password") &&
      ((try(r.sasl.username, null) != null) != contains(keys(r.credentials), "sasl_username"))
    )])
    error_message = "regions: sasl needs mechanism SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN, credentials.sasl_password, and the username either as sasl.username or as credentials.sasl_username (not both); refused: ${join(", ", [for alias, r in var.regions : alias if !(r.sasl == null || (contains(["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"], try(r.sasl.mechanism, "")) && contains(keys(r.credentials), "sasl_password") && ((try(r.sasl.username, null) != null) != contains(keys(r.credentials), "sasl_username"))))])}."
  }
}

variable "pattern" {
  description = <<-EOT
    Flows generated from the regions' roles, added to var.flows (an explicit flow with the same
    source and target replaces the generated one):
      "none"           only var.flows
      "full-mesh"      every region to every other (active/active); every role must be "active".
                       Each flow carries only topics local to its source: copies that came from a
                       third region ("<alias>.*") are excluded, since every region gets them directly.
      "hub-and-spoke"  exactly one "hub"; every "spoke" to the hub and the hub to every spoke
      "active-passive" each "passive" region from its primary, which must be "active"
  EOT
  type        = string
  default     = "none"

  validation {
    condition     = contains(["none", "full-mesh", "hub-and-spoke", "active-passive"], var.pattern)
    error_message = "pattern must be \"none\", \"full-mesh\", \"hub-and-spoke\" or \"active-passive\"; got ${jsonencode(var.pattern)}."
  }
  validation {
    condition     = var.pattern != "full-mesh" || alltrue([for r in values(var.regions) : r.role == "active"])
    error_message = "pattern \"full-mesh\" replicates every region to every other, so every region's role must be \"active\"; not active: ${join(", ", sort([for alias, r in var.regions : "${alias} (${r.role})" if r.role != "active"]))}."
  }
  validation {
    condition     = var.pattern != "hub-and-spoke" || (length([for r in values(var.regions) : r if r.role == "hub"]) == 1 && alltrue([for r in values(var.regions) : contains(["hub", "spoke"], r.role)]))
    error_message = "pattern \"hub-and-spoke\" needs exactly one region with role \"hub\" and role \"spoke\" on all others; hubs: [${join(", ", sort([for alias, r in var.regions : alias if r.role == "hub"]))}], neither hub nor spoke: [${join(", ", sort([for alias, r in var.regions : alias if !contains(["hub", "spoke"], r.role)]))}]."
  }
  validation {
    condition = var.pattern != "active-passive" || alltrue([for alias, r in var.regions : r.role == "active" || (
      r.role == "passive" && r.primary != null && try(var.regions[r.primary].role, "") == "active"
    )])
    error_message = "pattern \"active-passive\" needs role \"active\" or \"passive\" on every region, and a primary naming an active region on every passive one; refused: ${join(", ", sort([for alias, r in var.regions : "${alias} (role ${r.role}, primary ${r.primary == null ? "unset" : r.primary})" if !(r.role == "active" || (r.role == "passive" && r.primary != null && try(var.regions[r.primary].role, "") == "active"))]))}."
  }
}

variable "flow_defaults" {
  description = "Settings of every flow the pattern generates, and the defaults of attributes that an entry of var.flows leaves unset. Field names and meaning as in tern.toml's [[flows]]; topics and groups are anchored regexes."
  type = object({
    topics              = optional(list(string), [".*"])
    topics_exclude      = optional(list(string), [])
    groups              = optional(list(string), [".*"])
    groups_exclude      = optional(list(string), [])
    naming              = optional(string, "prefix")
    sync_group_offsets  = optional(bool, true)
    emit_heartbeats     = optional(bool, true)
    checkpoint_interval = optional(string, "5s")
  })
  default = {}

  validation {
    condition     = contains(["prefix", "identity"], var.flow_defaults.naming)
    error_message = "flow_defaults.naming must be \"prefix\" or \"identity\"; got ${jsonencode(var.flow_defaults.naming)}."
  }
  validation {
    condition     = length(var.flow_defaults.topics) > 0
    error_message = "flow_defaults.topics is empty: generated flows would replicate nothing."
  }
  validation {
    condition     = can(regex("^[0-9]+(ms|s|m|h)$", var.flow_defaults.checkpoint_interval))
    error_message = "flow_defaults.checkpoint_interval must be a duration such as \"500ms\", \"5s\", \"1m\"; got ${jsonencode(var.flow_defaults.checkpoint_interval)}."
  }
}

variable "flows" {
  description = "Flows to run besides (or, for the same source and target, instead of) the pattern's. source and target are aliases from var.regions; attributes left unset come from var.flow_defaults."
  type = list(object({
    source              = string
    target              = string
    topics              = optional(list(string))
    topics_exclude      = optional(list(string))
    groups              = optional(list(string))
    groups_exclude      = optional(list(string))
    naming              = optional(string)
    sync_group_offsets  = optional(bool)
    emit_heartbeats     = optional(bool)
    checkpoint_interval = optional(string)
  }))
  default = []

  validation {
    condition     = alltrue([for f in var.flows : contains(keys(var.regions), f.source) && contains(keys(var.regions), f.target)])
    error_message = "flows: unknown region in ${join(", ", [for f in var.flows : "${f.source}->${f.target}" if !(contains(keys(var.regions), f.source) && contains(keys(var.regions), f.target))])}; defined regions: ${join(", ", sort(keys(var.regions)))}."
  }
  validation {
    condition     = alltrue([for f in var.flows : f.source != f.target])
    error_message = "flows: a flow's source and target must differ: ${join(", ", [for f in var.flows : "${f.source}->${f.target}" if f.source == f.target])}."
  }
  validation {
    condition     = length(distinct([for f in var.flows : "${f.source}->${f.target}"])) == length(var.flows)
    error_message = "flows: one flow per source and target; listed more than once: ${join(", ", distinct([for f in var.flows : "${f.source}->${f.target}" if length([for g in var.flows : g if g.source == f.source && g.target == f.target]) > 1]))}."
  }
  validation {
    condition     = alltrue([for f in var.flows : f.naming == null || contains(["prefix", "identity"], coalesce(f.naming, "prefix"))])
    error_message = "flows: naming must be \"prefix\" or \"identity\"; refused: ${join(", ", [for f in var.flows : "${f.source}->${f.target} (${jsonencode(f.naming)})" if !(f.naming == null || contains(["prefix", "identity"], coalesce(f.naming, "prefix")))])}."
  }
  validation {
    condition     = alltrue([for f in var.flows : f.topics == null || length(coalesce(f.topics, [""])) > 0])
    error_message = "flows: topics is empty (nothing would be replicated) in ${join(", ", [for f in var.flows : "${f.source}->${f.target}" if !(f.topics == null || length(coalesce(f.topics, [""])) > 0)])}; leave it unset for flow_defaults.topics."
  }
  validation {
    condition     = alltrue([for f in var.flows : f.checkpoint_interval == null || can(regex("^[0-9]+(ms|s|m|h)$", coalesce(f.checkpoint_interval, "5s")))])
    error_message = "flows: checkpoint_interval must be a duration such as \"500ms\", \"5s\", \"1m\"; refused: ${join(", ", [for f in var.flows : "${f.source}->${f.target} (${jsonencode(f.checkpoint_interval)})" if !(f.checkpoint_interval == null || can(regex("^[0-9]+(ms|s|m|h)$", coalesce(f.checkpoint_interval, "5s"))))])}."
  }
}

variable "web_port" {
  description = "Port of Tern's dashboard, /metrics, /livez and /readyz. Workers run in containers, so [web] listens on 0.0.0.0 (the cloud modules restrict who may reach it)."
  type        = number
  default     = 8080

  validation {
    condition     = var.web_port >= 1024 && var.web_port <= 65535 && floor(var.web_port) == var.web_port
    error_message = "web_port must be an unprivileged port (1024-65535): the image runs as a non-root user; got ${var.web_port}."
  }
}
