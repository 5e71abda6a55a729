"""The adapter package: its patch of a pyinfra internal is guarded, its face is complete.

The guard (``rigctl/pyinfra_api/patch.py``) checks that the pyinfra function it replaces still
exists with the parameters it was written for; here it is shown the real one (passes), none
(raises) and look-alikes with other parameters (raise), through the pyinfra module attribute
it reads. The face test scans the code base for what it imports from ``rigctl.pyinfra_api``.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import rigctl.pyinfra_api as api
from rigctl.pyinfra_api import patch

REPO = Path(__file__).resolve().parent.parent
FACE = "rigctl.pyinfra_api"
PACKAGE = REPO / "rigctl" / "pyinfra_api"


# --------------------------------------------------------------------------- the guard


def test_the_patch_is_installed_in_place_of_pyinfras_own_function() -> None:
    assert patch.installed()
    assert getattr(patch.TARGET_MODULE, patch.TARGET_NAME) is patch._run_host_op_guarded
    original = patch._unguarded
    assert original is not None and original is not patch._run_host_op_guarded
    # the function kept and called is pyinfra's, from the module it was taken from
    assert original.__module__ == patch.TARGET_MODULE.__name__
    assert original.__name__ == patch.TARGET_NAME


def test_the_guard_passes_on_the_installed_pyinfra(monkeypatch: pytest.MonkeyPatch) -> None:
    original = patch._unguarded
    assert original is not None
    monkeypatch.setattr(patch.TARGET_MODULE, patch.TARGET_NAME, original)
    assert patch.checked_target() is original


def test_installing_twice_changes_nothing() -> None:
    before = patch._unguarded
    patch.install()
    assert patch.installed() and patch._unguarded is before


def test_the_guard_refuses_a_pyinfra_without_the_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(patch.TARGET_MODULE, patch.TARGET_NAME)
    with pytest.raises(RuntimeError) as raised:
        patch.checked_target()
    message = str(raised.value)
    assert "pyinfra.api.operations._run_host_op_with_context" in message
    assert "has no such function" in message
    assert "(state, host, op_hash)" in message
    assert f"pyinfra {patch.pyinfra_version()}" in message


def _extra(state: Any, host: Any, op_hash: Any, retry: int = 0) -> None: ...
def _renamed(state: Any, host: Any, op: Any) -> None: ...
def _fewer(state: Any, host: Any) -> None: ...
def _keyword_only(state: Any, host: Any, *, op_hash: Any) -> None: ...
def _varargs(*args: Any) -> None: ...


@pytest.mark.parametrize(
    "fake,shown",
    [
        (_extra, "(state: 'Any', host: 'Any', op_hash: 'Any', retry: 'int' = 0)"),
        (_renamed, "(state: 'Any', host: 'Any', op: 'Any')"),
        (_fewer, "(state: 'Any', host: 'Any')"),
        (_keyword_only, "(state: 'Any', host: 'Any', *, op_hash: 'Any')"),
        (_varargs, "(*args: 'Any')"),
    ],
    ids=["extra", "renamed", "fewer", "keyword-only", "varargs"],
)
def test_the_guard_refuses_a_function_with_other_parameters(
    monkeypatch: pytest.MonkeyPatch, fake: Callable[..., Any], shown: str
) -> None:
    monkeypatch.setattr(patch.TARGET_MODULE, patch.TARGET_NAME, fake)
    with pytest.raises(RuntimeError) as raised:
        patch.checked_target()
    message = str(raised.value)
    assert "pyinfra.api.operations._run_host_op_with_context" in message
    assert "Expected signature: (state, host, op_hash)" in message
    assert f"found: {shown}" in message
    assert f"pyinfra {patch.pyinfra_version()}" in message


def test_the_guard_refuses_something_that_is_not_a_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(patch.TARGET_MODULE, patch.TARGET_NAME, 42)
    with pytest.raises(RuntimeError, match="not a function"):
        patch.checked_target()


def test_a_refused_install_leaves_pyinfra_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    before = patch._unguarded
    monkeypatch.setattr(patch.TARGET_MODULE, patch.TARGET_NAME, _renamed)
    with pytest.raises(RuntimeError, match="other parameters"):
        patch.install()
    assert getattr(patch.TARGET_MODULE, patch.TARGET_NAME) is _renamed
    assert patch._unguarded is before


def test_importing_the_adapter_fails_loudly_on_a_changed_pyinfra() -> None:
    """The check runs when ``rigctl.pyinfra_api`` is imported (when the patch is installed)."""
    code = (
        "from rigctl import _gevent\n"
        "_gevent.patch()\n"
        "from pyinfra.api import operations\n"
        "operations._run_host_op_with_context = lambda state, host, op: None\n"
        "import rigctl.pyinfra_api\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0
    assert "RuntimeError: rigctl cannot patch pyinfra.api.operations._run_host_op_with_context" in (
        out.stderr
    )
    assert "found: (state, host, op)" in out.stderr


# --------------------------------------------------------------------------- the face


def _sources() -> list[Path]:
    skip = {"build", "rigctl.egg-info", "__pycache__"}
    return [
        path
        for path in REPO.rglob("*.py")
        if not any(part.startswith(".") or part in skip for part in path.relative_to(REPO).parts)
        and not path.is_relative_to(PACKAGE)
    ]


def _names_used_from_the_face(path: Path) -> set[str]:
    """Names imported from the face; attributes of it, set on it (``setattr(api, "name", ...)``)
    where it is imported as a module; dotted names under it in strings (monkeypatch targets)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            if node.module == FACE:
                names.update(a.name for a in node.names if a.name != "*")
            elif node.module == "rigctl":
                aliases.update(a.asname or a.name for a in node.names if a.name == "pyinfra_api")
        elif isinstance(node, ast.Import):
            aliases.update(a.asname for a in node.names if a.name == FACE and a.asname)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.update(re.findall(rf"\b{re.escape(FACE)}\.(\w+)", node.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in aliases:
                names.add(node.attr)
        elif isinstance(node, ast.Attribute) and ast.unparse(node.value) == FACE:
            names.add(node.attr)  # import rigctl.pyinfra_api; rigctl.pyinfra_api.X
        elif (
            isinstance(node, ast.Call)
            and len(node.args) >= 2
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id in aliases
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            names.add(node.args[1].value)  # monkeypatch.setattr(api, "read_file", ...)
    return names


def test_the_face_exposes_every_name_the_code_base_uses_from_it() -> None:
    used: dict[str, set[str]] = {}
    for path in _sources():
        for name in _names_used_from_the_face(path):
            used.setdefault(name, set()).add(str(path.relative_to(REPO)))
    # the scan finds what it should: names from facts, roles, the CLI and tests
    assert {"FactBase", "host", "deploy", "Session", "load_inventory", "read_file"} <= set(used)
    missing = {name: sorted(paths) for name, paths in used.items() if not hasattr(api, name)}
    assert missing == {}


def test_the_face_lists_what_it_exports() -> None:
    assert len(api.__all__) == len(set(api.__all__))
    assert [name for name in api.__all__ if not hasattr(api, name)] == []
    imported_from_face = set().union(*(_names_used_from_the_face(p) for p in _sources()))
    submodules = {p.stem for p in PACKAGE.glob("*.py")}
    dunders = {name for name in imported_from_face if name.startswith("__")}
    assert imported_from_face - submodules - dunders <= set(api.__all__)
