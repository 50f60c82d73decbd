# Plans against a mocked AWS provider: nothing is created, the assertions read the planned values.
mock_provider "aws" {
  mock_resource "aws_ebs_volume" {
    defaults = { id = "vol-0123456789abcdef0" }
  }
}

variables {
  subnet_id          = "subnet-0123456789abcdef0"
  availability_zone  = "us-west-2a"
  security_group_ids = ["sg-0123456789abcdef0"]
  ami                = "ami-0123456789abcdef0"
  static_ip          = "10.0.1.9"
}

run "cache_lives_on_a_separate_volume" {
  command = apply

  assert {
    condition     = aws_instance.this.private_ip == "10.0.1.9" && output.url == "http://10.0.1.9:5000"
    error_message = "the mirror sits at static_ip and serves on :5000"
  }

  assert {
    condition     = aws_volume_attachment.data.volume_id == aws_ebs_volume.data.id && aws_ebs_volume.data.size == 64
    error_message = "the cache volume is a separate EBS volume attached to the mirror"
  }

  assert {
    condition     = strcontains(aws_instance.this.user_data, "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0") && strcontains(aws_instance.this.user_data, "if ! blkid \"$device\"")
    error_message = "the startup script must find the volume by id and format it only when blkid finds no filesystem"
  }

  assert {
    condition     = strcontains(aws_instance.this.user_data, "REGISTRY_PROXY_REMOTEURL='https://registry-1.docker.io'") && strcontains(aws_instance.this.user_data, "'registry:2'")
    error_message = "the mirror runs registry:2 as a pull-through cache"
  }
}

run "rejects_bad_static_ip" {
  command = plan

  variables {
    static_ip = "10.0.1.300"
  }

  expect_failures = [var.static_ip]
}
