"""Fleet infrastructure: the fleet config file, Terraform, and the live status of a deployed fleet."""
