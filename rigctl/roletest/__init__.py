"""Role scenarios: each role of ``rigctl.roles`` applied to a lab host and checked by testinfra.

The same pieces serve Molecule (``roles/<role>/molecule/default/``) and plain pytest
(``tests/test_roles.py``):

- ``scenarios``: what each role's scenario applies (the role's functions, as a user's deploy
  calls them) and the names its tests check;
- ``converge`` and ``python -m rigctl.roletest converge``: apply a scenario with rigctl/pyinfra
  to the instances of a Molecule instance config, and print rigctl's JSON summary;
- ``instances``: that instance config (Molecule's keys plus the pinned ``known_hosts_file``);
- ``plugin``: the pytest plugin that gives the scenario's testinfra tests their ``host``, over
  SSH with the pinned host key (``rigctl.verify.connection``).
"""
