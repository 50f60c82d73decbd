"""`fleet infra`: the Terraform-driven fleet lifecycle."""

from __future__ import annotations
