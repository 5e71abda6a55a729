"""``rigctl provision``: every host from bare OS to a serving, smoke-checked endpoint.

The pipeline, all hosts in parallel, the same for every runtime (each runtime's part is its
:class:`~rigctl.deploys.Deploy`, found by the plan's runtime in
:data:`~rigctl.deploys.runtimes.RUNTIMES`):

1. validate every host's data (bad input: exit 2, nothing touched);
2. connect and detect each host; plan it (pure); check the runtime's own settings and the
   port; a plan with errors (no disk, no RAM) fails that host before anything changes on it;
3. prepare, on the controller: each host's deploy fetches what it needs, each file once per
   run (:class:`~rigctl.fetch.shared.SharedFetches`);
4. run the deploys in waves (the first host of a build key compiles, the others of that key
   receive its kept build in the next wave);
5. smoke-check each endpoint that should be serving: ready, one real completion;
6. record what each serving host runs in the inventory's lockfile.

One failed host never stops the others; the result says which failed and why. Each host's
state through the pipeline is one :class:`HostProvision`.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from rigctl.bench.probe import key_refused, loaded_model
from rigctl.bench.router import load_model
from rigctl.bench.smoke import SmokeResult, chat_once, wait_ready
from rigctl.deploys import Deploy, HostInputs, Served, gpu
from rigctl.deploys.runtimes import OWN_UNITS, deploy_for
from rigctl.detect_host import detect_host
from rigctl.errors import BadInput, RigctlError
from rigctl.facts.system import ListeningSockets
from rigctl.fetch.builds import cached_build
from rigctl.fetch.shared import SharedFetches
from rigctl.fleet import FleetResult
from rigctl.hardware import Hardware
from rigctl.health import crash_watch, invocation_journal, journal, offload_problem
from rigctl.host_plans import host_plan_for, resolve_models
from rigctl.hostspec import HostSpec, host_spec
from rigctl.lockfile import update_lockfile
from rigctl.manifest import read_api_key
from rigctl.plan import Plan
from rigctl.plan.multi import ModelsPlan
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

log = logging.getLogger(__name__)



@dataclass
class HostProvision:
    """One host through the pipeline: its inputs, its deploy, and what came of it."""

    name: str
    result: HostResult
    spec: HostSpec | None = None
    hardware: Hardware | None = None
    plan: Plan | None = None  # the first model's (the only one's, unless it serves several)
    models: ModelsPlan | None = None  # the joint plan of several models
    deploy: Deploy | None = None  # the runtime's deploy, once the host is planned and checked
    served: Served | None = None
    endpoint: str | None = None
    api_key_file: str | None = None
    build: str | None = None
    smoke: SmokeResult | None = None
    smokes: dict[str, SmokeResult] = field(default_factory=dict)  # several models: by alias
    journal: list[str] = field(default_factory=list)
    diffs: dict[str, str] = field(default_factory=dict)  # --dry: path -> unified diff

    @property
    def failed(self) -> bool:
        return self.result.failed

    def to_json(self) -> dict[str, Any]:
        return {
            **self.result.outcome_json(),
            "runtime": self.plan.runtime if self.plan else None,
            "plan": self.plan.to_json() if self.plan else None,
            "models": self.models.to_json() if self.models else None,
            "endpoint": self.endpoint,
            "api_key_file": self.api_key_file,
            "build": self.build,
            "smoke": self.smoke.to_json() if self.smoke else None,
            "smokes": {alias: smoke.to_json() for alias, smoke in self.smokes.items()},
            "journal": self.journal,
            "diffs": self.diffs,
        }


@dataclass
class ProvisionResult(FleetResult[HostProvision]):
    dry: bool = False
    lockfile: str | None = None  # the model lockfile written by this run

    def extra_json(self) -> dict[str, Any]:
        return {"dry": self.dry, "lockfile": self.lockfile}


def provision(
    target: str,
    *,
    limit: list[str] | None = None,
    dry: bool = False,
    model: str | None = None,
    report: Reporter = quiet,
    plan_only: bool = False,
    smoke: bool = False,
) -> ProvisionResult:
    """Take the inventory's hosts to their desired state; ``plan_only`` stops after every input
    is checked and every host detected and planned (bad input raises, nothing has changed).
    A host where nothing changed gets a probe (:mod:`rigctl.bench.probe`), not the full smoke
    check, unless ``smoke``."""
    inventory = load_inventory(target)
    hosts = select_hosts(inventory, limit)
    by_name = {h.name: h for h in hosts}

    # 1. Everything the inventory says is checked before any host is touched.
    result = ProvisionResult(dry=dry)
    for h in hosts:
        result.hosts[h.name] = HostProvision(
            h.name, HostResult(h.name), spec=host_spec(h.name, h.data.dict(), model=model)
        )
    specs = {name: _spec(outcome) for name, outcome in result.hosts.items()}
    cache: dict[tuple[str, str | None], Any] = {}
    models = {name: resolve_models(spec, cache) for name, spec in specs.items()}

    # 2. Detect, plan, check. Impossible requests are bad input (exit 2): nothing changed yet.
    with Session(inventory, limit=hosts) as session:
        report(None, "detect", f"{len(hosts)} host(s)")
        hardware: dict[str, Hardware] = session.each_host(detect_host)
        listening = session.each_host(lambda h: h.get_fact(ListeningSockets))
        for name, hw in hardware.items():
            outcome, spec = result.hosts[name], specs[name]
            outcome.hardware = hw
            host_plan = host_plan_for(spec, hw, models[name])
            outcome.plan = plan = host_plan.plan
            outcome.models = joint = host_plan.models
            for alias, each in (joint.plans if joint else {"": plan}).items():
                where = f"{alias}: " if alias else ""
                report(name, "plan", f"{where}{each.runtime}: {' '.join(each.args)}")
            runtime, not_deployable = deploy_for(plan, joint)
            if runtime is not None:
                outcome.deploy = runtime(
                    HostInputs(name, by_name[name].data, spec, hw, plan, models=joint)
                )
            for port in outcome.deploy.ports if outcome.deploy else [spec.port]:
                busy = port_conflict(spec.listen, port, listening.get(name, []), OWN_UNITS)
                if busy:
                    raise BadInput(busy, host=name, field="port" if port == spec.port else "models")
            if not host_plan.ok:
                errors = joint.errors + [
                    f"{alias}: {error}" for alias, each in joint.plans.items() for error in each.errors
                ] if joint else plan.errors
                session.fail_host(name, "plan: " + "; ".join(errors))
            elif not_deployable:
                session.fail_host(name, not_deployable)
        for name, host_result in session.results.items():
            if host_result.failed:
                result.hosts[name].result = host_result
        ready = [result.hosts[h.name] for h in hosts if h in session.active_hosts]
    if plan_only:
        return result

    # 3. On the controller: what each host needs, each file fetched once per run.
    fetches = SharedFetches(report)
    for outcome in list(ready):
        try:
            _deploy(outcome).prepare(fetches)
        except RigctlError as e:
            outcome.result.fail(str(e))
            ready.remove(outcome)

    # 4. The deploys, in waves; 5. the smoke checks.
    for wave in _waves(ready, dry):
        _run_wave(inventory, [by_name[o.name] for o in wave], result, dry, report, smoke)
    # 6. What each serving host runs.
    if not dry:
        written = _write_lockfile(target, result)
        result.lockfile = str(written) if written else None
    return result


def _spec(outcome: HostProvision) -> HostSpec:
    assert outcome.spec is not None
    return outcome.spec


def _deploy(outcome: HostProvision) -> Deploy:
    assert outcome.deploy is not None, f"{outcome.name}: not planned"
    return outcome.deploy


def _write_lockfile(target: str, result: ProvisionResult) -> Path | None:
    """Record, per host that is serving, exactly which model file (sha256) and build it runs;
    None (no file written or touched) when no host is."""
    entries: dict[str, dict[str, Any]] = {}
    for name, outcome in result.hosts.items():
        if outcome.result.failed or outcome.plan is None or outcome.served is None:
            continue
        sha256, size = _deploy(outcome).lock()
        entries[name] = {
            "runtime": outcome.plan.runtime,
            "model": outcome.plan.model.name,
            "quant": outcome.plan.model.quant,
            "source": outcome.plan.model.source,
            "sha256": sha256,
            "size_bytes": size,
            "build": outcome.served.build,
        }
        if outcome.models is not None:  # several: one entry per model, by alias
            entries[name]["models"] = {
                alias: {
                    "runtime": plan.runtime,
                    "model": plan.model.name,
                    "quant": plan.model.quant,
                    "source": plan.model.source,
                    "sha256": locked[0],
                    "size_bytes": locked[1],
                    "endpoint": outcome.served.endpoint_of(alias),
                }
                for (alias, plan), locked in zip(
                    outcome.models.plans.items(), _deploy(outcome).lock_models().values(),
                    strict=True,
                )
            }
    return update_lockfile(target, entries) if entries else None


def _waves(ready: list[HostProvision], dry: bool) -> list[list[HostProvision]]:
    """Hosts of a build key the controller has not kept yet: the first compiles now, the others
    wait one wave and receive its build."""
    first: list[HostProvision] = []
    later: list[HostProvision] = []
    builders: set[str] = set()
    for outcome in ready:
        key = _deploy(outcome).build_key
        if key is None or dry or cached_build(key) or key not in builders:
            first.append(outcome)
            if key is not None:
                builders.add(key)
        else:
            later.append(outcome)
    return [wave for wave in (first, later) if wave]


def _run_wave(
    inventory: Any, wave: list[Host], result: ProvisionResult, dry: bool, report: Reporter,
    smoke: bool = False,
) -> None:
    def deploy() -> None:
        outcome = result.hosts[host.name]
        gpu.install_driver(outcome.plan.gpu_software if outcome.plan else None)
        outcome.served = _deploy(outcome).serve()

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
            if outcome.served is not None:
                outcome.endpoint = outcome.served.endpoint
                outcome.api_key_file = outcome.served.api_key_file
                outcome.build = outcome.served.build
        if dry:
            session.each_host(lambda h: _diff(h, result.hosts[h.name]))
            return

        def finish(h: Host) -> None:
            outcome = result.hosts[h.name]
            if outcome.result.failed or outcome.served is None:
                return
            _deploy(outcome).keep(h, report)
            if smoke or outcome.result.changed_ops:
                _smoke(h, outcome, outcome.served, report)
            else:
                _probe(h, outcome, outcome.served, report)

        session.each_host(finish)


def _smoke(host_obj: Host, outcome: HostProvision, served: Served, report: Reporter) -> None:
    spec = outcome.spec
    assert spec is not None
    report(host_obj.name, "smoke", f"waiting for {served.endpoint}")
    with endpoint_from_controller(host_obj, spec.listen, served.port or spec.port) as endpoint:
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
        for alias in served.aliases:  # several models: each loaded (in turn), then asked
            if not _smoke_alias(host_obj, outcome, served, alias, endpoint, key, report):
                return
        smoke = chat_once(endpoint, key, model=served.served_model)
    smoke.ready_seconds = round(ready, 2)
    outcome.smoke = smoke
    if not smoke.ok:
        outcome.journal = journal(host_obj, served.unit)
        outcome.result.fail(f"smoke check failed: {smoke.error}")
        return
    problem = _offload_problem(host_obj, served)
    if problem:
        outcome.journal = journal(host_obj, served.unit)
        outcome.result.fail(f"{served.unit} is not running as planned: {problem}")
    else:
        report(host_obj.name, "smoke", f"TTFT {smoke.ttft_ms} ms, {smoke.tokens_per_second} tok/s")


def _probe(host_obj: Host, outcome: HostProvision, served: Served, report: Reporter) -> None:
    """Nothing changed on the host: each server healthy, refusing a request without the key,
    and one token from a model already loaded (:mod:`rigctl.bench.probe`)."""
    spec = outcome.spec
    assert spec is not None
    ports = {alias: port for alias, (_, port) in served.servers.items()} or {None: served.port or spec.port}
    key = read_api_key(host_obj, served.api_key_file)
    for alias, port in ports.items():
        unit = served.servers[alias][0] if alias is not None else served.unit
        with endpoint_from_controller(host_obj, spec.listen, port) as endpoint:
            try:
                ready = wait_ready(endpoint, timeout=served.ready_timeout,
                                   give_up=crash_watch(host_obj, unit), health_path=served.health_path)
                problem = key_refused(endpoint, key)
                model = loaded_model(
                    endpoint, key, runtime=served.runtime, router=served.router,
                    names=served.aliases, default=alias or served.served_model,
                ) if problem is None else None
            except (TimeoutError, requests.RequestException, ValueError) as e:
                problem = f"{unit} is not serving: {e}"
            if problem is not None:
                outcome.journal = journal(host_obj, unit)
                outcome.result.fail(f"probe: {problem}")
                return
            probe = (chat_once(endpoint, key, model=model, prompt="Say OK.", max_tokens=1,
                               need_content=False, timeout=served.ready_timeout)
                     if model is not None else SmokeResult(ok=True))
        probe.kind, probe.model, probe.ready_seconds = "probe", model, round(ready, 2)
        if not probe.ok:
            outcome.journal = journal(host_obj, unit)
            outcome.result.fail(f"probe of {model} failed: {probe.error}")
            return
        if alias is not None:
            outcome.smokes[alias] = probe
        if outcome.smoke is None:
            outcome.smoke = probe
    report(host_obj.name, "smoke", "nothing changed: healthy, the key required"
           + (f", {outcome.smoke.model} answers" if outcome.smoke and outcome.smoke.model else
              ", no model loaded to ask"))


def _smoke_alias(
    host_obj: Host,
    outcome: HostProvision,
    served: Served,
    alias: str,
    endpoint: str,
    key: str,
    report: Reporter,
) -> bool:
    """One of several models: loaded through the router, or its own server ready, then asked
    once; False (the host failed) when it is not."""
    unit, port = served.servers.get(alias, (served.unit, 0))
    with contextlib.ExitStack() as stack:
        loaded = None
        try:
            if served.router:
                loaded = load_model(endpoint, key, alias, timeout=served.ready_timeout,
                                    give_up=crash_watch(host_obj, unit))
            elif alias in served.servers:
                assert outcome.spec is not None
                endpoint = stack.enter_context(
                    endpoint_from_controller(host_obj, outcome.spec.listen, port))
                loaded = wait_ready(endpoint, timeout=served.ready_timeout,
                                    give_up=crash_watch(host_obj, unit),
                                    health_path=served.health_path)
        except (TimeoutError, requests.RequestException, ValueError) as e:
            outcome.journal = journal(host_obj, unit)
            outcome.result.fail(f"{alias} never {'loaded' if served.router else 'became ready'}: {e}")
            return False
        outcome.smokes[alias] = each = chat_once(
            endpoint, key, model=alias, timeout=served.ready_timeout
        )
    each.ready_seconds = None if loaded is None else round(loaded, 2)
    if not each.ok:
        outcome.journal = journal(host_obj, unit)
        outcome.result.fail(f"smoke check of {alias} failed: {each.error}")
        return False
    report(host_obj.name, "smoke", f"{alias}: TTFT {each.ttft_ms} ms, {each.tokens_per_second} tok/s")
    return True


def _offload_problem(host_obj: Host, served: Served) -> str | None:
    """A server that answers may still have fallen back to the CPU (its GPU backend failed to
    start): its log must show the model where the plan put it."""
    if served.offload is None:
        return None
    return offload_problem(invocation_journal(host_obj, served.unit), served.offload)


def _diff(host_obj: Host, outcome: HostProvision) -> None:
    """What the rendered files would change on the host, as unified diffs (dry runs)."""
    served = outcome.served
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
