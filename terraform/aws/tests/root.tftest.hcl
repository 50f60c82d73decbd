# Plans the whole fleet against a mocked AWS provider: nothing is created, the assertions read the planned values.
mock_provider "aws" {
  mock_data "aws_region" {
    defaults = { name = "us-west-2" }
  }
}

variables {
  availability_zone                            = "us-west-2a"
  docker_mirror_ami                            = "ami-0123456789abcdef0"
  executor_ami                                 = "ami-0123456789abcdef1"
  executor_sourcegraph_external_url            = "https://fleet.example.com"
  executor_sourcegraph_executor_proxy_password = "0123456789abcdefghij"
  executor_queue_name                          = "batches"
  executor_instance_tag                        = "batches"
  executor_metrics_environment_label           = "staging"
  min_replicas                                 = 0
  max_replicas                                 = 3
  jobs_per_instance_scaling                    = 4
}

run "wires_mirror_into_executors" {
  command = plan

  assert {
    condition     = strcontains(module.executors.startup_script, "EXECUTOR_DOCKER_REGISTRY_MIRROR_URL='http://10.0.1.4:5000'")
    error_message = "executors must be pointed at the mirror's static IP"
  }

  assert {
    condition     = jsonencode(output.scaling_table) == jsonencode([for n in range(4) : { capacity = n, needed_from = n, needed_to = n == 3 ? null : n }])
    error_message = "max 3, jobs 4: needed 0,1,2,3+ map to capacities 0,1,2,3"
  }
}

run "private_fleet_has_no_public_ips" {
  command = plan

  variables {
    nat = true
  }

  assert {
    condition     = !module.executors.assign_public_ip && module.networking.nat
    error_message = "private executors get no public IP"
  }
}

run "rejects_mirror_ip_outside_subnet" {
  command = plan

  variables {
    docker_mirror_static_ip = "10.0.2.4"
  }

  expect_failures = [var.docker_mirror_static_ip]
}

run "rejects_reserved_mirror_ip" {
  command = plan

  variables {
    docker_mirror_static_ip = "10.0.1.1"
  }

  expect_failures = [var.docker_mirror_static_ip]
}
