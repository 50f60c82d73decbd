output "vpc_id" {
  description = "Id of the VPC."
  value       = aws_vpc.this.id
}

output "subnet_id" {
  description = "Id of the subnet for executors and the Docker mirror."
  value       = aws_subnet.this.id
}

output "subnet_cidr" {
  description = "Address range of that subnet."
  value       = aws_subnet.this.cidr_block
}

output "availability_zone" {
  description = "Availability zone of that subnet."
  value       = aws_subnet.this.availability_zone
}

output "executor_security_group_id" {
  description = "Security group for the executor instances."
  value       = aws_security_group.executors.id
}

output "docker_mirror_security_group_id" {
  description = "Security group for the Docker mirror."
  value       = aws_security_group.docker_mirror.id
}

output "nat" {
  description = "Whether the subnet reaches the internet through NAT (instances then need no public IP)."
  value       = var.nat
}
