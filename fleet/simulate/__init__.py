"""Autoscaling simulator: how a scaling policy would have served a job-arrival trace."""
