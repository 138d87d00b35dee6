# The regions and how they replicate. Read by this example (Terraform loads *.auto.tfvars) and
# by the offline tests, which render the topology from this file and run `tern check --offline`
# on each region's tern.toml (terraform/tests/run.py).

pattern = "full-mesh"

regions = {
  aws-us-east-1 = {
    cloud        = "aws"
    cloud_region = "us-east-1"
    bootstrap    = "b-1.tern-use1.kafka.us-east-1.amazonaws.com:9096,b-2.tern-use1.kafka.us-east-1.amazonaws.com:9096,b-3.tern-use1.kafka.us-east-1.amazonaws.com:9096"
    # Secret names, never values. Every cloud whose workers connect to this cluster (here all
    # three) holds them under these names in its secret store.
    # SASL_SSL with SCRAM-SHA-512 (MSK's port 9096); username and password from the secrets.
    sasl = {}
    credentials = {
      sasl_username = "tern-aws-us-east-1-sasl-username"
      sasl_password = "tern-aws-us-east-1-sasl-password"
    }
    network = {
      id         = "vpc-0a1b2c3d4e5f60718"
      subnet_ids = ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002", "subnet-0a1b2c3d4e5f60003"]
    }
  }

  gcp-europe-west1 = {
    cloud        = "gcp"
    cloud_region = "europe-west1"
    bootstrap    = "10.132.0.10:9092,10.132.0.11:9092,10.132.0.12:9092"
    network = {
      id         = "projects/acme-streaming/global/networks/kafka"
      subnet_ids = ["projects/acme-streaming/regions/europe-west1/subnetworks/kafka-europe-west1"]
    }
  }

  azure-westeurope = {
    cloud        = "azure"
    cloud_region = "westeurope"
    bootstrap    = "kafka-0.weu.acme.internal:9093,kafka-1.weu.acme.internal:9093,kafka-2.weu.acme.internal:9093"
    sasl         = { mechanism = "SCRAM-SHA-256" }
    credentials = {
      sasl_username = "tern-azure-westeurope-sasl-username"
      sasl_password = "tern-azure-westeurope-sasl-password"
    }
    secret_store = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-streaming-weu/providers/Microsoft.KeyVault/vaults/kv-acme-streaming-weu"
    network = {
      id         = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-network-weu/providers/Microsoft.Network/virtualNetworks/vnet-kafka-weu"
      subnet_ids = ["/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-network-weu/providers/Microsoft.Network/virtualNetworks/vnet-kafka-weu/subnets/snet-tern"]
    }
  }
}
