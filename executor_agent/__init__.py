"""executor_agent."""
