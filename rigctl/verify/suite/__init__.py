"""rigctl's testinfra suite: one test per check, run by ``rigctl verify`` against one host.

Run by hand: ``pytest --pyargs rigctl.verify.suite -p rigctl.verify.plugin --rigctl-target
TARGET.json`` (the file ``rigctl verify`` writes per host: see
:class:`rigctl.verify.target.Target`).
"""
