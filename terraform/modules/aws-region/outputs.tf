output "worker_group" {
  description = "ARN of the ECS service that runs the workers."
  value       = aws_ecs_service.workers.id
}

output "identity" {
  description = "ARN of the execution role (image pull, logs, secrets)."
  value       = aws_iam_role.execution.arn
}

output "logs" {
  description = "CloudWatch Logs group of the workers."
  value       = aws_cloudwatch_log_group.workers.name
}

output "dashboard" {
  description = "How to reach the dashboard, /metrics, /livez and /readyz."
  value       = "http://<task private IP>:${var.web_port}/ from ${length(var.dashboard_allowed_cidrs) == 0 ? "nowhere (dashboard_allowed_cidrs is empty)" : join(", ", var.dashboard_allowed_cidrs)}; security group ${aws_security_group.workers.id}"
}

output "tern_config" {
  description = "The tern.toml the workers run (tern_config with [web] listen = 0.0.0.0:web_port)."
  value       = module.worker.tern_config
}
