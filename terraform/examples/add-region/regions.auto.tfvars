# ../three-region/regions.auto.tfvars plus one region: aws-ap-southeast-1 at the end. That one
# entry is the whole change; `terraform apply` then creates workers in ap-southeast-1 running the
# flows from the three other regions, and adds the flow from ap-southeast-1 to each of their
# tern.toml files (their workers are replaced with the new config). The offline tests check
# that this file is the three-region one plus an entry and compare the rendered topologies.

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

  aws-ap-southeast-1 = {
    cloud        = "aws"
    cloud_region = "ap-southeast-1"
    bootstrap    = "b-1.tern-apse1.kafka.ap-southeast-1.amazonaws.com:9096,b-2.tern-apse1.kafka.ap-southeast-1.amazonaws.com:9096,b-3.tern-apse1.kafka.ap-southeast-1.amazonaws.com:9096"
    sasl         = {}
    credentials = {
      sasl_username = "tern-aws-ap-southeast-1-sasl-username"
      sasl_password = "tern-aws-ap-southeast-1-sasl-password"
    }
    network = {
      id         = "vpc-0f1e2d3c4b5a69788"
      subnet_ids = ["subnet-0f1e2d3c4b5a60001", "subnet-0f1e2d3c4b5a60002", "subnet-0f1e2d3c4b5a60003"]
    }
  }
}
