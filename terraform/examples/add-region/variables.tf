variable "regions" {
  description = "The Kafka clusters and where their workers run, keyed by cluster alias (see regions.auto.tfvars). Besides the topology module's attributes, each region names its network and secret store for its cloud module."
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
    network = object({
      id         = optional(string)
      subnet_ids = list(string)
    })
    secret_store = optional(string)
  }))
}

variable "pattern" {
  description = "How regions replicate: \"full-mesh\" (active/active), \"hub-and-spoke\", \"active-passive\" or \"none\" (flows only)."
  type        = string
  default     = "full-mesh"
}

variable "flows" {
  description = "Flows besides, or replacing, the pattern's (see the topology module)."
  type        = any
  default     = []
}

variable "flow_defaults" {
  description = "Settings of the generated flows (see the topology module)."
  type        = any
  default     = {}
}

variable "web_port" {
  description = "Port of the workers' dashboard, /metrics, /livez and /readyz."
  type        = number
  default     = 8080
}

variable "image" {
  description = "Per cloud, the tern image (docker/Dockerfile) in a registry that cloud's workers pull from, pinned to a tag or digest."
  type        = map(string)
}

variable "dashboard_allowed_cidrs" {
  description = "Networks that may open the dashboards (operators' VPN, Prometheus)."
  type        = list(string)
}

variable "worker_count" {
  description = "Workers per region."
  type        = number
  default     = 2
}

variable "gcp_project" {
  description = "GCP project of the GCP regions' workers."
  type        = string
}

variable "azure_subscription_id" {
  description = "Azure subscription of the Azure regions' workers."
  type        = string
}
