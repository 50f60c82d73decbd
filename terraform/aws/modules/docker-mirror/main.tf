locals {
  name = "${var.resource_prefix}executors-docker-mirror"
  # Nitro instances expose EBS volumes as NVMe devices named after the volume id; Xen ones as /dev/xvdf.
  device_name = "/dev/sdf"
  startup_script = templatefile("${path.module}/../../../common/docker-mirror-startup/startup.sh.tftpl", {
    data_disk_devices   = ["/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${replace(aws_ebs_volume.data.id, "-", "")}", "/dev/xvdf"]
    upstream_url        = var.upstream_url
    registry_image      = var.registry_image
    node_exporter_image = var.node_exporter_image
  })
}

resource "aws_ebs_volume" "data" {
  availability_zone = var.availability_zone
  size              = var.disk_size
  type              = "gp3"
  encrypted         = true
  tags              = merge(var.tags, { Name = "${local.name}-data" })
}

resource "aws_instance" "this" {
  ami                         = var.ami
  instance_type               = var.machine_type
  subnet_id                   = var.subnet_id
  private_ip                  = var.static_ip
  vpc_security_group_ids      = var.security_group_ids
  associate_public_ip_address = var.assign_public_ip
  key_name                    = var.ssh_key_name
  user_data                   = local.startup_script
  user_data_replace_on_change = true

  root_block_device {
    volume_size = var.boot_disk_size
    volume_type = "gp3"
    encrypted   = true
  }

  metadata_options {
    http_endpoint = "enabled"
    http_tokens   = "required"
  }

  tags = merge(var.tags, { Name = local.name })
}

resource "aws_volume_attachment" "data" {
  device_name = local.device_name
  volume_id   = aws_ebs_volume.data.id
  instance_id = aws_instance.this.id
  # Unmount cleanly when the instance is replaced, so the cache stays consistent for the next one.
  stop_instance_before_detaching = true
}
