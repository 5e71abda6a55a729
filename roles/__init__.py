"""Reusable pyinfra roles, one job each: ``from rigctl.roles import toolchain``.

A role is a package: ``defaults.py`` (every variable, typed and documented), ``README.md``
(role variables, what it installs, an example deploy), the role's deploy functions in
``__init__.py``, and the OS split into ``setup_<os>.py`` modules rather than ``if`` ladders.
Roles know nothing of the CLI or of fleets: call them from your own pyinfra deploy.
"""
