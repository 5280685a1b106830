"""Exceptions with one-line messages that name the file (and line) and what is wrong."""


class SedError(Exception):
    """Base class of the project's expected errors: entry points print ``str(e)`` and exit 1."""


class DataError(SedError, ValueError):
    """A dataset file (TSV or audio) that cannot be used: ``"<file>[:<line>]: <what is wrong>"``."""


class ConfigError(SedError, ValueError):
    """A configuration value that cannot be used."""


def sed_cause(e: BaseException) -> SedError | None:
    """The project's error behind ``e`` (``e`` itself, or its cause/context: ``hydra.utils.instantiate``
    wraps a constructor's :class:`ConfigError` in its own exception), else None."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, SedError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


class unwrapped_sed_errors:  # noqa: N801 - used as a context manager, like contextlib's
    """``with unwrapped_sed_errors(): instantiate(...)`` raises a constructor's one-line SedError itself."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ, e, tb) -> bool:
        cause = sed_cause(e) if e is not None and not isinstance(e, SedError) else None
        if cause is not None:
            raise cause from None
        return False
