"""The layout holds: one door to pyinfra, the design card's folders inside one import package."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE_FOLDERS = ["rigctl", "cli", "roles", "deploys", "templates"]
ADAPTER = REPO / "rigctl" / "pyinfra_api"  # the package that owns pyinfra's API


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_only_the_adapter_imports_pyinfra() -> None:
    offenders = []
    for folder in PACKAGE_FOLDERS:
        for path in (REPO / folder).rglob("*.py"):
            if path.is_relative_to(ADAPTER):
                continue
            pyinfra_imports = {
                n for n in _imports(path) if n.split(".")[0] in ("pyinfra", "pyinfra_cli")
            }
            if pyinfra_imports:
                offenders.append(f"{path.relative_to(REPO)}: {sorted(pyinfra_imports)}")
    assert offenders == [], "import pyinfra through rigctl.pyinfra_api only:\n" + "\n".join(
        offenders
    )


def test_design_card_folders_exist() -> None:
    for name in [
        "pyproject.toml",
        "deploys",
        "inventories",
        "templates",
        "roles",
        "cli",
        "tests",
        "README.md",
    ]:
        assert (REPO / name).exists(), name


def test_wheel_maps_folders_into_one_package(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("rigctl-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in [
        "rigctl/pyinfra_api/__init__.py",
        "rigctl/pyinfra_api/session.py",
        "rigctl/cli/main.py",
        "rigctl/roles/toolchain/__init__.py",
        "rigctl/roles/toolchain/defaults.py",
        "rigctl/roles/toolchain/README.md",
        "rigctl/deploys/__init__.py",
        "rigctl/templates/__init__.py",
        "rigctl/lab/hosts.py",
        # rigctl verify's testinfra suite ships in the package
        "rigctl/verify/plugin.py",
        "rigctl/verify/suite/conftest.py",
        "rigctl/verify/suite/test_install.py",
        "rigctl/verify/suite/test_service.py",
        "rigctl/verify/suite/test_endpoint.py",
    ]:
        assert expected in names, expected
    tops = {name.split("/")[0] for name in names}
    assert tops <= {"rigctl", next(n for n in tops if n.endswith(".dist-info"))}, tops
    assert not any("test_double" in name or name.startswith("tests/") for name in names)


def test_the_planner_and_the_hardware_record_import_no_pyinfra() -> None:
    """Planning is pure: importing the planner, the hardware record, the host-data schema and
    the model catalog in a fresh interpreter loads neither pyinfra nor gevent."""
    code = (
        "import sys, rigctl.plan, rigctl.hardware, rigctl.hostdata, rigctl.hostspec, "
        "rigctl.models.catalog\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('pyinfra', 'gevent', 'paramiko'))\n"
        "print(' '.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported: {out.stdout.strip()}"


def test_verify_and_rollback_do_not_import_the_provision_pipeline() -> None:
    """``provision`` is the pipeline on top; what verify and rollback share with it (the
    lockfile, unit health, progress) lives in modules of its own."""
    root = Path(__file__).resolve().parent.parent / "rigctl"
    offenders = []
    for path in [root / "rollback.py", *(root / "verify").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            if any(n == "rigctl.provision" or n.startswith("rigctl.provision.") for n in names):
                offenders.append(str(path.relative_to(root)))
    assert not offenders


def test_the_provision_pipeline_never_branches_on_the_runtime() -> None:
    """Each runtime's part is its Deploy (deploys/<runtime>.py): provision.py names none of
    them and imports no runtime's deploy or role."""
    from rigctl.plan.types import RUNTIME_CHOICES

    path = REPO / "rigctl" / "provision.py"
    tree = ast.parse(path.read_text())
    runtimes = {r for r in RUNTIME_CHOICES if r != "auto"}
    named = [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value in runtimes
    ]
    assert not named, f"provision.py names a runtime: {named}"
    modules = _imports(path)
    runtime_modules = [
        m for m in modules if any(m.endswith(f".{r}") or f".{r}." in m for r in runtimes)
    ]
    assert not runtime_modules, runtime_modules


def test_every_runtime_deploy_has_the_same_shape() -> None:
    """One class per planner runtime, each with its unit, its controller step and its serve."""
    from rigctl.deploys import Deploy
    from rigctl.deploys.runtimes import RUNTIMES

    from rigctl.plan.types import RUNTIME_CHOICES

    assert set(RUNTIMES) == set(RUNTIME_CHOICES) - {"auto"}
    for name, cls in RUNTIMES.items():
        assert issubclass(cls, Deploy), name
        assert isinstance(cls.UNIT, str) and cls.UNIT, name
        for step in ("prepare", "serve"):
            assert getattr(cls, step) is not getattr(Deploy, step), f"{name} lacks {step}"
        assert cls.__module__ == f"rigctl.deploys.{name}", cls.__module__
