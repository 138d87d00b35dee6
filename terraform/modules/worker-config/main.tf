# What every cloud module gives its container, computed once so the three clouds agree and the
# rules are tested offline (tests/). Provider-free.
#
# The workers run in containers, where a dashboard on 127.0.0.1 is unreachable for the
# platform's health checks, so [web] listen is set to 0.0.0.0:<web_port> whatever the given
# config says. `listen` is the only key of that name in tern.toml's schema (unknown keys are
# refused), so a line starting with it belongs to [web].

locals {
  listen_line    = "listen = \"0.0.0.0:${var.web_port}\""
  without_listen = replace(var.tern_config, "/(?m)^[ \\t]*listen[ \\t]*=.*(\\r?\\n|$)/", "")
  web_header     = "/(?m)^[ \\t]*\\[web\\][ \\t]*(#.*)?$/"
  has_web        = can(regex(trim(local.web_header, "/"), local.without_listen))

  tern_config = (local.has_web
    ? replace(local.without_listen, local.web_header, "[web]\n${local.listen_line}")
    : "${trimsuffix(local.without_listen, "\n")}\n\n[web]\n${local.listen_line}\n"
  )
}
