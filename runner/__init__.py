"""runner: a config-driven batch runner with plugin tasks."""

__version__ = "0.1.0"
