variable "tern_config" {
  description = "tern.toml text for the workers (the topology module's configs[region])."
  type        = string

  validation {
    condition     = !can(regex("(?m)^[ \\t]*web[ \\t]*[.=]", var.tern_config))
    error_message = "tern_config: write the web settings as a [web] table (this module sets its listen address), not as an inline table or dotted key."
  }
  validation {
    condition     = can(regex("(?m)^[ \\t]*\\[clusters\\.", var.tern_config))
    error_message = "tern_config has no [clusters.<alias>] table: pass the text of a rendered tern.toml, not a file name."
  }
}

variable "web_port" {
  description = "Port of the dashboard, /metrics, /livez and /readyz inside the container."
  type        = number
}

variable "secret_env" {
  description = "Environment variable => secret name in the cloud's secret store."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.secret_env) : can(regex("^[A-Z][A-Z0-9_]*$", k)) && !contains(["TERN_CONFIG", "RUST_LOG", "TERN_WEB_PORT"], k)])
    error_message = "secret_env: variable names must be uppercase letters, digits and '_', and not TERN_CONFIG, RUST_LOG or TERN_WEB_PORT (set by the module); refused: ${join(", ", [for k in keys(var.secret_env) : k if !(can(regex("^[A-Z][A-Z0-9_]*$", k)) && !contains(["TERN_CONFIG", "RUST_LOG", "TERN_WEB_PORT"], k))])}."
  }
}

variable "log_level" {
  description = "RUST_LOG filter of the workers (\"info\", \"debug\", \"tern_mirror=debug,info\")."
  type        = string
  default     = "info"
}
