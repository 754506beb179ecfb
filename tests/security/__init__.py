"""Security: who may reach what, proven against real services."""
