# What the topology renders for each pattern. `command = plan` suffices: the module has no
# resources, so every output is known at plan time.

variables {
  regions = {
    us-east = {
      cloud        = "aws"
      cloud_region = "us-east-1"
      bootstrap    = "b-1.us-east.example:9096, b-2.us-east.example:9096"
      credentials  = { sasl_username = "tern-us-east-sasl-username", sasl_password = "tern-us-east-sasl-password" }
    }
    eu-west = {
      cloud        = "gcp"
      cloud_region = "europe-west1"
      bootstrap    = "10.20.0.10:9092"
      credentials  = { sasl_password = "tern-eu-west-sasl-password" }
    }
    eu-nl = {
      cloud        = "azure"
      cloud_region = "westeurope"
      bootstrap    = "kafka-0.eu-nl.example:9093"
    }
  }
}

run "full_mesh_runs_every_pair_with_workers_in_the_target_region" {
  command = plan

  variables {
    pattern = "full-mesh"
  }

  assert {
    condition     = jsonencode([for f in output.flows : f.name]) == jsonencode(["eu-nl->eu-west", "eu-nl->us-east", "eu-west->eu-nl", "eu-west->us-east", "us-east->eu-nl", "us-east->eu-west"])
    error_message = "full mesh of three regions should give six flows, got ${jsonencode([for f in output.flows : f.name])}"
  }
  assert {
    condition     = jsonencode(keys(output.configs)) == jsonencode(["eu-nl", "eu-west", "us-east"])
    error_message = "every region receives flows, so every region gets a tern.toml"
  }
  assert {
    condition     = jsonencode(output.workers["us-east"].flows) == jsonencode(["eu-nl->us-east", "eu-west->us-east"])
    error_message = "the workers of us-east must run the flows into us-east, got ${jsonencode(output.workers["us-east"].flows)}"
  }
  assert {
    condition     = jsonencode(output.workers["us-east"].clusters) == jsonencode(["eu-nl", "eu-west", "us-east"])
    error_message = "us-east workers connect to their own cluster and the sources of their flows"
  }
  assert {
    condition     = alltrue([for f in output.flows : f.naming == "prefix" && f.origin == "pattern" && f.checkpoint_interval == "5s"])
    error_message = "generated flows take flow_defaults (prefix naming, 5s checkpoints)"
  }
  assert {
    condition     = jsonencode([for f in output.flows : f.topics_exclude if f.name == "us-east->eu-west"][0]) == jsonencode(["eu-nl\\..*"])
    error_message = "a full-mesh flow leaves out copies from the third region, got ${jsonencode([for f in output.flows : f.topics_exclude if f.name == "us-east->eu-west"][0])}"
  }
  assert {
    condition     = output.configs["eu-west"] == file("${path.module}/tests/golden/full-mesh-eu-west.toml")
    error_message = "the eu-west tern.toml differs from tests/golden/full-mesh-eu-west.toml:\n${output.configs["eu-west"]}"
  }
  assert {
    condition     = length(output.regions_without_workers) == 0
    error_message = "no region is idle in a full mesh"
  }
}

run "credentials_become_secret_references_not_toml" {
  command = plan

  variables {
    pattern = "full-mesh"
  }

  assert {
    condition = jsonencode(output.secret_env["eu-nl"]) == jsonencode({
      TERN_EU_WEST__SASL_PASSWORD = "tern-eu-west-sasl-password"
      TERN_US_EAST__SASL_PASSWORD = "tern-us-east-sasl-password"
      TERN_US_EAST__SASL_USERNAME = "tern-us-east-sasl-username"
    })
    error_message = "eu-nl workers need the credentials of us-east and eu-west, got ${jsonencode(output.secret_env["eu-nl"])}"
  }
  assert {
    condition     = alltrue([for c in values(output.configs) : !strcontains(c, "sasl") && !strcontains(c, "tern-us-east-sasl")])
    error_message = "secret names and credentials must stay out of tern.toml"
  }
}

run "sasl_clusters_read_their_credentials_from_the_filled_variables" {
  command = plan

  variables {
    pattern = "full-mesh"
    regions = {
      us-east  = { cloud = "aws", cloud_region = "us-east-1", bootstrap = "use:9096", sasl = {}, credentials = { sasl_username = "tern-use-user", sasl_password = "tern-use-pw" } }
      eu-west  = { cloud = "gcp", cloud_region = "europe-west1", bootstrap = "euw:9096", sasl = { mechanism = "SCRAM-SHA-256", username = "tern" }, credentials = { sasl_password = "tern-euw-pw" } }
      ap-south = { cloud = "azure", cloud_region = "westeurope", bootstrap = "aps:9092" }
    }
  }

  assert {
    condition     = strcontains(output.configs["ap-south"], "[clusters.us-east.sasl]\nmechanism = \"SCRAM-SHA-512\"\nusername_env = \"TERN_US_EAST__SASL_USERNAME\"\npassword_env = \"TERN_US_EAST__SASL_PASSWORD\"\n")
    error_message = "us-east: SCRAM-SHA-512 with both credentials from the environment, got ${output.configs["ap-south"]}"
  }
  assert {
    condition     = strcontains(output.configs["ap-south"], "[clusters.eu-west.sasl]\nmechanism = \"SCRAM-SHA-256\"\nusername = \"tern\"\npassword_env = \"TERN_EU_WEST__SASL_PASSWORD\"\n")
    error_message = "eu-west: SCRAM-SHA-256, a plain username and the password from the environment, got ${output.configs["ap-south"]}"
  }
  assert {
    condition     = !strcontains(output.configs["us-east"], "[clusters.ap-south.sasl]") && alltrue([for c in values(output.configs) : !strcontains(c, "tern-use-") && !strcontains(c, "tern-euw-")])
    error_message = "no SASL without a sasl setting, and no secret names in tern.toml"
  }
  assert {
    condition     = contains(keys(output.secret_env["ap-south"]), "TERN_US_EAST__SASL_PASSWORD") && contains(keys(output.secret_env["ap-south"]), "TERN_EU_WEST__SASL_PASSWORD")
    error_message = "the variables tern.toml names are the ones the workers get"
  }
}

run "hub_and_spoke" {
  command = plan

  variables {
    pattern = "hub-and-spoke"
    regions = {
      hub     = { cloud = "aws", cloud_region = "us-east-1", bootstrap = "hub:9092", role = "hub" }
      spoke-a = { cloud = "gcp", cloud_region = "europe-west1", bootstrap = "a:9092", role = "spoke" }
      spoke-b = { cloud = "azure", cloud_region = "westeurope", bootstrap = "b:9092", role = "spoke" }
    }
  }

  assert {
    condition     = jsonencode([for f in output.flows : f.name]) == jsonencode(["hub->spoke-a", "hub->spoke-b", "spoke-a->hub", "spoke-b->hub"])
    error_message = "spokes exchange with the hub only, got ${jsonencode([for f in output.flows : f.name])}"
  }
  assert {
    condition     = alltrue([for f in output.flows : length(f.topics_exclude) == 0])
    error_message = "the hub relays copies between spokes, so no relayed copies are excluded"
  }
  assert {
    condition     = jsonencode(output.workers["spoke-a"].clusters) == jsonencode(["hub", "spoke-a"])
    error_message = "a spoke's workers connect to the spoke and the hub only"
  }
}

run "active_passive_runs_workers_only_where_copies_land" {
  command = plan

  variables {
    pattern = "active-passive"
    regions = {
      us-east    = { cloud = "aws", cloud_region = "us-east-1", bootstrap = "use:9092" }
      us-west    = { cloud = "aws", cloud_region = "us-west-2", bootstrap = "usw:9092", role = "passive", primary = "us-east" }
      eu-west    = { cloud = "gcp", cloud_region = "europe-west1", bootstrap = "euw:9092" }
      eu-central = { cloud = "azure", cloud_region = "germanywestcentral", bootstrap = "euc:9092", role = "passive", primary = "eu-west" }
    }
    flow_defaults = {
      naming = "identity"
      groups = ["payments-.*"]
    }
  }

  assert {
    condition     = jsonencode([for f in output.flows : f.name]) == jsonencode(["eu-west->eu-central", "us-east->us-west"])
    error_message = "each passive region mirrors its primary, got ${jsonencode([for f in output.flows : f.name])}"
  }
  assert {
    condition     = jsonencode(output.regions_without_workers) == jsonencode(["eu-west", "us-east"])
    error_message = "the active regions receive nothing and run no workers"
  }
  assert {
    condition     = strcontains(output.configs["us-west"], "naming = \"identity\"") && strcontains(output.configs["us-west"], "groups = [\"payments-.*\"]")
    error_message = "flow_defaults reach the rendered flows:\n${output.configs["us-west"]}"
  }
  assert {
    condition     = !strcontains(output.configs["us-west"], "[clusters.eu-west]")
    error_message = "a worker's tern.toml names only the clusters it connects to"
  }
}

run "explicit_flows_add_to_and_override_the_pattern" {
  command = plan

  variables {
    pattern = "active-passive"
    regions = {
      us-east = { cloud = "aws", cloud_region = "us-east-1", bootstrap = "use:9092" }
      us-west = { cloud = "aws", cloud_region = "us-west-2", bootstrap = "usw:9092", role = "passive", primary = "us-east" }
    }
    flows = [
      { source = "us-east", target = "us-west", topics = ["orders", "payments"], checkpoint_interval = "2s" },
      { source = "us-west", target = "us-east", topics = ["audit.*"], naming = "identity" },
    ]
  }

  assert {
    condition     = jsonencode([for f in output.flows : [f.name, f.origin, f.topics]]) == jsonencode([["us-east->us-west", "flows", ["orders", "payments"]], ["us-west->us-east", "flows", ["audit.*"]]])
    error_message = "explicit flows replace the generated one and add new ones, got ${jsonencode(output.flows)}"
  }
  assert {
    condition     = [for f in output.flows : f.checkpoint_interval if f.name == "us-east->us-west"][0] == "2s" && [for f in output.flows : f.naming if f.name == "us-east->us-west"][0] == "prefix"
    error_message = "unset attributes of explicit flows come from flow_defaults"
  }
}

run "web_port_is_rendered_on_all_interfaces" {
  command = plan

  variables {
    pattern  = "full-mesh"
    web_port = 9400
  }

  assert {
    condition     = alltrue([for c in values(output.configs) : endswith(c, "[web]\nlisten = \"0.0.0.0:9400\"\n")])
    error_message = "workers run in containers: [web] must listen on 0.0.0.0 at web_port"
  }
}
