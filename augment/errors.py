"""Errors the engine raises on purpose. The CLI prints them as one line and exits non-zero."""

from __future__ import annotations


class AugmentError(Exception):
    """Root of every error that is the user's input or environment, not a bug."""


class ConfigError(AugmentError):
    """A configuration value is missing, unknown or out of range."""


class DataError(AugmentError):
    """An input file cannot be read: names the file, the row and the problem."""


class BackendError(AugmentError):
    """A model or external program could not be loaded or run."""
