data "aws_region" "current" {}

locals {
  name              = "${var.resource_prefix}executors-${var.instance_tag}"
  metric_queue_name = var.queue_name != null ? var.queue_name : join("_", sort(var.queue_names))
  # Names are fixed here rather than read from the resources, because the startup script (inside the launch
  # template) names the group and hook that are created after it.
  lifecycle_hook_name = "${local.name}-drain"
  log_group_name      = "/executor-fleet/${local.name}"

  env = merge(var.extra_env, local.env_from_variables)
  env_from_variables = {
    EXECUTOR_FRONTEND_URL               = var.sourcegraph_external_url
    EXECUTOR_FRONTEND_PASSWORD          = var.sourcegraph_executor_proxy_password
    EXECUTOR_QUEUE_NAME                 = var.queue_name
    EXECUTOR_QUEUE_NAMES                = length(var.queue_names) > 0 ? join(",", var.queue_names) : null
    EXECUTOR_USE_FIRECRACKER            = tostring(var.use_firecracker)
    EXECUTOR_MAXIMUM_NUM_JOBS           = tostring(var.maximum_num_jobs)
    EXECUTOR_MAXIMUM_RUNTIME_PER_JOB    = var.maximum_runtime_per_job
    EXECUTOR_JOB_NUM_CPUS               = tostring(var.job_num_cpus)
    EXECUTOR_JOB_MEMORY                 = var.job_memory
    EXECUTOR_FIRECRACKER_DISK_SPACE     = var.firecracker_disk_space
    EXECUTOR_NUM_TOTAL_JOBS             = tostring(var.num_total_jobs)
    EXECUTOR_MAX_ACTIVE_TIME            = var.max_active_time
    EXECUTOR_DOCKER_REGISTRY_MIRROR_URL = var.docker_registry_mirror != "" ? var.docker_registry_mirror : null
    DOCKER_REGISTRY_NODE_EXPORTER_URL   = var.docker_registry_node_exporter_url != "" ? var.docker_registry_node_exporter_url : null
    EXECUTOR_VM_PREFIX                  = "executor"
    SRC_LOG_LEVEL                       = var.log_level
  }

  cloudwatch_agent_config = jsonencode({
    logs = {
      logs_collected = {
        files = {
          collect_list = [for path in ["/var/log/syslog", "/var/log/messages", "/var/log/cloud-init-output.log"] : {
            file_path       = path
            log_group_name  = local.log_group_name
            log_stream_name = "{instance_id}${path}"
          }]
        }
      }
    }
  })

  startup_script = templatefile("${path.module}/startup.sh.tftpl", {
    agent_setup             = module.env.setup_script
    region                  = data.aws_region.current.name
    autoscaling_group_name  = local.name
    lifecycle_hook_name     = local.lifecycle_hook_name
    cloudwatch_agent_config = local.cloudwatch_agent_config
  })

  tags = merge(var.tags, { executor_tag = var.instance_tag })
}

module "env" {
  source                 = "../../../common/executor-env"
  env                    = local.env
  docker_registry_mirror = var.docker_registry_mirror
}

resource "aws_cloudwatch_log_group" "this" {
  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

resource "aws_iam_role" "this" {
  name = local.name
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = "sts:AssumeRole", Principal = { Service = "ec2.amazonaws.com" } }]
  })
  tags = local.tags
}

resource "aws_iam_role_policy" "this" {
  name = "executor"
  role = aws_iam_role.this.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ShipLogs"
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
        Resource = ["${aws_cloudwatch_log_group.this.arn}:*"]
      },
      {
        Sid      = "FinishDraining"
        Effect   = "Allow"
        Action   = ["autoscaling:CompleteLifecycleAction", "autoscaling:RecordLifecycleActionHeartbeat"]
        Resource = [aws_autoscaling_group.this.arn]
      },
    ]
  })
}

resource "aws_iam_instance_profile" "this" {
  name = local.name
  role = aws_iam_role.this.name
  tags = local.tags
}

# A microVM per job needs /dev/kvm. A warning, not an error: the executor itself refuses to start without usable KVM
# (`executor validate` says why), and EC2 may offer KVM on more types than .metal.
check "kvm_for_firecracker" {
  assert {
    condition     = !var.use_firecracker || endswith(var.machine_type, ".metal")
    error_message = "use_firecracker = true runs a microVM per job, which needs KVM; EC2 offers it on .metal instance types and machine_type is ${var.machine_type}: pick one such as c5n.metal, or set use_firecracker = false"
  }
}

resource "aws_launch_template" "this" {
  name_prefix            = "${local.name}-"
  image_id               = var.ami
  instance_type          = var.machine_type
  key_name               = var.ssh_key_name
  user_data              = base64encode(local.startup_script)
  update_default_version = true
  # The image powers the VM off when the agent retires (exit 0); terminating then frees the slot for the group.
  instance_initiated_shutdown_behavior = "terminate"

  iam_instance_profile {
    arn = aws_iam_instance_profile.this.arn
  }

  network_interfaces {
    associate_public_ip_address = var.assign_public_ip
    security_groups             = var.security_group_ids
    delete_on_termination       = true
  }

  block_device_mappings {
    device_name = "/dev/sda1"
    ebs {
      volume_size           = var.boot_disk_size
      volume_type           = "gp3"
      iops                  = var.boot_disk_iops
      encrypted             = true
      delete_on_termination = true
    }
  }

  metadata_options {
    http_endpoint          = "enabled"
    http_tokens            = "required"
    instance_metadata_tags = "enabled"
  }

  dynamic "instance_market_options" {
    for_each = var.use_spot ? [1] : []
    content {
      market_type = "spot"
      spot_options {
        spot_instance_type             = "one-time"
        instance_interruption_behavior = "terminate"
      }
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = local.name })
  }

  tags = local.tags
}

resource "aws_autoscaling_group" "this" {
  name                = local.name
  min_size            = var.min_replicas
  max_size            = var.max_replicas
  vpc_zone_identifier = var.subnet_ids
  health_check_type   = "EC2"
  # Capacity follows the queue; waiting for instances at apply time would stall on an empty queue.
  wait_for_capacity_timeout = "0"
  enabled_metrics           = ["GroupDesiredCapacity", "GroupInServiceInstances", "GroupPendingInstances", "GroupTerminatingInstances"]

  launch_template {
    id      = aws_launch_template.this.id
    version = aws_launch_template.this.latest_version
  }

  # A new image or setting rolls the group; the drain hook lets each replaced instance finish its jobs first.
  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = 50
    }
  }

  dynamic "tag" {
    for_each = merge(local.tags, { Name = local.name })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = false
    }
  }
}

resource "aws_autoscaling_lifecycle_hook" "drain" {
  name                   = local.lifecycle_hook_name
  autoscaling_group_name = aws_autoscaling_group.this.name
  lifecycle_transition   = "autoscaling:EC2_INSTANCE_TERMINATING"
  heartbeat_timeout      = var.termination_drain_timeout
  default_result         = "CONTINUE"
}
