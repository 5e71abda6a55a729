"""rigctl: turn bare machines into tuned, benchmarked local-LLM inference servers."""

__version__ = "0.1.0"
