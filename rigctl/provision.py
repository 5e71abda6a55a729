"""``rigctl provision``: every host from bare OS to a serving, smoke-checked endpoint.

The pipeline, all hosts in parallel:

1. validate every host's data (bad input: exit 2, nothing touched);
2. connect and detect each host; plan it (pure); a plan with errors (no disk, no RAM) fails
   that host before anything changes on it;
3. on the controller, once per fleet: fetch each model (verified, cached) and the llama.cpp
   source;
4. prepare each host's operations (roles via ``rigctl.deploys``) and run them;
5. smoke-check each endpoint that should be serving: ready, one real completion.

One failed host never stops the others; the result says which failed and why.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rigctl.bench.smoke import SmokeResult, chat_once, wait_ready
from rigctl.deploys import llamacpp as llamacpp_deploy
from rigctl.deploys import ollama as ollama_deploy
from rigctl.deploys import vllm as vllm_deploy
from rigctl.deploys.llamacpp import build_spec_for
from rigctl.detect_host import detect_host
from rigctl.errors import BadInput, RigctlError
from rigctl.facts.system import ListeningSockets
from rigctl.fetch.builds import cached_build, keep_build
from rigctl.fetch.http import Verified, download
from rigctl.fetch.llamacpp_source import LlamaCppSource, PackedSource
from rigctl.fetch.llamacpp_source import prepare as prepare_source
from rigctl.fetch.model import fetch_model
from rigctl.fetch.model_dir import ModelDir, hash_model_dir
from rigctl.hardware import Hardware
from rigctl.health import crash_watch, journal
from rigctl.host_plans import plan_for, resolve_for
from rigctl.hostspec import HostSpec, host_spec
from rigctl.lockfile import update_lockfile
from rigctl.manifest import read_api_key
from rigctl.paths import cache_dir, confined
from rigctl.plan import Plan
from rigctl.plan.preflight import port_conflict
from rigctl.progress import Reporter, quiet
from rigctl.pyinfra_api import (
    Host,
    HostResult,
    Session,
    endpoint_from_controller,
    host,
    load_inventory,
    read_file,
    select_hosts,
)
from rigctl.redact import redact
from rigctl.roles import ollama as ollama_role
from rigctl.roles.llamacpp import install_prefix
from rigctl.roles.ollama import defaults as ollama_defaults
from rigctl.roles.vllm import VenvSpec, variant_for, venv_spec

log = logging.getLogger(__name__)



@dataclass
class HostProvision:
    name: str
    result: HostResult
    spec: HostSpec | None = None
    plan: Plan | None = None
    endpoint: str | None = None
    api_key_file: str | None = None
    build: str | None = None
    smoke: SmokeResult | None = None
    journal: list[str] = field(default_factory=list)
    diffs: dict[str, str] = field(default_factory=dict)  # --dry: path -> unified diff

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.result.status,
            "error": self.result.error,
            "changed_ops": self.result.changed_ops,
            "failed_ops": [
                {"name": op.name, "stderr_tail": op.stderr_tail} for op in self.result.failed_ops
            ],
            "runtime": self.plan.runtime if self.plan else None,
            "plan": self.plan.to_json() if self.plan else None,
            "endpoint": self.endpoint,
            "api_key_file": self.api_key_file,
            "build": self.build,
            "smoke": self.smoke.to_json() if self.smoke else None,
            "journal": self.journal,
            "diffs": self.diffs,
        }


@dataclass
class ProvisionResult:
    hosts: dict[str, HostProvision] = field(default_factory=dict)
    dry: bool = False
    lockfile: str | None = None  # the model lockfile written by this run

    @property
    def failed(self) -> list[str]:
        return [name for name, h in self.hosts.items() if h.result.failed]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "hosts": {name: h.to_json() for name, h in self.hosts.items()},
            "failed": self.failed,
            "dry": self.dry,
            "lockfile": self.lockfile,
            "ok": not self.failed,
        }


#: rigctl's servers: a port one of them holds is the one its deploy replaces, not a conflict
OWN_UNITS = frozenset(
    f"{unit}.service" for unit in (llamacpp_deploy.UNIT, vllm_deploy.UNIT, ollama_role.UNIT)
)


def provision(
    target: str,
    *,
    limit: list[str] | None = None,
    dry: bool = False,
    model: str | None = None,
    report: Reporter = quiet,
    plan_only: bool = False,
) -> ProvisionResult:
    """Take the inventory's hosts to their desired state; ``plan_only`` stops after every input
    is checked and every host detected and planned (bad input raises, nothing has changed)."""
    inventory = load_inventory(target)
    hosts = select_hosts(inventory, limit)

    # 1. Everything the inventory says is checked before any host is touched.
    specs = {h.name: host_spec(h.name, h.data.dict(), model=model) for h in hosts}
    sources = {
        h.name: LlamaCppSource.from_host_data(
            h.data.get("llamacpp_source"), h.name, allow_http=_allow_http(h)
        )
        for h in hosts
    }
    mirrors = {h.name: _mirrors(h) for h in hosts}
    cmake_extra = {h.name: _cmake_args(h) for h in hosts}
    models = {spec.model: resolve_for(spec) for spec in specs.values()}

    result = ProvisionResult(dry=dry)
    for h in hosts:
        result.hosts[h.name] = HostProvision(
            name=h.name, result=HostResult(h.name), spec=specs[h.name]
        )

    # 2. Detect and plan. Impossible requests are bad input (exit 2): nothing has changed yet.
    with Session(inventory, limit=hosts) as session:
        report(None, "detect", f"{len(hosts)} host(s)")
        hardware: dict[str, Hardware] = session.each_host(detect_host)
        listening = session.each_host(lambda h: h.get_fact(ListeningSockets))
        plans = {
            name: plan_for(specs[name], hw, models[specs[name].model])
            for name, hw in hardware.items()
        }
        venvs: dict[str, VenvSpec] = {}
        for name, plan in plans.items():
            result.hosts[name].plan = plan
            report(name, "plan", f"{plan.runtime}: {' '.join(plan.args)}")
            # Bad input (exit 2) found from the hardware, still before any change:
            busy = port_conflict(
                specs[name].listen, specs[name].port, listening.get(name, []), OWN_UNITS
            )
            if busy:
                raise BadInput(busy, host=name, field="port")
            if plan.runtime == "ollama":
                ollama_deploy.check_listen(specs[name])
            if plan.runtime == "vllm":
                data = next(h for h in hosts if h.name == name).data
                venvs[name] = venv_spec(data, name, variant_for(hardware[name].accelerator))
                _hf_token(data, name)
            if not plan.ok:
                session.fail_host(name, "plan: " + "; ".join(plan.errors))
            elif plan.runtime not in DEPLOYABLE:
                session.fail_host(name, f"runtime {plan.runtime} is not deployable yet (issue #6)")
        for name, host_result in session.results.items():
            if host_result.failed:
                result.hosts[name].result = host_result
        ready = [h for h in hosts if h in session.active_hosts]
    if plan_only:
        return result

    # 3. Controller-side fetches, once per fleet.
    packed: dict[LlamaCppSource, PackedSource] = {}
    fetched: dict[str, Verified] = {}
    model_dirs: dict[str, ModelDir | None] = {}
    builds: dict[str, Any] = {}
    archives: dict[str, list[Verified]] = {}
    for h in list(ready):
        name = h.name
        try:
            key = _model_key(plans[name], mirrors[name])
            if plans[name].runtime == "vllm":
                if key not in model_dirs:
                    report(name, "model", redact(plans[name].model.source))
                    model_dirs[key] = _vllm_model(plans[name])
                continue
            if key not in fetched:
                report(name, "model", redact(plans[name].model.source))
                fetched[key] = fetch_model(
                    plans[name].model, mirrors=mirrors[name], allow_http=_allow_http(h)
                )
            if plans[name].runtime == "ollama":
                report(name, "ollama", "release archive")
                archives[name] = fetch_ollama(h, hardware[name])
                continue
            if sources[name] not in packed:
                report(name, "source", f"llama.cpp {sources[name].version}")
                packed[sources[name]] = prepare_source(sources[name])
            builds[name] = build_spec_for(
                hardware[name], plans[name], packed[sources[name]].version, cmake_extra[name]
            )
        except RigctlError as e:
            result.hosts[name].result.fail(str(e))
            ready.remove(h)

    # 4. Roles, in waves: the first host of each build key not yet on the controller compiles;
    #    the others with that key receive its binaries in the next wave.
    for wave in _waves(ready, builds, dry):
        _run_wave(
            inventory,
            wave,
            dry,
            report,
            result,
            plans,
            hardware,
            packed,
            sources,
            fetched,
            mirrors,
            builds,
            cmake_extra,
            archives,
            venvs,
            model_dirs,
        )
    if not dry:
        result.lockfile = str(_write_lockfile(target, result, fetched, mirrors, model_dirs))
    return result


def _write_lockfile(
    target: str,
    result: ProvisionResult,
    fetched: dict[str, Verified],
    mirrors: dict[str, list[str]],
    model_dirs: dict[str, ModelDir | None],
) -> Path:
    """Record, per host that is serving, exactly which model file (sha256) and build it runs."""
    entries: dict[str, dict[str, Any]] = {}
    for name, outcome in result.hosts.items():
        if outcome.result.failed or outcome.plan is None or outcome.build is None:
            continue
        key = _model_key(outcome.plan, mirrors[name])
        verified: Verified | ModelDir | None = fetched.get(key) or model_dirs.get(key)
        entries[name] = {
            "runtime": outcome.plan.runtime,
            "model": outcome.plan.model.name,
            "quant": outcome.plan.model.quant,
            "source": outcome.plan.model.source,
            "sha256": verified.sha256 if verified else outcome.plan.model.sha256,
            "size_bytes": verified.size if verified else outcome.plan.model.size_bytes,
            "build": outcome.build,
        }
    return update_lockfile(target, entries)


def _waves(ready: list[Host], builds: dict[str, Any], dry: bool) -> list[list[Host]]:
    first: list[Host] = []
    later: list[Host] = []
    builders: set[str] = set()
    for h in ready:
        if h.name not in builds:  # not a llama.cpp host: nothing to compile
            first.append(h)
            continue
        name = builds[h.name].name
        if dry or cached_build(name) or name not in builders:
            first.append(h)
            builders.add(name)
        else:
            later.append(h)
    return [wave for wave in (first, later) if wave]


def _run_wave(
    inventory: Any,
    wave: list[Host],
    dry: bool,
    report: Reporter,
    result: ProvisionResult,
    plans: dict[str, Plan],
    hardware: dict[str, Hardware],
    packed: dict[LlamaCppSource, PackedSource],
    sources: dict[str, LlamaCppSource],
    fetched: dict[str, Verified],
    mirrors: dict[str, list[str]],
    builds: dict[str, Any],
    cmake_extra: dict[str, list[str]],
    archives: dict[str, list[Verified]],
    venvs: dict[str, VenvSpec],
    model_dirs: dict[str, ModelDir | None],
) -> None:
    from rigctl.deploys import llamacpp as llamacpp_deploy
    from rigctl.deploys import vllm as vllm_deploy

    served: dict[str, Any] = {}

    def deploy() -> None:
        name = host.name
        if plans[name].runtime == "vllm":
            served[name] = vllm_deploy.serve(
                result.hosts[name].spec,
                hardware[name],
                plans[name],
                venvs[name],
                model_dirs[_model_key(plans[name], mirrors[name])],
                hf_token=_hf_token(host.data, name),
            )
            return
        if plans[name].runtime == "ollama":
            served[name] = ollama_deploy.serve(
                result.hosts[name].spec,
                hardware[name],
                plans[name],
                archives[name],
                fetched[_model_key(plans[name], mirrors[name])],
            )
            return
        prebuilt = cached_build(builds[name].name)
        served[name] = llamacpp_deploy.serve(
            result.hosts[name].spec,
            hardware[name],
            plans[name],
            packed[sources[name]],
            fetched[_model_key(plans[name], mirrors[name])],
            extra_cmake_args=cmake_extra[name],
            prebuilt=str(prebuilt) if prebuilt else None,
        )

    def on_operation(name: str, operation: str, event: str) -> None:
        if event == "start":
            report(name, "running", operation)

    with Session(inventory, limit=wave, dry=dry, on_operation=on_operation) as session:
        report(None, "deploy", f"preparing {', '.join(h.name for h in wave)}")
        session.prepare(deploy)
        report(None, "deploy", "running")
        session.run()
        summary = session.summary()
        for h in wave:
            outcome = result.hosts[h.name]
            outcome.result = summary.hosts[h.name]
            if h.name in served:
                outcome.endpoint = served[h.name].endpoint
                outcome.api_key_file = served[h.name].api_key_file
                outcome.build = served[h.name].build
        if dry:
            session.each_host(lambda h: _diff(h, result.hosts[h.name], served.get(h.name)))
            return
        ok = {h.name for h in wave if not summary.hosts[h.name].failed and h.name in served}

        def finish(h: Host) -> None:
            if h.name not in ok:
                return
            name = builds[h.name].name if h.name in builds else ""
            # Whenever the controller lacks it, not only right after compiling: a run killed while
            # keeping it would otherwise leave every later host of this key compiling again.
            if name and not cached_build(name):
                report(h.name, "build", f"keeping {name} for hosts with the same key")
                try:
                    keep_build(h, name, install_prefix(h))
                except OSError as e:
                    log.warning("could not keep build %s: %s", name, e)
            _smoke(h, result.hosts[h.name], served[h.name], report)

        session.each_host(finish)


def _model_key(plan: Plan, mirrors: list[str]) -> str:
    return "\n".join([plan.model.source, *mirrors])


def _cmake_args(host_obj: Host) -> list[str]:
    value = host_obj.data.get("llamacpp_cmake_args", [])
    if not isinstance(value, list) or not all(
        isinstance(v, str) and v.startswith("-D") for v in value
    ):
        raise BadInput(
            "must be a list of -D options", host=host_obj.name, field="llamacpp_cmake_args"
        )
    return list(value)


#: Runtimes ``provision`` can deploy today.
DEPLOYABLE = ("llamacpp", "ollama", "vllm")


def _vllm_model(plan: Plan) -> ModelDir | None:
    """A model directory on the controller, hashed for the push; None for a Hub repository
    (the host downloads it, revision pinned)."""
    source = plan.model.source
    if source.startswith("hf://"):
        return None
    return hash_model_dir(source)


def _hf_token(data: Any, host_name: str) -> str | None:
    """The Hugging Face token for gated repositories (host data ``hf_token``), or None."""
    token = data.get("hf_token")
    if token is None or token == "":
        return None
    if not isinstance(token, str) or not token.isprintable() or any(c.isspace() for c in token):
        raise BadInput("must be a single-line token", host=host_name, field="hf_token")
    return token


def fetch_ollama(host_obj: Host, hardware: Hardware) -> list[Verified]:
    """Ollama's release archive(s) for this host, fetched once into the controller's cache."""
    base = host_obj.data.get("ollama_base_url", ollama_defaults.OLLAMA_BASE_URL)
    version = host_obj.data.get("ollama_version", ollama_defaults.OLLAMA_VERSION)
    sums = host_obj.data.get("ollama_sha256", ollama_defaults.OLLAMA_SHA256) or {}
    if not isinstance(sums, dict):
        raise BadInput(
            "must map archive names to sha256", host=host_obj.name, field="ollama_sha256"
        )
    fetched = []
    for name in ollama_role.archive_names(hardware.os.arch, hardware.accelerator):
        dest = confined(cache_dir(), "ollama", version or "latest", name)
        fetched.append(
            download(
                [ollama_role.archive_url(name, base, version)],
                dest,
                sha256=sums.get(name),
                allow_http=_allow_http(host_obj),
                field="ollama_base_url",
            )
        )
    return fetched


def _allow_http(host_obj: Host) -> bool:
    """Host data ``allow_http``: plain http beyond loopback, and then only with a sha256."""
    return host_obj.data.get("allow_http", False) is True


def _mirrors(host_obj: Host) -> list[str]:
    """``model_mirrors`` (checked by the host-data schema), paths as ``file:`` URLs."""
    value = host_obj.data.get("model_mirrors", [])
    return [str(Path(v).resolve().as_uri()) if v.startswith("/") else v for v in value]


def _smoke(host_obj: Host, outcome: HostProvision, served: Any, report: Reporter) -> None:
    spec = outcome.spec
    assert spec is not None
    report(host_obj.name, "smoke", f"waiting for {served.endpoint}")
    with endpoint_from_controller(host_obj, spec.listen, spec.port) as endpoint:
        try:
            ready = wait_ready(
                endpoint,
                timeout=served.ready_timeout,
                give_up=crash_watch(host_obj, served.unit),
                health_path=served.health_path,
            )
        except TimeoutError as e:
            outcome.journal = journal(host_obj, served.unit)
            outcome.result.fail(f"{served.unit} never became ready: {e}")
            return
        key = read_api_key(host_obj, served.api_key_file)
        smoke = chat_once(endpoint, key, model=served.served_model)
    smoke.ready_seconds = round(ready, 2)
    outcome.smoke = smoke
    if not smoke.ok:
        outcome.journal = journal(host_obj, served.unit)
        outcome.result.fail(f"smoke check failed: {smoke.error}")
    else:
        report(host_obj.name, "smoke", f"TTFT {smoke.ttft_ms} ms, {smoke.tokens_per_second} tok/s")


def _diff(host_obj: Host, outcome: HostProvision, served: Any) -> None:
    """What the rendered files would change on the host, as unified diffs (dry runs)."""
    if served is None:
        return
    for path, new in served.rendered.items():
        try:
            old = read_file(host_obj, path).decode(errors="replace")
        except OSError:
            old = ""
        if old != new:
            outcome.diffs[path] = "".join(
                difflib.unified_diff(
                    old.splitlines(keepends=True),
                    new.splitlines(keepends=True),
                    f"{path} (on host)",
                    f"{path} (new)",
                )
            )
