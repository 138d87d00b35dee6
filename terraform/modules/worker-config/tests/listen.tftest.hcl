# The container's [web] listen address, whatever the config it is given says.

run "replaces_a_loopback_listen" {
  command = plan
  variables {
    tern_config = "[clusters.a]\nbootstrap = \"a:9092\"\n\n[web]\nlisten = \"127.0.0.1:8080\"\n"
    web_port    = 9400
  }
  assert {
    condition     = output.tern_config == "[clusters.a]\nbootstrap = \"a:9092\"\n\n[web]\nlisten = \"0.0.0.0:9400\"\n"
    error_message = "got:\n${output.tern_config}"
  }
}

run "adds_a_web_table_when_there_is_none" {
  command = plan
  variables {
    tern_config = "[clusters.a]\nbootstrap = \"a:9092\"\n"
    web_port    = 8080
  }
  assert {
    condition     = output.tern_config == "[clusters.a]\nbootstrap = \"a:9092\"\n\n[web]\nlisten = \"0.0.0.0:8080\"\n"
    error_message = "got:\n${output.tern_config}"
  }
}

run "fills_an_empty_web_table_in_the_middle" {
  command = plan
  variables {
    tern_config = "[clusters.a]\nbootstrap = \"a:9092\"\n\n[web] # dashboard\n\n[mirror]\nfetch_max_wait = \"1s\"\n"
    web_port    = 8080
  }
  assert {
    condition     = output.tern_config == "[clusters.a]\nbootstrap = \"a:9092\"\n\n[web]\nlisten = \"0.0.0.0:8080\"\n\n[mirror]\nfetch_max_wait = \"1s\"\n"
    error_message = "got:\n${output.tern_config}"
  }
}

run "environment_carries_the_config_and_log_level" {
  command = plan
  variables {
    tern_config = "[clusters.a]\nbootstrap = \"a:9092\"\n"
    web_port    = 8080
    log_level   = "tern_mirror=debug,info"
    secret_env  = { TERN_A__SASL_PASSWORD = "tern-a-sasl-password" }
  }
  assert {
    condition     = output.environment.TERN_CONFIG == output.tern_config && output.environment.RUST_LOG == "tern_mirror=debug,info" && output.environment.TERN_WEB_PORT == "8080"
    error_message = "the container gets the rewritten config, the log filter and the web port"
  }
  assert {
    condition     = output.secret_env.TERN_A__SASL_PASSWORD == "tern-a-sasl-password"
    error_message = "secret references pass through unchanged"
  }
}

run "refuses_an_inline_web_table" {
  command = plan
  variables {
    tern_config = "web = { listen = \"127.0.0.1:8080\" }\n[clusters.a]\nbootstrap = \"a:9092\"\n"
    web_port    = 8080
  }
  expect_failures = [var.tern_config]
}

run "refuses_secret_env_that_would_shadow_the_config" {
  command = plan
  variables {
    tern_config = "[clusters.a]\nbootstrap = \"a:9092\"\n"
    web_port    = 8080
    secret_env  = { TERN_CONFIG = "some-secret" }
  }
  expect_failures = [var.secret_env]
}
