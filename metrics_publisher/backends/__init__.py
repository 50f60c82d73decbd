"""Where queue sizes are published: CloudWatch, Cloud Monitoring, Prometheus, or stdout for --dry-run."""
