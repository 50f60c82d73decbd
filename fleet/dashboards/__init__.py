"""Grafana dashboards and Prometheus rules and scrape configs for a fleet (docs/operations.md)."""
