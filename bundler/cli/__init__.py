"""The ``bundler`` command line (the only place that reads ``[tool.bundler]`` from pyproject.toml)."""

from bundler.cli.main import main

__all__ = ["main"]
