"""The HTTP API (`cpmon api`): coverage metrics, the live board, alerts and the registry."""
