# Seed 001's executors block, with only the variables the seed writes: the zone comes from the region and the images
# from this account's Packer-built AMIs; without such an AMI the error says where to get one.
mock_provider "aws" {
  mock_data "aws_region" {
    defaults = { name = "us-west-2" }
  }
  mock_data "aws_availability_zones" {
    defaults = { names = ["us-west-2a", "us-west-2b"] }
  }
  mock_data "aws_ami_ids" {
    defaults = { ids = ["ami-0a1b2c3d4e5f60718"] }
  }
}

variables {
  executor_sourcegraph_external_url            = "https://fleet.example.com"
  executor_sourcegraph_executor_proxy_password = "our-shared-secret-of-20-chars"
  executor_queue_name                          = "codeintel"
  executor_instance_tag                        = "codeintel"
  executor_metrics_environment_label           = "prod"
  docker_mirror_static_ip                      = "10.0.1.4"
}

run "seed_block_as_written" {
  command = plan

  assert {
    condition     = output.availability_zone == "us-west-2a"
    error_message = "without availability_zone, the region's first zone is used"
  }

  assert {
    condition     = output.docker_mirror_ami == "ami-0a1b2c3d4e5f60718" && output.executor_ami == "ami-0a1b2c3d4e5f60718"
    error_message = "without AMI ids, the account's newest Packer-built images are used"
  }
}

run "missing_executor_ami_points_to_packer" {
  command = plan

  override_data {
    target = data.aws_ami_ids.executor[0]
    values = { ids = [] }
  }

  expect_failures = [data.aws_ami_ids.executor[0]]
}

run "fixed_size_pool" {
  command = plan

  variables {
    min_replicas = 2
    max_replicas = 2
  }

  assert {
    condition     = length(output.scaling_table) > 0 && alltrue([for row in output.scaling_table : row.capacity == 2])
    error_message = "min_replicas == max_replicas is a fixed-size pool of that many instances"
  }
}
