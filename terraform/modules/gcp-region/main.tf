# Tern workers on GCP: a regional managed instance group of Container-Optimized OS VMs running
# the tern image. The group's autohealing probes /livez, firewall rules let only the given
# CIDRs and Google's health checkers reach the dashboard port, secrets come from Secret Manager
# when the container starts, container logs go to Cloud Logging (into a log bucket with the
# requested retention) and VM metrics to Cloud Monitoring.

module "worker" {
  source = "../worker-config"

  tern_config = var.tern_config
  web_port    = var.web_port
  secret_env  = var.secret_env
  log_level   = var.log_level
}

data "google_client_config" "current" {}

data "google_compute_image" "cos" {
  family  = "cos-stable"
  project = "cos-cloud"
}

locals {
  project        = data.google_client_config.current.project
  secret_project = coalesce(var.secret_store, local.project)
  labels         = merge(var.labels, { tern-worker-group = var.name })

  # E2 custom machine types take an even number of vCPUs from 2 and 0.5 to 8 GiB per vCPU.
  vcpus        = max(2, ceil(var.cpu / 2) * 2)
  memory_mib   = max(var.memory_mib, local.vcpus * 512)
  machine_type = "e2-custom-${local.vcpus}-${local.memory_mib}"

  # Artifact Registry and Container Registry hosts need docker-credential-gcr on the VM.
  image_host = split("/", var.image)[0]
  registry   = endswith(local.image_host, "pkg.dev") || endswith(local.image_host, "gcr.io") ? local.image_host : ""

  cloud_init = templatefile("${path.module}/templates/cloud-init.yaml.tftpl", {
    config_b64     = base64encode(module.worker.tern_config)
    secrets_b64    = base64encode(join("", [for k in sort(keys(module.worker.secret_env)) : "${k} ${module.worker.secret_env[k]}\n"]))
    secret_project = local.secret_project
    registry       = local.registry
    image          = var.image
    web_port       = var.web_port
    log_level      = var.log_level
  })

  # Google's health checkers (https://cloud.google.com/load-balancing/docs/health-check-concepts).
  health_check_ranges = ["35.191.0.0/16", "130.211.0.0/22"]
}

resource "google_service_account" "workers" {
  account_id   = var.name
  display_name = "Tern workers ${var.name}"
}

resource "google_project_iam_member" "workers" {
  for_each = toset(["roles/logging.logWriter", "roles/monitoring.metricWriter", "roles/artifactregistry.reader"])

  project = local.project
  role    = each.value
  member  = "serviceAccount:${google_service_account.workers.email}"
}

resource "google_secret_manager_secret_iam_member" "workers" {
  for_each = toset(values(var.secret_env))

  project   = local.secret_project
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.workers.email}"
}

resource "google_compute_instance_template" "workers" {
  name_prefix  = "${var.name}-"
  region       = var.cloud_region
  machine_type = local.machine_type
  labels       = local.labels
  tags         = [var.name]

  disk {
    source_image = data.google_compute_image.cos.self_link
    boot         = true
    auto_delete  = true
    disk_type    = "pd-balanced"
    disk_size_gb = 20
  }

  # No external address: the subnet's Cloud NAT reaches clusters in other clouds.
  network_interface {
    network    = var.network.id
    subnetwork = var.network.subnet_ids[0]
  }

  service_account {
    email  = google_service_account.workers.email
    scopes = ["cloud-platform"]
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  metadata = {
    user-data                 = local.cloud_init
    google-logging-enabled    = "true"
    google-monitoring-enabled = "true"
    block-project-ssh-keys    = "true"
    enable-oslogin            = "TRUE"
  }

  lifecycle {
    create_before_destroy = true

    precondition {
      condition     = var.network.id != null
      error_message = "network.id must name the VPC network of the subnetwork."
    }
  }
}

resource "google_compute_health_check" "workers" {
  name = "${var.name}-livez"

  # Liveness for autohealing and rollouts: three failures 30 s apart recreate the VM. /livez
  # answers while the process serves, so an outage of a remote cluster (which /readyz reports)
  # recreates nothing.
  check_interval_sec  = 30
  timeout_sec         = 5
  healthy_threshold   = 1
  unhealthy_threshold = 3

  http_health_check {
    port         = var.web_port
    request_path = module.worker.liveness_path
  }

  log_config {
    enable = true
  }
}

resource "google_compute_region_instance_group_manager" "workers" {
  name               = var.name
  region             = var.cloud_region
  base_instance_name = var.name
  target_size        = var.worker_count

  version {
    instance_template = google_compute_instance_template.workers.self_link_unique
  }

  named_port {
    name = "dashboard"
    port = var.web_port
  }

  auto_healing_policies {
    health_check      = google_compute_health_check.workers.id
    initial_delay_sec = 300
  }

  # Workers of a flow share its partitions through a consumer group, so new VMs may join
  # before old ones leave.
  update_policy {
    type                  = "PROACTIVE"
    minimal_action        = "REPLACE"
    max_surge_fixed       = 3
    max_unavailable_fixed = 0
  }
}

resource "google_compute_firewall" "dashboard" {
  count = length(var.dashboard_allowed_cidrs) > 0 ? 1 : 0

  name                    = "${var.name}-dashboard"
  network                 = var.network.id
  direction               = "INGRESS"
  source_ranges           = var.dashboard_allowed_cidrs
  target_service_accounts = [google_service_account.workers.email]

  allow {
    protocol = "tcp"
    ports    = [tostring(var.web_port)]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_firewall" "health_checks" {
  name                    = "${var.name}-health-checks"
  network                 = var.network.id
  direction               = "INGRESS"
  source_ranges           = local.health_check_ranges
  target_service_accounts = [google_service_account.workers.email]

  allow {
    protocol = "tcp"
    ports    = [tostring(var.web_port)]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# The workers' logs, kept log_retention_days in a bucket of their own.
resource "google_logging_project_bucket_config" "workers" {
  project        = local.project
  location       = var.cloud_region
  bucket_id      = var.name
  retention_days = var.log_retention_days
  description    = "Logs of the Tern workers ${var.name}"
}

resource "google_logging_project_sink" "workers" {
  name                   = var.name
  project                = local.project
  destination            = "logging.googleapis.com/${google_logging_project_bucket_config.workers.id}"
  filter                 = "resource.type=\"gce_instance\" AND labels.\"compute.googleapis.com/resource_name\":\"${var.name}-\""
  unique_writer_identity = true
}
