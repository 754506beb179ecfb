"""Example gateway configurations, shipped as package data (see ``controller.config.EXAMPLE_CONFIG``)."""
