# Plans against a mocked AWS provider: nothing is created, the assertions read the planned values.
mock_provider "aws" {}

variables {
  availability_zone = "us-west-2a"
}

run "public_subnet_without_nat" {
  command = plan

  assert {
    condition     = length(aws_nat_gateway.this) == 0 && aws_subnet.this.map_public_ip_on_launch
    error_message = "without nat the subnet is public and has no NAT gateway"
  }

  assert {
    condition     = length([for r in aws_security_group.executors.ingress : r if r.from_port == 22]) == 0
    error_message = "SSH stays closed unless ssh_access_cidr_range is set"
  }

  assert {
    condition     = one([for r in aws_security_group.docker_mirror.ingress : r.cidr_blocks if r.from_port == 5000]) == tolist(["10.0.1.0/24"])
    error_message = "the registry is reachable from the subnet only"
  }
}

run "private_subnet_with_nat_and_ssh" {
  command = plan

  variables {
    nat                   = true
    ssh_access_cidr_range = "203.0.113.0/24"
  }

  assert {
    condition     = length(aws_nat_gateway.this) == 1 && !aws_subnet.this.map_public_ip_on_launch && aws_route.internet.gateway_id == null
    error_message = "with nat the subnet gets no public IPs and routes out through the NAT gateway"
  }

  assert {
    condition     = one([for r in aws_security_group.executors.ingress : r.cidr_blocks if r.from_port == 22]) == tolist(["203.0.113.0/24"])
    error_message = "SSH is open to ssh_access_cidr_range only"
  }
}

run "rejects_bad_cidr" {
  command = plan

  variables {
    subnet_cidr = "10.0.1.0/33"
  }

  expect_failures = [var.subnet_cidr]
}
