"""Models: the built-in catalog, GGUF header reading, and model references.

- :mod:`~rigctl.models.catalog` — common models with architecture numbers and GGUF files
- :mod:`~rigctl.models.gguf_header` — read a GGUF header locally or by HTTP Range
- :mod:`~rigctl.models.refs` — parse ``name:quant``, ``hf://``, ``https://``, ``file://``, paths
- :func:`resolve_model` — a reference to what the planner takes
"""

from rigctl.models.catalog import CATALOG, CatalogModel, GgufFile, get_catalog_model
from rigctl.models.facts import ModelFacts, WeightSplit
from rigctl.models.gguf_header import ModelFetchError, read_local_header, read_remote_header
from rigctl.models.refs import ModelRef, hf_resolve_url, parse_model_ref
from rigctl.models.resolve import resolve_model

__all__ = [
    "CATALOG",
    "CatalogModel",
    "GgufFile",
    "ModelFacts",
    "ModelFetchError",
    "ModelRef",
    "WeightSplit",
    "get_catalog_model",
    "hf_resolve_url",
    "parse_model_ref",
    "read_local_header",
    "read_remote_header",
    "resolve_model",
]
