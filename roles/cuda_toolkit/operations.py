"""The ``cuda_toolkit`` role's operation: Debian's extra components on the host's own mirror."""

from __future__ import annotations

import re
from collections.abc import Generator, Sequence

from rigctl.pyinfra_api import (
    OperationError,
    QuoteString,
    StringCommand,
    apt_facts,
    host,
    operation,
)

#: A mirror as apt writes one: a scheme and no whitespace or control characters.
_MIRROR = re.compile(r"(?:https?|file|mirror\+\w+)://[^\s\x00-\x1f\x7f]{1,500}")


@operation()
def debian_components(
    suite: str, components: Sequence[str], dest: str
) -> Generator[object, None, None]:
    """An apt source for ``suite``'s ``components`` (``contrib non-free``) on the mirror that
    serves its ``main``, then ``apt-get update``; nothing when every component is there.

    + suite: the host's Debian release (``trixie``)
    + components: what must be enabled beside ``main``
    + dest: the source file rigctl owns (``/etc/apt/sources.list.d/rigctl-cuda-non-free.list``)
    """
    sources = [s for s in host.get_fact(apt_facts.AptSources) or [] if s["type"] == "deb"]
    enabled = {c for s in sources if s["distribution"] == suite for c in s["components"]}
    if all(component in enabled for component in components):
        host.noop(f"apt already has {suite} {' '.join(components)}")
        return
    # the mirror that serves the release's main: the host's own (a LAN or offline mirror)
    mirror = next(
        (s["url"] for s in sources if s["distribution"] == suite and "main" in s["components"]),
        None,
    )
    if mirror is None:
        raise OperationError(f"cuda_toolkit: no apt source serves {suite} main to add {components} to")
    if not _MIRROR.fullmatch(mirror):
        # what the host answered goes into a source line: one URL, nothing that starts another
        raise OperationError(f"cuda_toolkit: the host's apt mirror is not a plain URL: {mirror[:80]!r}")
    line = f"deb {mirror} {suite} {' '.join(components)}"
    yield StringCommand(
        "printf", "'%s\\n'", QuoteString(line), ">", QuoteString(f"{dest}.tmp"),
        "&&", "mv", QuoteString(f"{dest}.tmp"), QuoteString(dest),
    )
    yield StringCommand("apt-get", "update")
