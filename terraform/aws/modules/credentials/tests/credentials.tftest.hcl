# Plans against a mocked AWS provider: nothing is created, the assertions read the planned values.
mock_provider "aws" {
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
}

run "grants_put_metric_data_only" {
  command = plan

  assert {
    condition     = length(jsondecode(aws_iam_user_policy.metric_writer.policy).Statement) == 1
    error_message = "the metric writer must have exactly one policy statement"
  }

  assert {
    condition     = jsondecode(aws_iam_user_policy.metric_writer.policy).Statement[0].Action == "cloudwatch:PutMetricData" && jsondecode(aws_iam_user_policy.metric_writer.policy).Statement[0].Effect == "Allow"
    error_message = "the only permission must be cloudwatch:PutMetricData"
  }

  assert {
    condition     = jsondecode(aws_iam_user_policy.metric_writer.policy).Statement[0].Condition.StringEquals["cloudwatch:namespace"] == "sourcegraph-executor"
    error_message = "the key must be limited to the executor metrics namespace"
  }

  assert {
    condition     = aws_iam_user.metric_writer.name == "executor-metric-writer" && aws_iam_access_key.metric_writer.user == "executor-metric-writer"
    error_message = "the access key must belong to the metric writer user"
  }
}

run "randomized_name" {
  command = apply

  variables {
    resource_prefix          = "prod-"
    randomize_resource_names = true
  }

  assert {
    condition     = can(regex("^prod-executor-metric-writer-[0-9a-f]{8}$", aws_iam_user.metric_writer.name))
    error_message = "a randomized name carries an 8-hex-digit suffix"
  }
}

run "rejects_reserved_namespace" {
  command = plan

  variables {
    metrics_namespace = "AWS/EC2"
  }

  expect_failures = [var.metrics_namespace]
}

# Seed 001's block, exactly as the seed writes it.
run "seed_block_with_region_and_prefix" {
  command = plan

  variables {
    region          = "us-west-2"
    resource_prefix = ""
  }

  assert {
    condition     = output.metric_writer_region == "us-west-2" && aws_iam_user.metric_writer.name == "executor-metric-writer"
    error_message = "the seed's region and empty prefix must be accepted"
  }
}

run "region_defaults_to_the_providers" {
  command = plan

  assert {
    condition     = output.metric_writer_region == "eu-west-1"
    error_message = "without region, the provider's region is the one to publish in"
  }
}

run "rejects_a_malformed_region" {
  command = plan

  variables {
    region = "<region>"
  }

  expect_failures = [var.region]
}
