"""Click commands, one module per command group: parse, call rigctl's core, render. No logic."""
