# The Docker registry mirror machine image for AWS (amazon-ebs) and Google Cloud (googlecompute), built from
# Debian 12 by provision-mirror.sh. The cache itself lives on the data disk the Terraform docker-mirror module
# attaches and mounts at /mnt/registry. See docs/images.md.
#
#   packer init images/mirror
#   packer build -var version=0.1.0 -var gcp_project_id=my-project images/mirror

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
  description = "Version of executor-fleet the image belongs to; part of the image name, e.g. 0.1.0."
  validation {
    condition     = can(regex("^[0-9A-Za-z.-]+$", var.version))
    error_message = "version: use letters, digits, dots and dashes, e.g. 0.1.0."
  }
}

variable "upstream_url" {
  type        = string
  default     = "https://registry-1.docker.io"
  description = "Registry the cache pulls through to."
}

variable "deb_dir" {
  type        = string
  default     = ""
  description = "Folder of .deb files installed first (air-gapped builds); empty = none."
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
  name = "executor-fleet-mirror-${lower(replace(var.version, ".", "-"))}-${local.stamp}"
  work = "/tmp/executor-fleet"
  # An unused upload source when no folder is given: it holds no .deb files, so the script installs none.
  deb_dir = var.deb_dir != "" ? var.deb_dir : "${path.root}/files"
  labels = {
    "executor-fleet-image"   = "mirror"
    "executor-fleet-version" = lower(replace(var.version, ".", "-"))
  }
}

source "amazon-ebs" "mirror" {
  region        = var.aws_region
  ami_regions   = var.aws_ami_regions
  instance_type = "t3.medium"
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
  tags = local.labels
}

source "googlecompute" "mirror" {
  project_id              = var.gcp_project_id
  zone                    = var.gcp_zone
  source_image_family     = "debian-12"
  source_image_project_id = ["debian-cloud"]
  machine_type            = "e2-medium"
  image_name              = local.name
  image_family            = "executor-fleet-mirror"
  image_labels            = local.labels
  ssh_username            = "packer"
}

build {
  sources = ["source.amazon-ebs.mirror", "source.googlecompute.mirror"]

  provisioner "shell" {
    inline = ["mkdir -p ${local.work}/images ${local.work}/debs"]
  }

  provisioner "file" {
    source      = "${path.root}/../"
    destination = "${local.work}/images"
  }

  provisioner "file" {
    source      = "${local.deb_dir}/"
    destination = "${local.work}/debs"
  }

  provisioner "shell" {
    execute_command = "chmod +x {{ .Path }}; sudo -E {{ .Path }}"
    inline = [
      "${local.work}/images/mirror/provision-mirror.sh --deb-dir ${local.work}/debs --upstream-url '${var.upstream_url}'",
      "rm -rf ${local.work}",
      "apt-get clean",
    ]
  }

  post-processor "manifest" {
    output = "packer-manifest-mirror.json"
  }
}
