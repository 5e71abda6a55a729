"""Each role's scenario under plain pytest, on a host of the test lab (rtest6): what Molecule's
``molecule test`` does (tests/test_molecule.py runs one scenario through Molecule itself), the
same pieces without Ansible: the role applied with rigctl, applied again with no change, and
the role's own testinfra files passing against the host.

toolchain, service, llamacpp, ollama and vulkan share rtest6 (their paths and units do not
overlap).
The llama.cpp scenario installs the build that tests/test_llamacpp_e2e.py compiled on rtest1
(packed from it into this module's controller cache), as ``rigctl provision`` gives a fleet's
first build to the other hosts; run alone, without that host provisioned, it compiles.
vLLM's role tests run on the host tests/test_vllm_e2e.py provisions (three minutes to install).

Without a lab: each role's variables are all prefixed by the role and all in its README.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest
from conftest import REPO
from rigctl.roles.llamacpp import defaults as llamacpp_defaults
from role_scenarios import changed_ops, converge, instance_config, verify

from rigctl import hostdata
from rigctl.fetch.builds import keep_build
from rigctl.lab import Lab, LabHost
from rigctl.paths import cache_dir
from rigctl.pyinfra_api import Session, load_inventory, run_command

ROLES_HOST = 6

ROLE_PREFIXES = {
    "toolchain": "TOOLCHAIN_",
    "service": "SERVICE_",
    "llamacpp": "LLAMACPP_",
    "ollama": "OLLAMA_",
    "vllm": "VLLM_",
    "nvidia_driver": "NVIDIA_DRIVER_|NVIDIA_REPO_",
    "cuda_toolkit": "CUDA_TOOLKIT_",
    "rocm": "ROCM_",
    "vulkan": "VULKAN_",
}


def _defaults_names(role: str) -> list[str]:
    """The module-level UPPER_CASE names ``roles/<role>/defaults.py`` assigns."""
    tree = ast.parse((REPO / "roles" / role / "defaults.py").read_text())
    names = []
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        names += [t.id for t in targets if isinstance(t, ast.Name) and t.id.isupper()]
    return names


def test_every_role_is_checked() -> None:
    assert sorted(ROLE_PREFIXES) == sorted(
        p.parent.name for p in (REPO / "roles").glob("*/defaults.py")
    )


@pytest.mark.parametrize("role", sorted(ROLE_PREFIXES))
def test_role_variables_are_prefixed_and_in_the_readme(role: str) -> None:
    """Each constant of a role's defaults.py starts with the role's prefix and is in its README
    (as `NAME`, or as its host-data key `name` when it is one); so is each host-data key."""
    names = _defaults_names(role)
    assert names, f"roles/{role}/defaults.py: no constants found: the test would pass vacuously"
    prefixes = tuple(ROLE_PREFIXES[role].split("|"))
    assert [n for n in names if not n.startswith(prefixes)] == []
    readme = (REPO / "roles" / role / "README.md").read_text()
    keys = hostdata.keys_of(role)

    def listed(name: str) -> bool:
        return f"`{name}`" in readme

    missing = [n for n in names if not listed(n) and not (n.lower() in keys and listed(n.lower()))]
    assert missing == [], f"roles/{role}/README.md does not list {missing}"
    assert [k for k in keys if not listed(k)] == []


@pytest.fixture(scope="module")
def roles_host(lab: Lab) -> LabHost:
    # booted with the session's lab: pyinfra memoizes known_hosts per process
    return next(h for h in lab.running_hosts() if h.index == ROLES_HOST)


@pytest.fixture(scope="module")
def config(lab: Lab, roles_host: LabHost, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return instance_config(lab, roles_host, tmp_path_factory.mktemp("roles") / "instances.yml")


@pytest.fixture(scope="module")
def controller_cache(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A controller cache of this module's own: the packed llama.cpp source when this machine
    has it, and the builds installed on rtest1 (kept as rigctl provision keeps them)."""
    cache = tmp_path_factory.mktemp("rigctl-cache")
    sources = cache_dir() / "sources"
    if sources.is_dir():
        shutil.copytree(sources, cache / "sources")
    builder = lab.running_hosts()[0]
    inventory = tmp_path_factory.mktemp("builder") / "builder.py"
    inventory.write_text(f"hosts = [({builder.name!r}, {lab.host_data(builder)!r})]\n")
    prefix = llamacpp_defaults.LLAMACPP_PREFIX
    with Session(load_inventory(str(inventory))) as session:
        target = session.host(builder.name)
        _ok, listed, _ = run_command(
            target, f"cd {prefix}/builds 2>/dev/null && ls -d */BUILD_INFO.json || true"
        )
        for name in (line.split("/", 1)[0] for line in listed.split()):
            keep_build(target, name, prefix, cache=cache / "builds")
    return cache


@pytest.mark.lab
@pytest.mark.parametrize("role", ["toolchain", "service", "llamacpp", "ollama", "vulkan"])
def test_role_converges_idempotent_and_passes_its_tests(
    role: str, config: Path, controller_cache: Path
) -> None:
    env = {"RIGCTL_CACHE_DIR": str(controller_cache)}
    kept = sorted((controller_cache / "builds").glob("*.tar.gz"))
    first = converge(role, config, env)
    assert first["ok"], first
    if role == "llamacpp" and kept:
        # rtest1's build went to rtest6 instead of a compile
        assert any("install prebuilt" in op for op in changed_ops(first)), changed_ops(first)
    second = converge(role, config, env)
    assert second["ok"] and changed_ops(second) == [], (
        f"{role} is not idempotent: {changed_ops(second)}"
    )
    result = verify(role, config)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


# --------------------------------------------------------------------------- nvidia_driver

#: A bookworm host of its own: the role reboots it (the lab boots it again, as systemd's
#: systemd-nspawn@.service does).
NVIDIA_DRIVER_HOST = 23


@pytest.mark.lab
def test_nvidia_driver_installs_from_nvidia_repository_and_reboots(
    lab: Lab, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``nvidia_driver: install`` up to the reboot: NVIDIA's repository added by its keyring
    package (fetched over HTTPS), the driver's packages and the running kernel's headers
    installed from it, and the host rebooted and waited for. The repository is the TEST DOUBLE
    of NVIDIA's (tests/doubles/nvidia_repo.py), served over HTTPS on 127.0.0.1 with a CA the
    host is made to trust."""
    from conftest import forget_known_hosts
    from doubles.nvidia_repo import NvidiaRepository

    target = lab.up_host(NVIDIA_DRIVER_HOST)
    forget_known_hosts()
    work = tmp_path_factory.mktemp("nvidia-driver")
    config = instance_config(lab, target, work / "instances.yml")
    inventory = work / "host.py"
    inventory.write_text(f"hosts = [({target.name!r}, {lab.host_data(target)!r})]\n")
    with NvidiaRepository(work / "repo") as repo:
        with Session(load_inventory(str(inventory))) as session:
            ok, _, err = run_command(
                session.host(target.name), repo.host_trust_commands() + " && touch /run/booted-before"
            )
            assert ok, err
        env = {"RIGCTL_ROLETEST_NVIDIA_REPO": repo.base_url}
        first = converge("nvidia_driver", config, env)
        assert first["ok"], first
        ops = changed_ops(first)
        assert [op for op in ops if "CUDA repository" in op], ops
        assert [op for op in ops if op.endswith("nvidia: driver")], ops
        with Session(load_inventory(str(inventory))) as session:
            ok, out, err = run_command(
                session.host(target.name), "test -e /run/booted-before && echo same || echo rebooted"
            )
        assert ok and out.strip() == "rebooted", (out, err)
        result = verify("nvidia_driver", config)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        assert "passed" in result.stdout and "failed" not in result.stdout
        assert "1 skipped" in result.stdout  # the module check: the double has no module
        # again: the repository and the packages are there; only the reboot is repeated, since no
        # NVIDIA module can load in a container
        second = converge("nvidia_driver", config, env)
        assert second["ok"] and [op for op in changed_ops(second)] == [
            op for op in ops if op.endswith("nvidia: driver")
        ], changed_ops(second)
