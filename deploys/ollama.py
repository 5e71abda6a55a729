"""Serve a plan with Ollama on one host: upstream's install, rigctl's drop-in, the model imported.

Ollama has no API key of its own (ollama/ollama#1053, #14003), so rigctl serves it on loopback
addresses only and refuses any other ``listen`` (an authenticating reverse proxy in front is
the planned way to open it up); :class:`OllamaDeploy` checks that before anything is changed.

The release is pinned (``ollama_version``, default ``OLLAMA_VERSION``): its archives for the
host (:func:`rigctl.roles.ollama.archive_names`: arch, ROCm, the Jetson's JetPack) are fetched on
the controller from ``ollama_base_url`` and each is checked against the sha256 that host data's
``ollama_sha256`` gives, else against the release's ``sha256sum.txt`` (fetched from the same
place, read strictly): no entry, or bytes that do not match, and the host is refused with one
line naming it and the field to look at.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from typing import TYPE_CHECKING

from rigctl.deploys import GPU_DEVICES, MODEL_DIR, Deploy, HostInputs, Served, record
from rigctl.roles import ollama
from rigctl.roles.ollama import defaults, release
from rigctl.templates import ollama_modelfile, render

from rigctl.errors import BadInput, RigctlError
from rigctl.facts.nvidia import JetsonRelease
from rigctl.fetch.http import ChecksumMismatch, DownloadError, Verified
from rigctl.hardware import Hardware
from rigctl.hostspec import HostSpec
from rigctl.manifest import Deployment
from rigctl.operations.files import verified_file
from rigctl.paths import cache_dir, confined
from rigctl.plan import Plan
from rigctl.plan.multi import ModelsPlan
from rigctl.pyinfra_api import files, host, server_facts

if TYPE_CHECKING:
    from rigctl.fetch.shared import SharedFetches


def check_listen(spec: HostSpec) -> None:
    """Refuse to expose Ollama beyond loopback: it cannot check an API key."""
    if not ipaddress.ip_address(spec.listen).is_loopback:
        raise BadInput(
            f"Ollama has no API key, so rigctl serves it on loopback only; got {spec.listen} "
            "(use runtime llamacpp, or put an authenticating proxy in front yourself)",
            host=spec.host,
            field="listen",
        )


def served_model_name(plan: Plan) -> str:
    """The name the model gets in Ollama: the catalog name and quant, lowercase."""
    name = plan.model.name.lower().replace(" ", "-")
    return f"{name}:{plan.model.quant.lower()}"


#: What one Ollama server applies to every model it loads: the models' plans must agree on them.
SHARED_SETTINGS = ("OLLAMA_NUM_PARALLEL", "OLLAMA_KV_CACHE_TYPE", "OLLAMA_FLASH_ATTENTION")
#: An Ollama model name as rigctl gives one (an alias, which may hold ``~``: Ollama's may not).
_OLLAMA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def server_environment(
    spec: HostSpec, plan: Plan, models_dir: str, models: ModelsPlan | None = None
) -> dict[str, str]:
    """The server's environment: the plan's, or for several models the joint plan's (see
    :func:`models_environment`)."""
    env = plan.env if models is None else models_environment(spec, models)
    return {
        "OLLAMA_HOST": f"{spec.listen}:{spec.port}",
        **env,
        "OLLAMA_MODELS": models_dir,
    }


def models_environment(spec: HostSpec, models: ModelsPlan) -> dict[str, str]:
    """One Ollama server for several models: ``OLLAMA_MAX_LOADED_MODELS`` the joint plan's
    ``models_max`` (Ollama unloads the least recently used beyond it), ``OLLAMA_KEEP_ALIVE``
    host data ``models_idle_seconds`` (else ``-1``: loaded until another needs the room); each
    model's context is its Modelfile's ``num_ctx``. Ollama applies the slots, the KV cache type
    and flash attention to every model alike, so plans that differ on them cannot share one
    server (BadInput naming the models); nor can ``keep_loaded`` with an idle timeout, which
    Ollama sets for all models at once."""
    plans = models.plans
    first_alias, first = next(iter(plans.items()))
    env = {name: first.env[name] for name in SHARED_SETTINGS if name in first.env}
    for alias, plan in plans.items():
        for name in SHARED_SETTINGS:
            if plan.env.get(name) != env.get(name):
                raise BadInput(
                    f"Ollama sets {name} for all its models, and the plan gives {first_alias} "
                    f"{env.get(name)} but {alias} {plan.env.get(name)} (give them one "
                    "concurrency, or serve them with runtime llamacpp)",
                    host=spec.host, field="models",
                )
        if not _OLLAMA_NAME.fullmatch(alias):
            raise BadInput(f"{alias!r} is not an Ollama model name (letters, digits, . _ -)",
                           host=spec.host, field="models")
    if models.keep_loaded and spec.models_idle_seconds is not None:
        raise BadInput(
            "Ollama has one keep-alive for all its models: keep_loaded and "
            "models_idle_seconds cannot both hold (drop one, or serve with runtime llamacpp)",
            host=spec.host, field="models_idle_seconds",
        )
    idle = spec.models_idle_seconds
    return {
        **env,
        "OLLAMA_MAX_LOADED_MODELS": str(models.models_max),
        "OLLAMA_KEEP_ALIVE": "-1" if idle is None else f"{idle}s",
    }


def render_dropin(
    spec: HostSpec,
    plan: Plan,
    accelerator: str,
    models_dir: str = defaults.OLLAMA_MODELS_DIR,
    models: ModelsPlan | None = None,
) -> str:
    return render(
        "ollama-dropin.conf.j2",
        model_name=f"{plan.model.name} {plan.model.quant}" if models is None
        else ", ".join(models.plans),
        environment=server_environment(spec, plan, models_dir, models),
        writable_paths=[models_dir, defaults.OLLAMA_HOME],
        gpu_devices=GPU_DEVICES.get(accelerator, []),
    )


def l4t_release(hardware: Hardware) -> str | None:
    """The Jetson's L4T release (fact ``JetsonRelease``, ``"36.3.0"``) when the hardware record
    carries it (``Hardware.jetson_release``), else None."""
    return hardware.jetson_release or None


class OllamaDeploy(Deploy):
    """Ollama: upstream's release archive(s) for the host, rigctl's drop-in, the model imported."""

    UNIT = ollama.UNIT
    SERVES_SEVERAL = True

    def __init__(self, inputs: HostInputs) -> None:
        super().__init__(inputs)
        check_listen(inputs.spec)
        self.plans = inputs.plans
        self.models = inputs.models if len(self.plans) > 1 else None
        if self.models is not None:  # what one server cannot do for all: refused now
            models_environment(inputs.spec, self.models)
        self.files: dict[str, Verified] = {}
        data = inputs.data
        self.base_url = data.get("ollama_base_url", defaults.OLLAMA_BASE_URL)
        self.version = data.get("ollama_version", defaults.OLLAMA_VERSION)
        try:
            release.release_version(self.version)
        except BadInput as e:
            raise BadInput(e.detail, host=inputs.name, field="ollama_version") from None
        self.version = self.version.removeprefix("v")
        self.sums = data.get("ollama_sha256", defaults.OLLAMA_SHA256) or {}
        if not isinstance(self.sums, dict):
            raise BadInput(
                "must map archive names to sha256", host=inputs.name, field="ollama_sha256"
            )
        hardware = inputs.hardware
        self.names = self._archive_names(l4t_release(hardware))
        self.archives: list[Verified] = []
        self.model: Verified | None = None

    def _archive_names(self, l4t: str | None) -> list[str]:
        hardware = self.inputs.hardware
        try:
            return release.archive_names(
                hardware.os.arch, hardware.accelerator, self.version, l4t_release=l4t
            )
        except BadInput as e:
            raise BadInput(e.detail, host=self.inputs.name, field=e.field) from None

    def prepare(self, fetches: SharedFetches) -> None:
        """The model file and Ollama's release archive(s), into the controller's cache, each
        archive checked against its sha256 (host data's, else the release's sha256sum.txt)."""
        name = self.inputs.name
        for alias, plan in self.plans.items():
            self.files[alias] = fetches.model(
                name, plan.model, self.inputs.mirrors, allow_http=self.inputs.allow_http
            )
        self.model = self.files[next(iter(self.plans))]
        listed = self._listed_sums(fetches, [a for a in self.names if not self.sums.get(a)])
        sums_at = release.sums_url(self.base_url, self.version)
        self.archives = []
        for archive in self.names:
            sha256 = release.archive_sha256(archive, self.sums, listed)
            if sha256 is None:
                raise BadInput(
                    f"Ollama {self.version}'s {release.SUMS} ({sums_at}) lists no {archive}:"
                    f" give its sha256 in ollama_sha256",
                    host=name,
                    field="ollama_sha256",
                )
            pinned = archive in self.sums
            try:
                fetched = fetches.file(
                    name,
                    "ollama",
                    [release.archive_url(archive, self.base_url, self.version)],
                    confined(cache_dir(), "ollama", self.version, archive),
                    sha256=sha256,
                    allow_http=self.inputs.allow_http,
                    field="ollama_base_url",
                )
            except ChecksumMismatch as e:
                source = "the one host data ollama_sha256 gives" if pinned else f"{sums_at}'s"
                raise BadInput(
                    f"{e}; the sha256 wanted is {source}",
                    host=name,
                    field="ollama_sha256" if pinned else "ollama_base_url",
                ) from None
            except BadInput as e:  # the download policy's refusal, said for this host
                raise BadInput(e.detail, host=name, field=e.field) from None
            self.archives.append(fetched)

    def _listed_sums(self, fetches: SharedFetches, unpinned: list[str]) -> dict[str, str]:
        """The release's sha256sum.txt, when an archive has no sha256 in host data."""
        if not unpinned:
            return {}
        fetches.report(self.inputs.name, "ollama", release.SUMS)
        # one cached copy per release and source: a mirror's list never stands in for GitHub's
        source = hashlib.sha256(self.base_url.encode()).hexdigest()[:12]
        dest = confined(cache_dir(), "ollama", self.version, f"sums-{source}", release.SUMS)
        try:
            _fetched, listed = release.fetch_sha256sums(
                self.base_url, self.version, dest, allow_http=self.inputs.allow_http
            )
        except BadInput as e:  # the download policy's refusal, said for this host
            raise BadInput(e.detail, host=self.inputs.name, field=e.field) from None
        except DownloadError as e:
            raise BadInput(str(e), host=self.inputs.name, field="ollama_base_url") from None
        return listed

    def lock(self) -> tuple[str, int]:
        assert self.model is not None, "prepare() first"
        return self.model.sha256, self.model.size

    def lock_models(self) -> dict[str, tuple[str, int]]:
        assert len(self.files) == len(self.plans), "prepare() first"
        return {alias: (file.sha256, file.size) for alias, file in self.files.items()}

    def _check_jetpack(self, l4t: str | None) -> None:
        """What the host says it is (``/etc/nv_tegra_release``) must want the archives fetched:
        a JetPack 5/6 Jetson given only the base archive would run Ollama on its CPU."""
        wanted = self._archive_names(l4t)
        if wanted != self.names:
            raise RigctlError(
                f"host {self.inputs.name}: /etc/nv_tegra_release says L4T {l4t or 'none'}, which"
                f" needs {', '.join(wanted)}; fetched for it: {', '.join(self.names)} (the"
                " hardware record's L4T release differs, or it has none)"
            )

    def serve(self) -> Served:
        assert self.model is not None and self.archives, "prepare() first"
        spec, hardware, plan, model = (
            self.inputs.spec,
            self.inputs.hardware,
            self.inputs.plan,
            self.model,
        )
        check_listen(spec)
        self._check_jetpack(host.get_fact(JetsonRelease))
        groups = host.get_fact(server_facts.Groups) or []
        installed = ollama.install(
            archives=[(str(a.path), a.sha256) for a in self.archives],
            user_groups=[g for g in ("render", "video") if g in groups],
        )
        files.directory(name="model: directory", path=MODEL_DIR, mode="0755")
        paths: dict[str, str] = {}  # alias -> the file on the host
        for alias, file in self.files.items():
            path = f"{MODEL_DIR}/{file.path.name}"
            if path not in paths.values():  # one file under two aliases: placed once
                verified_file(
                    name=f"model: {file.path.name}",
                    src=str(file.path),
                    dest=path,
                    sha256=file.sha256,
                    mode="0644",
                )
            paths[alias] = path
        model_path = paths[next(iter(self.plans))]

        models_dir = ollama.models_dir(host)
        dropin = render_dropin(spec, plan, hardware.accelerator, models_dir, self.models)
        base_unit = render(
            "ollama.service.j2", install_dir=ollama.install_dir(host), user=defaults.OLLAMA_USER
        )
        ollama.configure(dropin_text=dropin, base_unit_text=base_unit, changed_inputs=[installed])
        names = {
            alias: alias if self.models is not None else served_model_name(each)
            for alias, each in self.plans.items()
        }
        for alias, each in self.plans.items():  # each model with its own context
            ollama.import_model(
                model_name=names[alias],
                modelfile=ollama_modelfile(paths[alias], {"num_ctx": each.context}),
                server_address=f"{spec.listen}:{spec.port}",
            )
        name = names[next(iter(self.plans))]

        manifest = Deployment(
            runtime="ollama",
            unit=self.UNIT,
            listen=spec.listen,
            port=spec.port,
            api_key_file="",
            user=defaults.OLLAMA_USER,
            build=f"ollama-{self.archives[0].sha256[:12]}",
            model_name=plan.model.name,
            model_quant=plan.model.quant,
            model_path=model_path,
            model_sha256=model.sha256,
            args=[f"{k}={v}" for k, v in
                  server_environment(spec, plan, models_dir, self.models).items()],
            metrics_path="",
            served_model=name,
            health_path="/",
            config_files=[ollama.DROPIN],
            models=[
                {
                    "alias": alias,
                    "model_name": each.model.name,
                    "model_quant": each.model.quant,
                    "model_path": paths[alias],
                    "model_sha256": self.files[alias].sha256,
                }
                for alias, each in self.plans.items()
            ] if self.models is not None else [],
        )
        return record(manifest, spec, {ollama.DROPIN: dropin})
