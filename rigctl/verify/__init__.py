"""``rigctl verify``: a testinfra suite that ships with rigctl, run against each host over SSH.

- ``suite/``: the checks, one pytest test each (``test_service`` is the check ``service``); it
  reads what the host should be from the host's own deployment manifest and the controller's
  model lockfile, and needs no pyinfra.
- ``connection``: testinfra's paramiko backend with the inventory's pinned host keys, and HTTP to
  the endpoint through that SSH connection.
- ``plugin``: the pytest plugin that writes each check's outcome as JSON for the runner.
- ``run``: the controller side: one pytest run per host, in parallel, gathered into results.
- ``results``, ``parse``, ``hardening``: pure pieces (outcomes, command output, expected unit
  properties), shared by both sides.

This package's ``__init__`` imports nothing, so the suite's process never loads pyinfra.
"""
