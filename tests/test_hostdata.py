"""The host-data schema: every key declared once, checked before anything connects.

No lab: an inventory is loaded (which checks every host's data) without contacting any host;
the CLI cases use a documentation address (192.0.2.0/24) that nothing answers, and must fail
with exit 2 before trying it.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from conftest import REPO, rigctl
from hypothesis import given, settings
from hypothesis import strategies as st

from rigctl import hostdata
from rigctl.errors import BadInput
from rigctl.hostspec import host_spec
from rigctl.pyinfra_api import load_inventory

ADDRESS = "192.0.2.77"  # TEST-NET-1: never routed


def _inventory(tmp_path: Path, text: str) -> str:
    # a new file each time: pyinfra caches an inventory file's compiled code by its path
    path = tmp_path / f"inventory{len(list(tmp_path.glob('*.py')))}.py"
    path.write_text(text)
    return str(path)


def _one(tmp_path: Path, **data: object) -> str:
    entry = {"ssh_hostname": ADDRESS, **data}
    return _inventory(tmp_path, f"hosts = [('gpu1', {entry!r})]\n")


# (case, host data, field named in the error)
BAD = [
    ("superscript two as a port", {"port": "²"}, "port"),
    ("port a float", {"port": 80.5}, "port"),
    ("context a bool", {"context": True}, "context"),
    ("threads negative", {"threads": -1}, "threads"),
    ("ssh_port a string", {"ssh_port": "22"}, "ssh_port"),
    ("ssh_strict_host_key_checking a bool", {"ssh_strict_host_key_checking": True}, "ssh_strict_host_key_checking"),
    ("ssh_hostname with a space", {"ssh_hostname": "a b"}, "ssh_hostname"),
    ("listen not an address", {"listen": "0.0.0.0\n"}, "listen"),
    ("model with a newline", {"model": "gemma-3-270m\nExecStartPre=/bin/sh"}, "model"),
    ("model_sha256 not hex", {"model_sha256": "$(touch /pwned)" + "0" * 49}, "model_sha256"),
    ("llamacpp_source entry not a dict", {"llamacpp_source": {"version": "x", "mirrors": ["a"]}}, "llamacpp_source"),
    ("llamacpp_source sha256 malformed", {"llamacpp_source": {"version": "x", "mirrors": [{"kind": "tarball", "location": "https://x/y.tgz", "sha256": "zz"}]}}, "llamacpp_source"),
    ("llamacpp_source version with a newline", {"llamacpp_source": {"version": "b1\n[Service]", "mirrors": [{"kind": "upstream"}]}}, "llamacpp_source"),
    ("llamacpp_prefix with a newline", {"llamacpp_prefix": "/opt/x\nExecStartPre=+/bin/id"}, "llamacpp_prefix"),
    ("llamacpp_prefix relative", {"llamacpp_prefix": "opt/x"}, "llamacpp_prefix"),
    ("llamacpp_prefix with ..", {"llamacpp_prefix": "/opt/../etc"}, "llamacpp_prefix"),
    ("llamacpp_jobs a command", {"llamacpp_jobs": "4; touch /pwned"}, "llamacpp_jobs"),
    ("llamacpp_ccache_dir with $()", {"llamacpp_ccache_dir": "/var/$(id)"}, "llamacpp_ccache_dir"),
    ("llamacpp_cmake_args with a space", {"llamacpp_cmake_args": ["-DX=1 -DY=2"]}, "llamacpp_cmake_args"),
    ("ollama_models_dir widening ReadWritePaths", {"ollama_models_dir": "/var/lib/m /etc"}, "ollama_models_dir"),
    ("ollama_install_dir with a newline", {"ollama_install_dir": "/usr/local\n[Service]"}, "ollama_install_dir"),
    ("ollama_version a path", {"ollama_version": "../../../etc"}, "ollama_version"),
    ("ollama_sha256 malformed", {"ollama_sha256": {"ollama-linux-amd64.tgz": "x"}}, "ollama_sha256"),
    ("ollama_base_url ftp", {"ollama_base_url": "ftp://mirror/ollama"}, "ollama_base_url"),
    ("mirror: the controller's private key", {"model_mirrors": ["~/.ssh/id_ed25519"]}, "model_mirrors"),
    ("mirror: a relative path", {"model_mirrors": ["models/x.gguf"]}, "model_mirrors"),
    ("mirror: gopher", {"model_mirrors": ["gopher://x/y.gguf"]}, "model_mirrors"),
    ("mirror: broken IPv6", {"model_mirrors": ["https://[::1/x.gguf"]}, "model_mirrors"),
    ("mirror: plain http beyond loopback", {"model_mirrors": ["http://192.0.2.5/m.gguf"]}, "model_mirrors"),
    ("ollama_base_url plain http beyond loopback", {"ollama_base_url": "http://192.0.2.5/ollama"}, "ollama_base_url"),
    ("mirror: bad port", {"model_mirrors": ["https://h:99999/x.gguf"]}, "model_mirrors"),
    ("hf_token with a newline", {"hf_token": "hf_abc\nX=1"}, "hf_token"),
    ("vllm_version with a space", {"vllm_version": "0.32.0 --index-url http://x"}, "vllm_version"),
    ("vllm_requirements an option", {"vllm_requirements": ["--index-url=http://evil/"]}, "vllm_requirements"),
    ("toolchain package an option", {"toolchain_apt_packages": ["-oAPT::X=1"]}, "toolchain_apt_packages"),
    ("allow_http a string", {"allow_http": "yes"}, "allow_http"),
    ("typo of a known key", {"runtim": "vllm"}, "runtim"),
    ("Cyrillic look-alike of a known key", {"c\u043entext": 4096}, "c\\u043entext"),
]


@pytest.mark.parametrize(("case", "data", "field"), BAD, ids=[c[0] for c in BAD])
def test_bad_host_data_is_refused_when_the_inventory_loads(
    tmp_path: Path, case: str, data: dict, field: str
) -> None:
    with pytest.raises(BadInput) as caught:
        load_inventory(_one(tmp_path, **data))
    assert str(caught.value).startswith(f"host gpu1: field {field}: "), str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_typo_says_what_it_probably_means(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"did you mean model_mirrors\?"):
        load_inventory(_one(tmp_path, model_mirror=["https://m/x.gguf"]))
    with pytest.raises(BadInput, match=r"did you mean context\?"):
        load_inventory(_one(tmp_path, **{"c\u043entext": 4096}))


def test_other_unknown_keys_are_the_users_own_data_warned_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _inventory(
        tmp_path,
        f"hosts = [('a', {{'ssh_hostname': {ADDRESS!r}, 'rack_position': 7}}),"
        f" ('b', {{'ssh_hostname': {ADDRESS!r}, 'rack_position': 8}})]\n",
    )
    with caplog.at_level(logging.WARNING, logger="rigctl.hostdata"):
        inventory = load_inventory(path)
        load_inventory(path)
    assert len(inventory) == 2
    warnings = [r for r in caplog.records if "rack_position" in r.getMessage()]
    assert len(warnings) == 1


def test_allow_http_admits_a_lan_mirror(tmp_path: Path) -> None:
    inventory = load_inventory(
        _one(tmp_path, allow_http=True, model_mirrors=["http://192.0.2.5/m.gguf"])
    )
    assert len(inventory) == 1


def test_pyinfra_keys_are_known(tmp_path: Path) -> None:
    inventory = load_inventory(
        _one(tmp_path, _sudo=True, _sudo_user="root", _env={"A": "1"}, ssh_connect_retries=2)
    )
    assert len(inventory) == 1


def test_duplicate_hosts_are_bad_input(tmp_path: Path) -> None:
    twice = _inventory(tmp_path, "hosts = [('a', {'model': 'x'}), ('a', {'port': 9000})]\n")
    with pytest.raises(BadInput, match="host a: field inventory: listed twice in group hosts"):
        load_inventory(twice)
    conflicting = _inventory(
        tmp_path, "chat = [('a', {'model': 'x'})]\ncoder = [('a', {'model': 'y'})]\n"
    )
    with pytest.raises(BadInput, match="host a: field model: set to two values"):
        load_inventory(conflicting)
    # a host in two groups with data that agrees is pyinfra's normal way of sharing group data
    shared = _inventory(
        tmp_path, "gpus = [('a', {'model': 'x'})]\nlan = [('a', {'listen': '0.0.0.0'})]\n"
    )
    assert len(load_inventory(shared)) == 1
    with pytest.raises(BadInput, match="host a: field inventory: listed twice"):
        load_inventory("a,b,a")


def test_the_ssh_port_is_not_a_port_to_serve_on() -> None:
    with pytest.raises(BadInput, match="host h: field port: 2222 is the host's SSH port"):
        host_spec("h", {"model": "gemma-3-270m", "port": 2222, "ssh_port": 2222})
    with pytest.raises(BadInput, match="field port: 22 is the host's SSH port"):
        host_spec("h", {"model": "gemma-3-270m", "port": 22})


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"context": 1_000_000}, "context"),  # beyond Gemma 3 270M's trained 32k
        ({"port": "²"}, "port"),
        ({"runtim": "ollama"}, "runtim"),
        ({"model_sha256": "0" * 63}, "model_sha256"),
        ({"port": 22}, "port"),
    ],
)
def test_cli_refuses_before_connecting(tmp_path: Path, data: dict, field: str) -> None:
    """Exit 2, one line, no connection attempted (the address answers nothing: a connection
    attempt would show as an unreachable host, exit 1, after a timeout)."""
    path = _one(tmp_path, model="gemma-3-270m:q4_k_m", **data)
    for command in ("plan", "provision", "rollout"):
        result = rigctl(command, path, timeout=120)
        assert result.returncode == 2, (command, result.stderr[-800:])
        errors = [line for line in result.stderr.splitlines() if line.startswith("rigctl: error:")]
        assert len(errors) == 1 and errors[0].startswith(f"rigctl: error: host gpu1: field {field}:")
        assert "Traceback" not in result.stderr and "Could not connect" not in result.stderr


# -- deprecated old names (aliases) -------------------------------------------------------------


def _two_hosts(tmp_path: Path, **data: object) -> str:
    a = {"ssh_hostname": ADDRESS, **data}
    return _inventory(tmp_path, f"hosts = [('old-a', {a!r}), ('old-b', {a!r})]\n")


def test_an_old_name_is_read_with_one_warning_per_host(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _two_hosts(tmp_path, systemd_unit_dir="/srv/units")
    with caplog.at_level(logging.WARNING, logger="rigctl.hostdata"):
        inventory = load_inventory(path)
        load_inventory(path)
    warnings = [r.getMessage() for r in caplog.records if "systemd_unit_dir" in r.getMessage()]
    assert sorted(warnings) == [
        f"host {name}: host data key systemd_unit_dir is deprecated: use"
        " service_systemd_unit_dir (the old name is still read)"
        for name in ("old-a", "old-b")
    ]
    # the old name is known: neither "did you mean" nor "not one rigctl reads"
    assert not [r for r in caplog.records if "rigctl reads" in r.getMessage()]
    host_obj = next(iter(inventory))
    assert hostdata.role_value(host_obj.data, "service_systemd_unit_dir", "/default") == "/srv/units"
    assert hostdata.check_host_data("h", {"systemd_unit_dir": "/srv/units/"}) == {
        "service_systemd_unit_dir": "/srv/units"
    }


def test_the_role_reads_the_old_name_through_the_accessor(tmp_path: Path) -> None:
    from pyinfra.context import ctx_host
    from rigctl.roles import service

    old, new, neither = load_inventory(
        _inventory(
            tmp_path,
            f"hosts = [('o', {{'ssh_hostname': {ADDRESS!r}, 'systemd_unit_dir': '/srv/old'}}),"
            f" ('n', {{'ssh_hostname': {ADDRESS!r}, 'service_systemd_unit_dir': '/srv/new'}}),"
            f" ('d', {{'ssh_hostname': {ADDRESS!r}}})]\n",
        )
    )
    paths = []
    for host_obj in (old, new, neither):
        with ctx_host.use(host_obj):
            paths.append(service.unit_path("u"))
    assert paths == ["/srv/old/u.service", "/srv/new/u.service", "/etc/systemd/system/u.service"]
    assert hostdata.role_value({}, "service_systemd_unit_dir", "/d") == "/d"
    # a value that is set wins over the default, even when falsy
    assert hostdata.role_value({"vllm_index_url": None}, "vllm_index_url", "x") is None


def test_an_old_name_is_checked_like_the_new_one(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"^host gpu1: field systemd_unit_dir: must be an absolute path"):
        load_inventory(_one(tmp_path, systemd_unit_dir="etc/systemd/system"))


def test_old_and_new_name_with_two_values_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as caught:
        load_inventory(_one(tmp_path, systemd_unit_dir="/a", service_systemd_unit_dir="/b"))
    assert str(caught.value) == (
        "host gpu1: field service_systemd_unit_dir: set to two values: '/b', and '/a' by its"
        " deprecated name systemd_unit_dir"
    )
    # the same value under both names says one thing
    same = _one(tmp_path, systemd_unit_dir="/a", service_systemd_unit_dir="/a")
    assert len(load_inventory(same)) == 1


def test_an_old_name_is_not_an_unknown_key() -> None:
    assert hostdata.ALIASES == {"systemd_unit_dir": "service_systemd_unit_dir"}
    assert hostdata.close_key("systemd_unit_dir") == "service_systemd_unit_dir"
    # a typo of the old name means the new one
    assert hostdata.close_key("systemd_unit_dr") == "service_systemd_unit_dir"
    with pytest.raises(BadInput, match=r"did you mean service_systemd_unit_dir\?"):
        hostdata.check_host_data("h", {"systemd_unit_dr": "/x"})
    # no alias shadows a key, and each names one
    assert not set(hostdata.ALIASES) & set(hostdata.SCHEMA)


# -- the schema is the documentation ----------------------------------------------------------


def test_homelab_inventory_lists_exactly_the_schemas_keys() -> None:
    text = (REPO / "inventories" / "homelab.py").read_text()
    assert hostdata.inventory_doc() in text, "regenerate with rigctl.hostdata.inventory_doc()"
    documented = set(re.findall(r"^    ([a-z_][a-z0-9_]*)\s", text, flags=re.M))
    assert documented == set(hostdata.SCHEMA)


@pytest.mark.parametrize("role", ["llamacpp", "ollama", "vllm", "service", "toolchain"])
def test_each_role_readme_lists_exactly_its_keys(role: str) -> None:
    text = (REPO / "roles" / role / "README.md").read_text()
    assert hostdata.markdown_table(role) in text, "regenerate with rigctl.hostdata.markdown_table()"
    table = text.split("| variable (host data) |", 1)[1].split("\n\n", 1)[0]
    assert set(re.findall(r"^\| `([a-z_0-9]+)` \|", table, flags=re.M)) == set(
        hostdata.keys_of(role)
    )


def test_every_key_the_code_reads_is_declared() -> None:
    """Host data read anywhere in rigctl (``.data.get("key")``, ``data.get("key")`` on host
    data) is a key of the schema: nothing reaches a role without being checked first."""
    read: set[str] = set()
    for folder in ("rigctl", "roles", "deploys", "cli"):
        for path in (REPO / folder).rglob("*.py"):
            source = path.read_text()
            read |= set(re.findall(r"\bdata\.get\(\s*[\"']([a-z_][a-z0-9_]*)[\"']", source))
            read |= set(
                re.findall(r"\brole_value\(\s*[\w.]+,\s*[\"']([a-z_][a-z0-9_]*)[\"']", source)
            )
    read -= {"SPHardwareDataType", "SPDisplaysDataType"}  # macOS system_profiler JSON, not host data
    assert read, "the pattern found nothing: the test would pass vacuously"
    undeclared = sorted(k for k in read if k not in hostdata.SCHEMA and not hostdata.is_pyinfra_key(k))
    assert not undeclared


# -- properties --------------------------------------------------------------------------------

PATH_KEYS = [k.name for k in hostdata.SCHEMA.values() if k.check is hostdata.host_path]


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(PATH_KEYS), value=st.text(min_size=0, max_size=40))
def test_a_host_path_that_passes_is_safe_to_render(key: str, value: str) -> None:
    try:
        checked = hostdata.check_host_data("h", {key: "/" + value})[key]
    except BadInput as e:
        assert str(e).startswith(f"host h: field {key}: ")
        return
    assert checked.startswith("/")
    assert not any(ch.isspace() or not ch.isprintable() for ch in checked)
    assert ".." not in checked.split("/")


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(st.text(max_size=12), st.integers(), st.booleans(), st.floats()))
def test_ports_are_integers_in_range_or_refused(value: object) -> None:
    try:
        port = hostdata.check_host_data("h", {"port": value})["port"]
    except BadInput:
        return
    assert isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535
