"""rigctl's own pyinfra operations, one module per thing managed (as ``pyinfra.operations``).

They fill gaps in pyinfra's stock operations that matter for servers that must never break:
files replaced atomically, secrets generated on the host, multi-GB files verified once.
"""
