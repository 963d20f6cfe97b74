"""splatseg's backend: everything that is not UI, importable and testable without viser."""

__version__ = "0.1.0"
