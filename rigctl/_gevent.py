"""Monkey-patch the standard library for gevent, once, before pyinfra is imported.

pyinfra runs hosts in parallel on gevent greenlets; without the patch every SSH
socket blocks the whole process and "parallel" hosts run one after another.
The patch must happen before ``ssl``/``socket`` users (requests, paramiko) are
imported, so the console script calls :func:`patch` first thing, and the pyinfra
adapter calls it again (a no-op) for library users.
"""

from __future__ import annotations


def patch() -> None:
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()
