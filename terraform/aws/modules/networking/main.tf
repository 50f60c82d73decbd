locals {
  name           = "${var.resource_prefix}executors"
  metrics_source = var.http_metrics_access_cidr_range != "" ? var.http_metrics_access_cidr_range : var.subnet_cidr
}

resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = merge(var.tags, { Name = local.name })
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = local.name })
}

resource "aws_subnet" "this" {
  vpc_id                  = aws_vpc.this.id
  cidr_block              = var.subnet_cidr
  availability_zone       = var.availability_zone
  map_public_ip_on_launch = !var.nat
  tags                    = merge(var.tags, { Name = local.name })
}

resource "aws_route_table" "this" {
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = local.name })
}

resource "aws_route" "internet" {
  route_table_id         = aws_route_table.this.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = var.nat ? null : aws_internet_gateway.this.id
  nat_gateway_id         = var.nat ? aws_nat_gateway.this[0].id : null
}

resource "aws_route_table_association" "this" {
  subnet_id      = aws_subnet.this.id
  route_table_id = aws_route_table.this.id
}

# With NAT, only the gateway sits in a public subnet; nothing else is reachable from the internet.
resource "aws_subnet" "nat" {
  count             = var.nat ? 1 : 0
  vpc_id            = aws_vpc.this.id
  cidr_block        = var.nat_subnet_cidr
  availability_zone = var.availability_zone
  tags              = merge(var.tags, { Name = "${local.name}-nat" })
}

resource "aws_route_table" "nat" {
  count  = var.nat ? 1 : 0
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${local.name}-nat" })
}

resource "aws_route" "nat_internet" {
  count                  = var.nat ? 1 : 0
  route_table_id         = aws_route_table.nat[0].id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "nat" {
  count          = var.nat ? 1 : 0
  subnet_id      = aws_subnet.nat[0].id
  route_table_id = aws_route_table.nat[0].id
}

resource "aws_eip" "nat" {
  count  = var.nat ? 1 : 0
  domain = "vpc"
  tags   = merge(var.tags, { Name = "${local.name}-nat" })
}

resource "aws_nat_gateway" "this" {
  count         = var.nat ? 1 : 0
  allocation_id = aws_eip.nat[0].id
  subnet_id     = aws_subnet.nat[0].id
  tags          = merge(var.tags, { Name = local.name })
  depends_on    = [aws_internet_gateway.this]
}

resource "aws_security_group" "executors" {
  name        = "${local.name}-executors"
  description = "Executors: metrics scrape and optional SSH in, anything out"
  vpc_id      = aws_vpc.this.id
  tags        = merge(var.tags, { Name = "${local.name}-executors" })

  ingress {
    description = "executor and node metrics on the agent metrics port"
    from_port   = 9999
    to_port     = 9999
    protocol    = "tcp"
    cidr_blocks = [local.metrics_source]
  }

  dynamic "ingress" {
    for_each = var.ssh_access_cidr_range != "" ? [var.ssh_access_cidr_range] : []
    content {
      description = "SSH"
      from_port   = 22
      to_port     = 22
      protocol    = "tcp"
      cidr_blocks = [ingress.value]
    }
  }

  egress {
    description = "fleet server, image pulls, git"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_security_group" "docker_mirror" {
  name        = "${local.name}-docker-mirror"
  description = "Docker mirror: registry and its metrics from the subnet, optional SSH in, anything out"
  vpc_id      = aws_vpc.this.id
  tags        = merge(var.tags, { Name = "${local.name}-docker-mirror" })

  dynamic "ingress" {
    for_each = { registry = 5000, "registry metrics" = 5001, "node exporter" = 9100 }
    content {
      description = ingress.key
      from_port   = ingress.value
      to_port     = ingress.value
      protocol    = "tcp"
      cidr_blocks = [ingress.key == "registry" ? var.subnet_cidr : local.metrics_source]
    }
  }

  dynamic "ingress" {
    for_each = var.ssh_access_cidr_range != "" ? [var.ssh_access_cidr_range] : []
    content {
      description = "SSH"
      from_port   = 22
      to_port     = 22
      protocol    = "tcp"
      cidr_blocks = [ingress.value]
    }
  }

  egress {
    description = "upstream registry"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}
