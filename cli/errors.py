"""The one place where engine errors become click errors: one line on stderr, exit status 1.

`augment.errors.AugmentError` (ConfigError, DataError, BackendError) is what the engine raises for the
user's input or environment; anything else is a bug and keeps its traceback. The `augment` group
(`EngineGroup`) wraps every subcommand, so a command does not catch them itself; ``engine_errors()``
also works as a context manager or a decorator where a command is used outside the group.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click


def is_engine_error(exc: BaseException) -> bool:
    # augment.errors is not imported to find out: an AugmentError exists only once it has been loaded,
    # and `augment --help` stays free of the engine
    errors = sys.modules.get("augment.errors")
    return errors is not None and isinstance(exc, errors.AugmentError)


@contextmanager
def engine_errors() -> Iterator[None]:
    """Re-raise an AugmentError as a ClickException carrying its message."""
    try:
        yield
    except Exception as exc:
        if is_engine_error(exc):
            raise click.ClickException(str(exc)) from exc
        raise


class EngineGroup(click.Group):
    """A click group whose subcommands (and their subgroups) report engine errors as click errors."""

    def invoke(self, ctx: click.Context):
        with engine_errors():
            return super().invoke(ctx)
