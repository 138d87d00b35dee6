# Tern workers on AWS: an ECS service on Fargate in private subnets. Secrets come from Secrets
# Manager when a task starts (ECS `secrets`), logs go to CloudWatch Logs, and Container Insights
# records CPU, memory, restarts and task counts in CloudWatch. Every regional resource sets
# `region`, so one aws provider configuration serves workers in any number of regions.

module "worker" {
  source = "../worker-config"

  tern_config = var.tern_config
  web_port    = var.web_port
  secret_env  = var.secret_env
  log_level   = var.log_level
}

locals {
  tags = merge(var.labels, { "tern:worker-group" = var.name })
  # Fargate runs 2 to 8 GiB of memory per vCPU.
  memory_fits_cpu = var.memory_mib >= var.cpu * 2048 && var.memory_mib <= var.cpu * 8192
}

data "aws_partition" "current" {}

data "aws_secretsmanager_secret" "env" {
  for_each = var.secret_env

  region = coalesce(var.secret_store, var.cloud_region)
  name   = each.value
}

resource "aws_cloudwatch_log_group" "workers" {
  #checkov:skip=CKV_AWS_158:Encrypted with CloudWatch Logs' own key; the logs carry no record data or credentials, so a customer-managed KMS key is left to the caller's policy.
  #checkov:skip=CKV_AWS_338:Operational logs of the workers, not an audit trail: retention is log_retention_days (30 by default, as on the other clouds), raise it where policy asks for a year.
  region            = var.cloud_region
  name              = "/tern/${var.name}"
  retention_in_days = var.log_retention_days
  tags              = local.tags

  lifecycle {
    precondition {
      condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
      error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, ...); got ${var.log_retention_days}."
    }
  }
}

resource "aws_ecs_cluster" "workers" {
  region = var.cloud_region
  name   = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  tags = local.tags
}

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

# Used by ECS to pull the image, write logs and read the secrets; Tern itself calls no AWS API,
# so the tasks get no task role.
resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "read_secrets" {
  count = length(var.secret_env) > 0 ? 1 : 0

  statement {
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [for s in data.aws_secretsmanager_secret.env : s.arn]
  }
}

resource "aws_iam_role_policy" "read_secrets" {
  count = length(var.secret_env) > 0 ? 1 : 0

  name   = "read-tern-secrets"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.read_secrets[0].json
}

resource "aws_security_group" "workers" {
  region      = var.cloud_region
  name        = var.name
  description = "Tern workers ${var.name}: dashboard from the allowed CIDRs only"
  vpc_id      = var.network.id
  tags        = local.tags

  lifecycle {
    precondition {
      condition     = var.network.id != null
      error_message = "network.id must be the VPC id of the subnets."
    }
  }
}

resource "aws_vpc_security_group_ingress_rule" "dashboard" {
  for_each = toset(var.dashboard_allowed_cidrs)

  region            = var.cloud_region
  security_group_id = aws_security_group.workers.id
  description       = "Tern dashboard, /metrics, /livez and /readyz"
  ip_protocol       = "tcp"
  from_port         = var.web_port
  to_port           = var.web_port
  cidr_ipv4         = strcontains(each.value, ":") ? null : each.value
  cidr_ipv6         = strcontains(each.value, ":") ? each.value : null
  tags              = local.tags
}

resource "aws_vpc_security_group_egress_rule" "anywhere" {
  region            = var.cloud_region
  security_group_id = aws_security_group.workers.id
  description       = "Kafka clusters in every region and cloud; Secrets Manager, ECR and CloudWatch Logs"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
  tags              = local.tags
}

resource "aws_ecs_task_definition" "workers" {
  #checkov:skip=CKV_AWS_336:The entrypoint writes TERN_CONFIG to /etc/tern/tern.toml when the container starts, so the root filesystem stays writable; the process runs as a non-root user.
  region                   = var.cloud_region
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = tostring(var.cpu * 1024)
  memory                   = tostring(var.memory_mib)
  execution_role_arn       = aws_iam_role.execution.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  container_definitions = jsonencode([{
    name         = "tern"
    image        = var.image
    essential    = true
    user         = "10001:10001"
    portMappings = [{ containerPort = var.web_port, protocol = "tcp" }]
    environment  = [for k in sort(keys(module.worker.environment)) : { name = k, value = module.worker.environment[k] }]
    secrets      = [for k in sort(keys(var.secret_env)) : { name = k, valueFrom = data.aws_secretsmanager_secret.env[k].arn }]
    # Liveness: three failures 30 s apart replace the task, and a deployment whose tasks never
    # turn healthy is rolled back. /livez answers while the process serves, so an outage of a
    # remote cluster (which /readyz reports) neither replaces tasks nor rolls deployments back.
    healthCheck = {
      command     = ["CMD-SHELL", "curl -fsS http://127.0.0.1:${var.web_port}${module.worker.liveness_path} || exit 1"]
      interval    = 30
      timeout     = 5
      retries     = 3
      startPeriod = 60
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.workers.name
        awslogs-region        = var.cloud_region
        awslogs-stream-prefix = "tern"
      }
    }
    stopTimeout = 30
  }])

  tags = local.tags

  lifecycle {
    precondition {
      condition     = local.memory_fits_cpu
      error_message = "Fargate runs 2 to 8 GiB per vCPU: with cpu = ${var.cpu}, memory_mib must be between ${var.cpu * 2048} and ${var.cpu * 8192}; got ${var.memory_mib}."
    }
  }
}

resource "aws_ecs_service" "workers" {
  region                  = var.cloud_region
  name                    = var.name
  cluster                 = aws_ecs_cluster.workers.id
  task_definition         = aws_ecs_task_definition.workers.arn
  desired_count           = var.worker_count
  launch_type             = "FARGATE"
  enable_ecs_managed_tags = true
  propagate_tags          = "SERVICE"

  # Workers of a flow share its partitions through a consumer group, so old and new tasks may
  # overlap during a deployment; a deployment that never turns healthy is rolled back.
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.network.subnet_ids
    security_groups  = [aws_security_group.workers.id]
    assign_public_ip = false
  }

  tags = local.tags
}
