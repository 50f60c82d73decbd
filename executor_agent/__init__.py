"""The `executor` agent: takes jobs from a fleet server's queues and runs them (see docs/executor.md)."""
