"""Exceptions with one-line messages that name the file (and line) and what is wrong."""


class SedError(Exception):
    """Base class of the project's expected errors: entry points print ``str(e)`` and exit 1."""


class DataError(SedError, ValueError):
    """A dataset file (TSV or audio) that cannot be used: ``"<file>[:<line>]: <what is wrong>"``."""


class ConfigError(SedError, ValueError):
    """A configuration value that cannot be used."""
