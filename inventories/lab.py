"""The local lab as a pyinfra inventory: every running lab host (`rigctl lab up N`).

Use it like any inventory: `rigctl detect inventories/lab.py`, `pyinfra inventories/lab.py ...`.
Each host's data pins SSH to the lab's key and known_hosts and sets `listen` to the host's own
loopback address (127.0.1.N), where its services bind.
"""

from rigctl.lab import Lab

lab = Lab().inventory()

if not lab:
    raise RuntimeError("no lab hosts are running: start them with `rigctl lab up`")
