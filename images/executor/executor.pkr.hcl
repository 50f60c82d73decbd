# The executor machine image for AWS (amazon-ebs) and Google Cloud (googlecompute), built from Debian 12 by
# provision-executor.sh. See docs/images.md.
#
#   pip wheel --no-deps -w dist .
#   packer init images/executor
#   packer build -var version=0.1.0 -var wheel=dist/executor_fleet-0.1.0-py3-none-any.whl \
#     -var gcp_project_id=my-project images/executor            # both clouds
#   packer build -only 'amazon-ebs.*' -var version=0.1.0 -var wheel=... images/executor   # AWS only

packer {
  required_plugins {
    amazon = {
      version = ">= 1.3.0"
      source  = "github.com/hashicorp/amazon"
    }
    googlecompute = {
      version = ">= 1.1.0"
      source  = "github.com/hashicorp/googlecompute"
    }
  }
}

variable "version" {
  type        = string
  description = "Version of executor-fleet baked into the image; part of the image name, e.g. 0.1.0."
  validation {
    condition     = can(regex("^[0-9A-Za-z.-]+$", var.version))
    error_message = "version: use letters, digits, dots and dashes, e.g. 0.1.0."
  }
}

variable "wheel" {
  type        = string
  description = "Path of the executor-fleet wheel to install (pip wheel --no-deps -w dist .)."
  validation {
    condition     = can(regex("\\.whl$", var.wheel))
    error_message = "wheel: expected the path of a .whl file, e.g. dist/executor_fleet-0.1.0-py3-none-any.whl."
  }
}

variable "wheelhouse" {
  type        = string
  default     = ""
  description = "Folder of dependency wheels for an air-gapped build (pip wheel -w wheelhouse .); empty = PyPI."
}

variable "deb_dir" {
  type        = string
  default     = ""
  description = "Folder of .deb files installed first (air-gapped builds, or a pinned Docker); empty = none."
}

variable "firecracker_version" {
  type        = string
  default     = "v1.7.0"
  description = "Firecracker release the image installs (with its jailer) for the microVM runtime."
}

variable "firecracker_sha256" {
  type        = string
  default     = ""
  description = "sha256 of firecracker-<version>-x86_64.tgz: the pin. Empty: no Firecracker (the qemu backend only)."
}

variable "aws_region" {
  type        = string
  default     = "us-west-2"
  description = "Region the AMI is built in."
}

variable "aws_ami_regions" {
  type        = list(string)
  default     = []
  description = "Further regions the AMI is copied to."
}

variable "aws_instance_type" {
  type        = string
  default     = "m6i.large"
  description = "Instance type of the build machine."
}

variable "cloudwatch_agent_deb_url" {
  type        = string
  default     = "https://amazoncloudwatch-agent.s3.amazonaws.com/debian/amd64/latest/amazon-cloudwatch-agent.deb"
  description = "Where the AWS build fetches the CloudWatch agent package; empty = do not install it."
}

variable "gcp_project_id" {
  type        = string
  default     = ""
  description = "Google Cloud project the image is built in (required for the googlecompute source)."
}

variable "gcp_zone" {
  type        = string
  default     = "us-central1-c"
  description = "Zone of the build machine."
}

locals {
  stamp = formatdate("YYYYMMDDhhmmss", timestamp())
  # Google image names allow only lowercase letters, digits and dashes.
  name = "executor-fleet-executor-${lower(replace(var.version, ".", "-"))}-${local.stamp}"
  work = "/tmp/executor-fleet"
  # An unused upload source when no folder is given: the flag below decides whether the script looks at it.
  wheelhouse = var.wheelhouse != "" ? var.wheelhouse : "${path.root}/files"
  deb_dir    = var.deb_dir != "" ? var.deb_dir : "${path.root}/files"
  flags = join(" ", compact([
    var.wheelhouse != "" ? "--wheelhouse ${local.work}/wheelhouse" : "",
    "--deb-dir ${local.work}/debs",
    "--vm-packages",
    var.firecracker_sha256 != "" ? "--firecracker-tarball ${local.work}/firecracker.tgz --firecracker-sha256 ${var.firecracker_sha256}" : "",
  ]))
  labels = {
    "executor-fleet-image"   = "executor"
    "executor-fleet-version" = lower(replace(var.version, ".", "-"))
  }
}

source "amazon-ebs" "executor" {
  region        = var.aws_region
  ami_regions   = var.aws_ami_regions
  instance_type = var.aws_instance_type
  ami_name      = local.name
  ssh_username  = "admin"
  source_ami_filter {
    filters = {
      name                = "debian-12-amd64-*"
      architecture        = "x86_64"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
    owners      = ["136693071363"] # Debian's own AWS account
    most_recent = true
  }
  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_size           = 20
    volume_type           = "gp3"
    delete_on_termination = true
  }
  tags = local.labels
}

source "googlecompute" "executor" {
  project_id              = var.gcp_project_id
  zone                    = var.gcp_zone
  source_image_family     = "debian-12"
  source_image_project_id = ["debian-cloud"]
  machine_type            = "n2-standard-2"
  disk_size               = 20
  image_name              = local.name
  image_family            = "executor-fleet-executor"
  image_labels            = local.labels
  ssh_username            = "packer"
}

build {
  sources = ["source.amazon-ebs.executor", "source.googlecompute.executor"]

  provisioner "shell" {
    inline = ["mkdir -p ${local.work}/images ${local.work}/dist ${local.work}/wheelhouse ${local.work}/debs"]
  }

  provisioner "file" {
    source      = "${path.root}/../"
    destination = "${local.work}/images"
  }

  provisioner "file" {
    source      = var.wheel
    destination = "${local.work}/dist/"
  }

  provisioner "file" {
    source      = "${local.wheelhouse}/"
    destination = "${local.work}/wheelhouse"
  }

  provisioner "file" {
    source      = "${local.deb_dir}/"
    destination = "${local.work}/debs"
  }

  # Log shipping agents: the CloudWatch agent on AWS (its package goes with the others into debs/), the Ops
  # Agent on Google (from Google's repository). Both read the configuration provision-executor.sh installs.
  provisioner "shell" {
    only = ["amazon-ebs.executor"]
    inline = [
      "if [ -n '${var.cloudwatch_agent_deb_url}' ]; then curl -fsSL -o ${local.work}/debs/amazon-cloudwatch-agent.deb '${var.cloudwatch_agent_deb_url}'; fi",
    ]
  }

  provisioner "shell" {
    only = ["googlecompute.executor"]
    inline = [
      "curl -fsSL -o /tmp/add-google-cloud-ops-agent-repo.sh https://dl.google.com/cloudagents/add-google-cloud-ops-agent-repo.sh",
      "sudo bash /tmp/add-google-cloud-ops-agent-repo.sh --also-install",
    ]
  }

  # The pinned Firecracker release; provision-executor.sh checks it against firecracker_sha256 before installing.
  provisioner "shell" {
    inline = [
      "if [ -n '${var.firecracker_sha256}' ]; then curl -fsSL -o ${local.work}/firecracker.tgz https://github.com/firecracker-microvm/firecracker/releases/download/${var.firecracker_version}/firecracker-${var.firecracker_version}-x86_64.tgz; fi",
    ]
  }

  # The AWS drain hook of the Terraform module calls the aws CLI.
  provisioner "shell" {
    only            = ["amazon-ebs.executor"]
    execute_command = "chmod +x {{ .Path }}; sudo -E {{ .Path }}"
    inline = [
      "${local.work}/images/executor/provision-executor.sh ${local.flags} --extra-packages awscli ${local.work}/dist/${basename(var.wheel)}",
    ]
  }

  provisioner "shell" {
    only            = ["googlecompute.executor"]
    execute_command = "chmod +x {{ .Path }}; sudo -E {{ .Path }}"
    inline = [
      "${local.work}/images/executor/provision-executor.sh ${local.flags} ${local.work}/dist/${basename(var.wheel)}",
    ]
  }

  provisioner "shell" {
    execute_command = "chmod +x {{ .Path }}; sudo -E {{ .Path }}"
    inline          = ["rm -rf ${local.work}", "apt-get clean"]
  }

  post-processor "manifest" {
    output = "packer-manifest-executor.json"
  }
}
