# Every mistake the module refuses, each with the check that must fail. The messages are
# asserted by the Python driver (terraform/tests/run.py), which reads them from a plan.

variables {
  regions = {
    us-east = { cloud = "aws", cloud_region = "us-east-1", bootstrap = "use-1:9092,use-2:9092" }
    eu-west = { cloud = "gcp", cloud_region = "europe-west1", bootstrap = "euw:9092" }
    eu-nl   = { cloud = "azure", cloud_region = "westeurope", bootstrap = "eunl:9092" }
  }
}

run "flow_naming_an_unknown_region" {
  command = plan
  variables {
    flows = [{ source = "us-east", target = "ap-south" }]
  }
  expect_failures = [var.flows]
}

run "flow_from_a_region_to_itself" {
  command = plan
  variables {
    flows = [{ source = "eu-west", target = "eu-west" }]
  }
  expect_failures = [var.flows]
}

run "two_flows_with_the_same_source_and_target" {
  command = plan
  variables {
    flows = [
      { source = "us-east", target = "eu-west", topics = ["a"] },
      { source = "us-east", target = "eu-west", topics = ["b"] },
    ]
  }
  expect_failures = [var.flows]
}

run "identity_naming_both_ways_would_loop" {
  command = plan
  variables {
    flows = [
      { source = "us-east", target = "eu-west", naming = "identity" },
      { source = "eu-west", target = "us-east", naming = "identity" },
    ]
  }
  expect_failures = [output.configs, output.flows]
}

run "identity_naming_around_three_regions_would_loop" {
  command = plan
  variables {
    flows = [
      { source = "us-east", target = "eu-west", naming = "identity" },
      { source = "eu-west", target = "eu-nl", naming = "identity" },
      { source = "eu-nl", target = "us-east", naming = "identity" },
    ]
  }
  expect_failures = [output.configs, output.flows]
}

run "identity_naming_in_a_full_mesh_would_loop" {
  command = plan
  variables {
    pattern       = "full-mesh"
    flow_defaults = { naming = "identity" }
  }
  expect_failures = [output.configs, output.flows]
}

run "identity_one_way_and_prefix_back_is_fine" {
  command = plan
  variables {
    flows = [
      { source = "us-east", target = "eu-west", naming = "identity" },
      { source = "eu-west", target = "eu-nl", naming = "identity" },
      { source = "eu-nl", target = "us-east", naming = "prefix" },
    ]
  }
  assert {
    condition     = length(output.flows) == 3
    error_message = "a chain of identity flows closed by a prefix flow does not loop"
  }
}

run "same_cloud_region_listed_twice" {
  command = plan
  variables {
    regions = {
      us-east   = { cloud = "aws", cloud_region = "us-east-1", bootstrap = "use:9092" }
      us-east-2 = { cloud = "aws", cloud_region = "us-east-1", bootstrap = "use2:9092" }
    }
  }
  expect_failures = [var.regions]
}

run "same_cluster_under_two_aliases" {
  command = plan
  variables {
    regions = {
      us-east = { cloud = "aws", cloud_region = "us-east-1", bootstrap = "use-1:9092,use-2:9092" }
      eu-west = { cloud = "gcp", cloud_region = "europe-west1", bootstrap = "USE-2:9092" }
    }
  }
  expect_failures = [var.regions]
}

run "alias_with_a_dot" {
  command = plan
  variables {
    regions = {
      "us.east" = { cloud = "aws", cloud_region = "us-east-1", bootstrap = "use:9092" }
    }
  }
  expect_failures = [var.regions]
}

run "unknown_cloud" {
  command = plan
  variables {
    regions = {
      us-east = { cloud = "ibm", cloud_region = "us-east", bootstrap = "use:9092" }
    }
  }
  expect_failures = [var.regions]
}

run "bootstrap_without_port" {
  command = plan
  variables {
    regions = {
      us-east = { cloud = "aws", cloud_region = "us-east-1", bootstrap = "use-1.example" }
    }
  }
  expect_failures = [var.regions]
}

run "inline_secret_value_instead_of_a_reference" {
  command = plan
  variables {
    regions = {
      us-east = { cloud = "aws", cloud_region = "us-east-1", bootstrap = "use:9092", credentials = { sasl_password = "hunter2!" } }
    }
  }
  expect_failures = [var.regions]
}

run "sasl_without_a_password_secret" {
  command = plan
  variables {
    regions = {
      us-east = { cloud = "aws", cloud_region = "us-east-1", bootstrap = "use:9092", sasl = { username = "tern" }, credentials = { sasl_username = "tern-user" } }
    }
  }
  expect_failures = [var.regions]
}

run "primary_naming_an_unknown_region" {
  command = plan
  variables {
    regions = {
      us-west = { cloud = "aws", cloud_region = "us-west-2", bootstrap = "usw:9092", role = "passive", primary = "us-east" }
    }
  }
  expect_failures = [var.regions]
}

run "full_mesh_with_a_passive_region" {
  command = plan
  variables {
    pattern = "full-mesh"
    regions = {
      us-east = { cloud = "aws", cloud_region = "us-east-1", bootstrap = "use:9092" }
      us-west = { cloud = "aws", cloud_region = "us-west-2", bootstrap = "usw:9092", role = "passive", primary = "us-east" }
    }
  }
  expect_failures = [var.pattern]
}

run "hub_and_spoke_with_two_hubs" {
  command = plan
  variables {
    pattern = "hub-and-spoke"
    regions = {
      us-east = { cloud = "aws", cloud_region = "us-east-1", bootstrap = "use:9092", role = "hub" }
      eu-west = { cloud = "gcp", cloud_region = "europe-west1", bootstrap = "euw:9092", role = "hub" }
      eu-nl   = { cloud = "azure", cloud_region = "westeurope", bootstrap = "eunl:9092", role = "spoke" }
    }
  }
  expect_failures = [var.pattern]
}

run "active_passive_without_a_primary" {
  command = plan
  variables {
    pattern = "active-passive"
    regions = {
      us-east = { cloud = "aws", cloud_region = "us-east-1", bootstrap = "use:9092" }
      us-west = { cloud = "aws", cloud_region = "us-west-2", bootstrap = "usw:9092", role = "passive" }
    }
  }
  expect_failures = [var.pattern]
}

run "unknown_pattern" {
  command = plan
  variables {
    pattern = "ring"
  }
  expect_failures = [var.pattern]
}

run "unknown_naming" {
  command = plan
  variables {
    flows = [{ source = "us-east", target = "eu-west", naming = "suffix" }]
  }
  expect_failures = [var.flows]
}

run "flow_with_no_topics" {
  command = plan
  variables {
    flows = [{ source = "us-east", target = "eu-west", topics = [] }]
  }
  expect_failures = [var.flows]
}

run "checkpoint_interval_that_is_not_a_duration" {
  command = plan
  variables {
    flow_defaults = { checkpoint_interval = "5 seconds" }
  }
  expect_failures = [var.flow_defaults]
}

run "privileged_web_port" {
  command = plan
  variables {
    web_port = 80
  }
  expect_failures = [var.web_port]
}
