"""The controller's fetches of one run, each made once however many hosts need it.

Ten hosts serving one model fetch it once (and verify it once); ten llama.cpp hosts of one
version pack its source once. Each runtime's deploy asks for what it needs in its ``prepare``
step (:mod:`rigctl.deploys`); this object is shared by all of them for the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rigctl.fetch.http import Verified, download
from rigctl.fetch.llamacpp_source import LlamaCppSource, PackedSource
from rigctl.fetch.llamacpp_source import prepare as prepare_source
from rigctl.fetch.model import fetch_model
from rigctl.fetch.model_dir import ModelDir, hash_model_dir
from rigctl.plan.types import PlannedModel
from rigctl.progress import Reporter, quiet
from rigctl.redact import redact


class SharedFetches:
    """Memoised controller-side fetches; ``report(host, stage, detail)`` on each real fetch."""

    def __init__(self, report: Reporter = quiet) -> None:
        self.report = report
        self._models: dict[tuple[str, ...], Verified] = {}
        self._model_dirs: dict[str, ModelDir] = {}
        self._sources: dict[LlamaCppSource, PackedSource] = {}
        self._files: dict[tuple[str, ...], Verified] = {}

    def model(
        self, host: str, model: PlannedModel, mirrors: Sequence[str], *, allow_http: bool
    ) -> Verified:
        """The model file, verified against its sha256, from its source or a mirror."""
        key = (model.source, *mirrors)
        if key not in self._models:
            self.report(host, "model", redact(model.source))
            self._models[key] = fetch_model(model, mirrors=list(mirrors), allow_http=allow_http)
        return self._models[key]

    def model_dir(self, host: str, directory: str) -> ModelDir:
        """A model directory on the controller, each file hashed (for the push)."""
        if directory not in self._model_dirs:
            self.report(host, "model", redact(directory))
            self._model_dirs[directory] = hash_model_dir(directory)
        return self._model_dirs[directory]

    def llamacpp_source(self, host: str, source: LlamaCppSource) -> PackedSource:
        """llama.cpp's source at ``source.version``, packed for the push."""
        if source not in self._sources:
            self.report(host, "source", f"llama.cpp {source.version}")
            self._sources[source] = prepare_source(source)
        return self._sources[source]

    def file(
        self,
        host: str,
        what: str,
        urls: Sequence[str],
        dest: Path,
        *,
        sha256: str | None,
        allow_http: bool,
        field: str,
    ) -> Verified:
        """A release file (an archive) into the controller's cache, verified when a sha256 is
        known."""
        key = (str(dest), sha256 or "", *urls)
        if key not in self._files:
            self.report(host, what, dest.name)
            self._files[key] = download(
                list(urls), dest, sha256=sha256, allow_http=allow_http, field=field
            )
        return self._files[key]
