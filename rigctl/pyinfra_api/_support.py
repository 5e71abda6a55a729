"""Two small helpers the adapter's parts share: an exception as one line, pyinfra kept quiet."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_pyinfra_logging() -> Iterator[None]:
    """pyinfra logs what rigctl reports itself (one line per failure): silence it meanwhile."""
    logger = logging.getLogger("pyinfra")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


def one_line(error: BaseException) -> str:
    """``Type: first line of the message`` (or just ``Type``)."""
    # pyinfra wraps errors raised by user files (inventory, deploy) with the file name
    wrapped = getattr(error, "exception", None)
    if isinstance(wrapped, BaseException):
        error = wrapped
    try:
        text = str(error).strip().splitlines()
    except Exception:  # some exception classes cannot even print themselves
        text = [repr(error.args)] if error.args else []
    message = text[0] if text else ""
    return f"{type(error).__name__}: {message}" if message else type(error).__name__
