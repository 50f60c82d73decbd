# Plans against a mocked AWS provider: nothing is created, the assertions read the planned values.
mock_provider "aws" {
  mock_data "aws_region" {
    defaults = { name = "us-west-2" }
  }
}

variables {
  subnet_ids                          = ["subnet-0123456789abcdef0"]
  security_group_ids                  = ["sg-0123456789abcdef0"]
  ami                                 = "ami-0123456789abcdef0"
  sourcegraph_external_url            = "https://fleet.example.com"
  sourcegraph_executor_proxy_password = "it's a $ecret \"with\" spaces & $(quotes)"
  queue_name                          = "codeintel"
  instance_tag                        = "codeintel"
  metrics_environment_label           = "prod"
  min_replicas                        = 0
  max_replicas                        = 45
  jobs_per_instance_scaling           = 10
  docker_registry_mirror              = "http://10.0.1.4:5000"
}

run "scaling_reaches_needed_capacity_in_one_step" {
  command = plan

  # 45 instances need three bands of at most 20 exact-capacity steps.
  assert {
    condition     = length(aws_autoscaling_policy.scale) == 3 && length(aws_cloudwatch_metric_alarm.scale) == 3
    error_message = "expected 3 step policies and alarms for max_replicas = 45"
  }

  assert {
    condition     = alltrue([for p in aws_autoscaling_policy.scale : p.adjustment_type == "ExactCapacity" && p.policy_type == "StepScaling"])
    error_message = "every policy must set an exact capacity"
  }

  # desired = clamp(ceil(q / 10), 0, 45) for queue sizes 0, 1, 10, 11, 199, 200, 201, 399, 450, 10000
  assert {
    condition = alltrue([
      for q in [0, 1, 10, 11, 199, 200, 201, 399, 450, 10000] : one([
        for row in output.scaling_table : row.capacity
        if ceil(q / 10) >= row.needed_from && try(ceil(q / 10) <= row.needed_to, true)
      ]) == min(max(ceil(q / 10), 0), 45)
    ])
    error_message = "the scaling table does not give ceil(queue / jobs_per_instance_scaling) clamped to [min, max]"
  }

  assert {
    condition     = [for s in aws_autoscaling_policy.scale[2].step_adjustment : s.scaling_adjustment] == [40, 41, 42, 43, 44, 45]
    error_message = "the last band must map needed 40..45+ to capacities 40..45"
  }

  assert {
    condition     = length(aws_autoscaling_policy.scale[0].step_adjustment) == 20
    error_message = "a full band holds 20 steps"
  }

  assert {
    condition = alltrue([for a in aws_cloudwatch_metric_alarm.scale : anytrue([
      for m in a.metric_query : try(m.metric[0].metric_name == "src_executors_queue_size" &&
        m.metric[0].namespace == "sourcegraph-executor" &&
      m.metric[0].dimensions["queueName"] == "codeintel" && m.metric[0].dimensions["environment"] == "prod", false)
    ])])
    error_message = "alarms must read src_executors_queue_size{queueName, environment} in the sourcegraph-executor namespace"
  }

  assert {
    condition     = contains([for m in aws_cloudwatch_metric_alarm.scale[1].metric_query : m.expression], "IF(needed >= 20 AND needed < 40, needed - 20, -1)")
    error_message = "the middle band's alarm must only fire for 20 <= needed < 40"
  }

  assert {
    condition     = contains([for m in aws_cloudwatch_metric_alarm.scale[0].metric_query : m.expression], "CEIL(queue / 10)")
    error_message = "needed must be CEIL(queue / jobs_per_instance_scaling)"
  }

  assert {
    condition     = aws_autoscaling_group.this.min_size == 0 && aws_autoscaling_group.this.max_size == 45
    error_message = "the group must span min_replicas..max_replicas"
  }
}

run "min_replicas_clamps_capacity" {
  command = plan

  variables {
    min_replicas = 2
    max_replicas = 5
  }

  assert {
    condition     = [for s in aws_autoscaling_policy.scale[0].step_adjustment : s.scaling_adjustment] == [2, 2, 2, 3, 4, 5]
    error_message = "capacities below min_replicas must be raised to it"
  }
}

run "startup_script_writes_quoted_env_file" {
  command = plan

  assert {
    condition     = strcontains(output.startup_script, "EXECUTOR_FRONTEND_PASSWORD='it'\\''s a $ecret \"with\" spaces & $(quotes)'\n")
    error_message = "the password must be single-quoted with its own single quote escaped"
  }

  assert {
    condition     = strcontains(output.startup_script, "cat >\"$ENV_FILE.tmp\" <<'EXECUTOR_ENV_EOF'\nEXECUTOR_DOCKER_REGISTRY_MIRROR_URL='http://10.0.1.4:5000'\n")
    error_message = "the env file must be written through a quoted heredoc (no shell expansion) and name the mirror"
  }

  assert {
    condition     = strcontains(output.startup_script, "{\"registry-mirrors\":[\"http://10.0.1.4:5000\"]}") && strcontains(output.startup_script, "systemctl enable --now executor.service")
    error_message = "the script must point Docker at the mirror and start executor.service"
  }

  assert {
    condition = output.env_names == tolist([
      "EXECUTOR_DOCKER_REGISTRY_MIRROR_URL", "EXECUTOR_FIRECRACKER_DISK_SPACE",
      "EXECUTOR_FRONTEND_PASSWORD", "EXECUTOR_FRONTEND_URL", "EXECUTOR_JOB_MEMORY", "EXECUTOR_JOB_NUM_CPUS",
      "EXECUTOR_MAXIMUM_NUM_JOBS", "EXECUTOR_MAXIMUM_RUNTIME_PER_JOB", "EXECUTOR_MAX_ACTIVE_TIME",
      "EXECUTOR_NUM_TOTAL_JOBS", "EXECUTOR_QUEUE_NAME", "EXECUTOR_USE_FIRECRACKER", "EXECUTOR_VM_PREFIX", "SRC_LOG_LEVEL",
    ])
    error_message = "the env file must hold exactly the agent settings the module manages"
  }

  assert {
    condition     = aws_launch_template.this.instance_initiated_shutdown_behavior == "terminate" && length(aws_launch_template.this.instance_market_options) == 0
    error_message = "retiring executors power off into termination; on-demand unless use_spot"
  }

  assert {
    condition     = aws_autoscaling_lifecycle_hook.drain.lifecycle_transition == "autoscaling:EC2_INSTANCE_TERMINATING" && aws_autoscaling_lifecycle_hook.drain.default_result == "CONTINUE"
    error_message = "scale-in must wait on a termination lifecycle hook"
  }
}

run "multi_queue_pool_on_spot" {
  command = plan

  variables {
    queue_name  = null
    queue_names = ["codeintel", "batches"]
    use_spot    = true
  }

  assert {
    condition     = output.metric_queue_name == "batches_codeintel"
    error_message = "the metric queueName of a multi-queue pool is the sorted names joined by _"
  }

  assert {
    condition     = strcontains(output.startup_script, "EXECUTOR_QUEUE_NAMES='codeintel,batches'") && !strcontains(output.startup_script, "EXECUTOR_QUEUE_NAME=")
    error_message = "a multi-queue pool sets EXECUTOR_QUEUE_NAMES only"
  }

  assert {
    condition     = aws_launch_template.this.instance_market_options[0].market_type == "spot"
    error_message = "use_spot must request spot capacity"
  }
}

run "rejects_both_queue_name_and_queue_names" {
  command = plan

  variables {
    queue_names = ["batches"]
  }

  expect_failures = [var.queue_name]
}

run "rejects_short_password" {
  command = plan

  variables {
    sourcegraph_executor_proxy_password = "short"
  }

  expect_failures = [var.sourcegraph_executor_proxy_password]
}

run "rejects_max_below_min" {
  command = plan

  variables {
    min_replicas = 3
    max_replicas = 2
  }

  expect_failures = [var.max_replicas]
}

run "rejects_zero_jobs_per_instance" {
  command = plan

  variables {
    jobs_per_instance_scaling = 0
  }

  expect_failures = [var.jobs_per_instance_scaling]
}

run "rejects_extra_env_overriding_a_variable" {
  command = plan

  variables {
    extra_env = { EXECUTOR_QUEUE_NAME = "batches", EXECUTOR_KEEP_WORKSPACES = "true" }
  }

  expect_failures = [var.extra_env]
}

run "passes_extra_agent_settings" {
  command = plan

  variables {
    extra_env = { EXECUTOR_KEEP_WORKSPACES = "true" }
  }

  assert {
    condition     = strcontains(output.startup_script, "EXECUTOR_KEEP_WORKSPACES='true'\n")
    error_message = "extra_env settings must reach the env file"
  }
}

run "default_instance_type_has_kvm_for_the_default_microvm_runtime" {
  command = plan

  assert {
    condition     = var.use_firecracker && endswith(aws_launch_template.this.instance_type, ".metal")
    error_message = "with use_firecracker (the default) the default instance type must be a metal type (KVM)"
  }
}

run "firecracker_on_a_type_without_kvm_is_flagged" {
  command = plan

  variables {
    machine_type = "m5.large"
  }

  expect_failures = [check.kvm_for_firecracker]
}

run "docker_runtime_runs_on_any_type" {
  command = plan

  variables {
    machine_type    = "m5.large"
    use_firecracker = false
  }

  assert {
    condition     = aws_launch_template.this.instance_type == "m5.large"
    error_message = "use_firecracker = false must keep the chosen instance type"
  }
}
