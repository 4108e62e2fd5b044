"""The hpsearch version (read by the CLI and stored with every study)."""

__version__ = "0.1.0"
