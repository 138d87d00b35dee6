variable "name" {
  description = "Name of the worker group and prefix of its resources, e.g. \"tern-us-east\": lowercase letters, digits and '-', 6 to 30 characters (the tightest cloud limit)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.name))
    error_message = "name must be 6 to 30 lowercase letters, digits and '-', starting with a letter and not ending with '-'; got ${jsonencode(var.name)}."
  }
}

variable "cloud_region" {
  description = "GCP region of the regional managed instance group, e.g. \"europe-west1\". The project is the google provider's."
  type        = string
}

variable "tern_config" {
  description = "tern.toml text for the workers: the topology module's configs[region]. [web] listen is set to 0.0.0.0:web_port whatever it says."
  type        = string
}

variable "secret_env" {
  description = "Environment variable => secret name, filled from the cloud's secret store when a worker starts: the topology module's secret_env[region]. Names only, never values."
  type        = map(string)
  default     = {}
}

variable "secret_store" {
  description = "Project of the Secret Manager secrets named in secret_env; null means the google provider's project."
  type        = string
  default     = null
}

variable "image" {
  description = "The tern image (docker/Dockerfile), pinned to a tag or digest, e.g. \"europe-west1-docker.pkg.dev/acme/tern/tern:0.1.0\". Artifact Registry images are pulled with the workers' service account."
  type        = string

  validation {
    condition     = can(regex("^[^@:]+(:[0-9]+)?/.+(:[A-Za-z0-9_][A-Za-z0-9_.-]*|@sha256:[0-9a-f]{64})$", var.image)) && !endswith(var.image, ":latest")
    error_message = "image must name a registry and be pinned to a tag other than latest or to a digest; got ${jsonencode(var.image)}."
  }
}

variable "worker_count" {
  description = "Workers to run. They share the flows through consumer groups on the source clusters, so more workers spread the partitions; 2 or more survive the loss of one."
  type        = number
  default     = 2

  validation {
    condition     = var.worker_count >= 1 && var.worker_count <= 100 && floor(var.worker_count) == var.worker_count
    error_message = "worker_count must be a whole number from 1 to 100; got ${var.worker_count}."
  }
}

variable "cpu" {
  description = "vCPUs per worker: 0.25, 0.5, 1, 2 or 4. VMs use E2 custom machine types, which start at 2 vCPUs, so smaller values get 2."
  type        = number
  default     = 1

  validation {
    condition     = contains([0.25, 0.5, 1, 2, 4], var.cpu)
    error_message = "cpu must be 0.25, 0.5, 1, 2 or 4; got ${var.cpu}."
  }
}

variable "memory_mib" {
  description = "Memory per worker in MiB (raised to 512 MiB per vCPU where E2 requires it)."
  type        = number
  default     = 2048

  validation {
    condition     = var.memory_mib >= 512 && var.memory_mib % 256 == 0
    error_message = "memory_mib must be a multiple of 256 and at least 512; got ${var.memory_mib}."
  }
}

variable "web_port" {
  description = "Port of the dashboard, /metrics, /livez and /readyz in the container; the platform restarts workers on /livez and routes traffic on /readyz. Use the topology module's web_port."
  type        = number
  default     = 8080

  validation {
    condition     = var.web_port >= 1024 && var.web_port <= 65535 && floor(var.web_port) == var.web_port
    error_message = "web_port must be an unprivileged port (1024-65535): the image runs as a non-root user; got ${var.web_port}."
  }
}

variable "dashboard_allowed_cidrs" {
  description = "CIDR ranges that may reach the dashboard port (operators' networks, your Prometheus). Nothing else can; the platform's health checks are allowed separately."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.dashboard_allowed_cidrs : can(cidrhost(c, 0)) && !contains(["0.0.0.0/0", "::/0"], c)])
    error_message = "dashboard_allowed_cidrs must be CIDR ranges, and not the whole internet (the dashboard has no login); refused: ${join(", ", [for c in var.dashboard_allowed_cidrs : c if !(can(cidrhost(c, 0)) && !contains(["0.0.0.0/0", "::/0"], c))])}."
  }
}

variable "network" {
  description = "Where the VMs run: id is the VPC network (name or self link), subnet_ids[0] the subnetwork. The VMs get no public address: the subnet needs Cloud NAT (Kafka clusters in other clouds) and Private Google Access."
  type = object({
    id         = optional(string)
    subnet_ids = list(string)
  })

  validation {
    condition     = length(var.network.subnet_ids) > 0
    error_message = "network.subnet_ids must name at least one subnet."
  }
}

variable "log_level" {
  description = "RUST_LOG filter of the workers, e.g. \"info\" or \"tern_mirror=debug,info\"."
  type        = string
  default     = "info"
}

variable "log_retention_days" {
  description = "Days the workers' log bucket keeps their logs (Cloud Logging accepts 1 to 3650)."
  type        = number
  default     = 30
}

variable "labels" {
  description = "Labels for every resource that takes them."
  type        = map(string)
  default     = {}
}
