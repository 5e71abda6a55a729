"""Ollama's release archives as upstream ships them today: names (``.tar.zst`` from 0.14.0,
``.tgz`` below; ROCm; JetPack from the Jetson's L4T release), URLs, ``sha256sum.txt`` read
strictly, and the deploy's controller side against a release served on 127.0.0.1 in
upstream's layout. No lab: the host side is the operation fixtures'
(``tests/operations/rigctl.roles.ollama.operations.archives``) and the lab's."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from doubles.ollama_archive import compress, double_tar, sums_text, tar_bytes, write_release
from fileserver import FileServer
from rigctl.deploys import HostInputs
from rigctl.deploys.ollama import OllamaDeploy, l4t_release
from rigctl.roles import ollama
from rigctl.roles.ollama import defaults, release
from rigctl.roles.ollama.operations import unpack_command
from test_templates import CASES

from rigctl.errors import BadInput, RigctlError
from rigctl.facts.nvidia import JetsonRelease
from rigctl.fetch.http import Verified
from rigctl.fetch.shared import SharedFetches
from rigctl.hostspec import host_spec
from rigctl.models import get_catalog_model
from rigctl.plan import make_plan

VERSION = defaults.OLLAMA_VERSION
AMD64 = "ollama-linux-amd64.tar.zst"
FACTS = Path(__file__).parent / "facts" / "nvidia.JetsonRelease"

# -- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arch", "accelerator", "version", "l4t", "names"),
    [
        ("x86_64", "cpu", VERSION, None, [AMD64]),
        ("x86_64", "cuda", VERSION, None, [AMD64]),
        ("amd64", "rocm", VERSION, None, [AMD64, "ollama-linux-amd64-rocm.tar.zst"]),
        ("x86_64", "vulkan", VERSION, None, [AMD64]),
        ("aarch64", "cpu", VERSION, None, ["ollama-linux-arm64.tar.zst"]),
        # no ROCm build for arm64, no JetPack on amd64
        ("aarch64", "rocm", VERSION, None, ["ollama-linux-arm64.tar.zst"]),
        ("x86_64", "cuda", VERSION, "36.3.0", [AMD64]),
        # JetPack from the L4T release, as upstream's install.sh: R36 -> 6, R35 -> 5
        ("aarch64", "cuda", VERSION, "36.3.0",
         ["ollama-linux-arm64.tar.zst", "ollama-linux-arm64-jetpack6.tar.zst"]),
        ("arm64", "cuda", VERSION, "35.4.1",
         ["ollama-linux-arm64.tar.zst", "ollama-linux-arm64-jetpack5.tar.zst"]),
        # an L4T release upstream has no JetPack archive for (R34, JetPack 7's R38): the base
        ("aarch64", "cuda", VERSION, "38.2.0", ["ollama-linux-arm64.tar.zst"]),
        ("aarch64", "cuda", VERSION, "34.1.1", ["ollama-linux-arm64.tar.zst"]),
        # the extension follows the pinned version: .tar.zst from 0.14.0 (rc0 included)
        ("x86_64", "cpu", "0.13.5", None, ["ollama-linux-amd64.tgz"]),
        ("x86_64", "rocm", "0.9.6", None, ["ollama-linux-amd64.tgz", "ollama-linux-amd64-rocm.tgz"]),
        ("aarch64", "cuda", "v0.12.10", "36.3.0",
         ["ollama-linux-arm64.tgz", "ollama-linux-arm64-jetpack6.tgz"]),
        ("x86_64", "cpu", "0.14.0-rc0", None, [AMD64]),
        ("x86_64", "cpu", "v0.14.0", None, [AMD64]),
        ("x86_64", "cpu", "1.0.0", None, [AMD64]),
    ],
)
def test_archive_names(
    arch: str, accelerator: str, version: str, l4t: str | None, names: list[str]
) -> None:
    assert ollama.archive_names(arch, accelerator, version, l4t) == names


def test_the_default_is_a_pinned_zstd_release() -> None:
    assert release.VERSION_PATTERN.fullmatch(VERSION) and not VERSION.startswith("v")
    assert release.release_version(VERSION) >= release.ZSTD_SINCE
    assert ollama.archive_names("x86_64", "cpu") == [AMD64]


@pytest.mark.parametrize("arch", ["riscv64", "armv7l", "ppc64le", ""])
def test_an_arch_upstream_does_not_build_is_bad_input(arch: str) -> None:
    with pytest.raises(BadInput, match="field arch: Ollama publishes Linux builds"):
        ollama.archive_names(arch, "cpu", VERSION)


@pytest.mark.parametrize("version", ["latest", "0.34", "0.34.2\n", "../0.34.2", "", "0.34.2 ", "x1.2.3"])
def test_a_version_that_is_no_release_is_bad_input(version: str) -> None:
    with pytest.raises(BadInput, match="field ollama_version"):
        ollama.archive_names("x86_64", "cpu", version)
    with pytest.raises(BadInput, match="field ollama_version"):
        release.archive_url(AMD64, version=version)


# -- JetPack, from the one Jetson fact ----------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "suffix"),
    [("orin_r36", "jetpack6"), ("xavier_r35", "jetpack5"), ("not_jetson", None)],
)
def test_jetpack_chosen_from_nv_tegra_release(fixture: str, suffix: str | None) -> None:
    """The JetsonRelease fact's real output (``/etc/nv_tegra_release``) picks the archive."""
    case = json.loads((FACTS / f"{fixture}.json").read_text())
    l4t = JetsonRelease().process(case["output"])
    assert l4t == case["fact"]
    assert release.jetpack(l4t) == suffix
    names = ollama.archive_names("aarch64", "cuda", VERSION, l4t)
    assert names[1:] == ([f"ollama-linux-arm64-{suffix}.tar.zst"] if suffix else [])


@pytest.mark.parametrize(
    ("l4t", "suffix"),
    [("36.4.3", "jetpack6"), ("R36", "jetpack6"), ("35.6.0", "jetpack5"), ("38.2.0", None),
     ("3.6", None), ("", None), (None, None)],
)
def test_jetpack_of_an_l4t_release(l4t: str | None, suffix: str | None) -> None:
    assert release.jetpack(l4t) == suffix


def test_the_l4t_release_is_read_from_the_hardware_record_only_when_it_has_one() -> None:
    hardware = dataclasses.replace(CASES["cuda"])
    assert l4t_release(hardware) is None
    assert l4t_release(dataclasses.replace(hardware, jetson_release="36.3.0")) == "36.3.0"
    assert l4t_release(dataclasses.replace(hardware, jetson_release="")) is None


# -- URLs ---------------------------------------------------------------------------------------


def test_urls_per_version_and_base() -> None:
    github = "https://github.com/ollama/ollama/releases/download"
    assert github == defaults.OLLAMA_BASE_URL
    assert release.archive_url(AMD64) == f"{github}/v{VERSION}/{AMD64}"
    assert release.sums_url() == f"{github}/v{VERSION}/sha256sum.txt"
    assert release.archive_url(AMD64, github, f"v{VERSION}") == f"{github}/v{VERSION}/{AMD64}"
    mirror = "http://127.0.0.1:8000/mirror/ollama/"
    assert (
        ollama.archive_url("ollama-linux-amd64.tgz", mirror, "0.13.5")
        == "http://127.0.0.1:8000/mirror/ollama/v0.13.5/ollama-linux-amd64.tgz"
    )
    assert ollama.sums_url(mirror, "0.14.0-rc1") == (
        "http://127.0.0.1:8000/mirror/ollama/v0.14.0-rc1/sha256sum.txt"
    )


# -- sha256sum.txt ------------------------------------------------------------------------------

A = "a" * 64
B = "0123456789abcdef" * 4
# upstream's shape (v0.5.3's, ollama/ollama#8136; ./ from `find .`), with this release's names
UPSTREAM = (
    f"{B}  ./ollama-windows-arm64.zip\n"
    f"{A}  ./ollama-linux-amd64.tar.zst\n"
    f"{'c' * 64}  ./ollama-linux-arm64-jetpack6.tar.zst\n"
    f"{'d' * 64}  ./OllamaSetup.exe\n"
    f"{'e' * 64}  ./install.sh\n"
)


def test_sha256sum_txt_as_upstream_writes_it() -> None:
    sums = release.parse_sha256sums(UPSTREAM.encode())
    assert sums[AMD64] == A and sums["ollama-linux-arm64-jetpack6.tar.zst"] == "c" * 64
    assert len(sums) == 5


@pytest.mark.parametrize(
    "text",
    [
        f"{A}  {AMD64}\n",  # no ./
        f"{A} *{AMD64}\n",  # sha256sum's binary mode
        f"{A}  ./{AMD64}",  # no final newline
        f"\n{A}  ./{AMD64}\n\n",  # empty lines
        f"{A}  ./{AMD64}\n{A}  ./{AMD64}\n",  # the same entry twice
        f"{A}  ./{AMD64}\n{B}  ./Ollama Setup.exe\n{B}  ./sub/x.zip\n",  # other names, any shape
    ],
)
def test_sha256sum_txt_variants_sha256sum_accepts(text: str) -> None:
    assert release.parse_sha256sums(text.encode())[AMD64] == A


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "lists no file"),
        (b"\n\n", "lists no file"),
        (f"{A.upper()}  ./{AMD64}\n".encode(), "line 1 is not"),
        (f"{A[:63]}  ./{AMD64}\n".encode(), "line 1 is not"),
        (f"{A}0  ./{AMD64}\n".encode(), "line 1 is not"),
        (f"{A} ./{AMD64}\n".encode(), "line 1 is not"),  # one space
        (f"{A}\t./{AMD64}\n".encode(), "line 1 is not"),
        (f"{A}  \n".encode(), "line 1 is not"),  # no name
        (f"{A}  ./{AMD64}\r\n".encode(), "line 1 is not"),  # CR: a control character
        (f"{B}  ./x.zip\n{A}  ./{AMD64}\x1b[2J\n".encode(), "line 2 is not"),
        (f" {A}  ./{AMD64}\n".encode(), "line 1 is not"),
        (f"SHA256 ({AMD64}) = {A}\n".encode(), "line 1 is not"),  # BSD format
        (b"<html><body>Not Found</body></html>\n", "line 1 is not"),  # a mirror's error page
        (f"{A}  ./ollama-linux-\u00e4md64.tar.zst\n".encode(), "not ASCII"),
        (b"\xff\xfe" + f"{A}  ./{AMD64}\n".encode("utf-16-le"), "not ASCII"),
        (f"{A}  ./{AMD64}\n{B}  ./{AMD64}\n".encode(), "listed twice with two different sha256s"),
    ],
)
def test_malformed_sha256sum_txt_is_refused(data: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        release.parse_sha256sums(data)


def test_oversized_sha256sum_txt_is_refused() -> None:
    line = f"{A}  ./{AMD64}\n".encode()
    fits = line * (release.MAX_SUMS_BYTES // len(line))
    assert release.parse_sha256sums(fits) == {AMD64: A}
    with pytest.raises(ValueError, match="more than the 65,536"):
        release.parse_sha256sums(fits + b"x" * (release.MAX_SUMS_BYTES + 1 - len(fits)))


def test_host_data_sha256_wins_and_a_missing_entry_is_none() -> None:
    listed = release.parse_sha256sums(UPSTREAM.encode())
    assert release.archive_sha256(AMD64, {}, listed) == A
    assert release.archive_sha256(AMD64, {AMD64: B}, listed) == B
    assert release.archive_sha256("ollama-linux-amd64-rocm.tar.zst", {}, listed) is None


# -- the host side: how each archive is unpacked ------------------------------------------------


def test_unpack_command_by_extension() -> None:
    assert str(unpack_command("/var/cache/rigctl/ollama-linux-amd64.tar.zst", "/usr/local")) == (
        "tar --no-same-owner --use-compress-program=zstd -xf"
        " /var/cache/rigctl/ollama-linux-amd64.tar.zst -C /usr/local"
    )
    assert str(unpack_command("/x/ollama-linux-amd64.tgz", "/opt/o l")) == (
        "tar --no-same-owner -xzf /x/ollama-linux-amd64.tgz -C '/opt/o l'"
    )
    for bad in ("/x/ollama-linux-amd64.zip", "/x/evil.tar.zst", "/x/ollama-$(id).tgz"):
        with pytest.raises(ValueError, match="not an Ollama release archive"):
            unpack_command(bad, "/usr/local")


def test_the_test_double_archive_unpacks_with_the_hosts_command(tmp_path: Path) -> None:
    """What the operation runs on the host, run here on the double's ``.tar.zst``."""
    archive = tmp_path / AMD64
    archive.write_bytes(compress(AMD64, double_tar()))
    assert archive.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"  # zstd's magic
    assert archive.read_bytes() == compress(AMD64, double_tar())  # the same bytes every time
    (tmp_path / "root").mkdir()
    subprocess.run(
        str(unpack_command(str(archive), str(tmp_path / "root"))), shell=True, check=True
    )
    binary = tmp_path / "root" / "bin" / "ollama"
    assert binary.stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "root" / "lib" / "ollama" / "README").is_file()


# -- the deploy's controller side, against a release served on 127.0.0.1 -----------------------


@pytest.fixture()
def www(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FileServer]:
    monkeypatch.setenv("RIGCTL_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "www"
    root.mkdir()
    with FileServer(root) as server:
        yield server


def _archive(readme: bytes) -> bytes:
    return compress(AMD64, tar_bytes({"bin/ollama": (b"#!/bin/sh\n", 0o755),
                                      "lib/ollama/README": (readme, 0o644)}))


def _deploy(
    name: str = "gpu1", hardware: Any = None, **data: Any
) -> OllamaDeploy:
    hardware = hardware or CASES["cpu"]
    spec = host_spec(name, {"model": "llama-3.1-8b-instruct:q4_k_m", "port": 11434})
    plan = make_plan(
        hardware, get_catalog_model("llama-3.1-8b-instruct:q4_k_m"), runtime="ollama"
    )
    return OllamaDeploy(HostInputs(name, data, spec, hardware, plan))


class _Fetches(SharedFetches):
    """The run's shared fetches, the model left out (it is not what these tests are about)."""

    def __init__(self) -> None:
        super().__init__(self._log)
        self.reported: list[tuple[str | None, str, str]] = []

    def _log(self, host: str | None, stage: str, detail: str) -> None:
        self.reported.append((host, stage, detail))

    def model(self, *args: Any, **kwargs: Any) -> Verified:
        return Verified(Path("/dev/null"), "0" * 64, 0)


def _paths(server: FileServer) -> list[str | None]:
    return [r["path"] for r in server.faults.requests]


def test_default_pin_fetches_the_zstd_archive_checked_against_sha256sum_txt(
    www: FileServer,
) -> None:
    data = _archive(b"one\n")
    write_release(www.root, VERSION, {AMD64: data, "ollama-linux-arm64.tar.zst": b"other"})
    deploy = _deploy(ollama_base_url=www.url)
    fetches = _Fetches()
    deploy.prepare(fetches)
    (archive,) = deploy.archives
    assert archive.path.name == AMD64 and archive.sha256 == hashlib.sha256(data).hexdigest()
    assert archive.path.read_bytes() == data
    assert _paths(www) == [f"/v{VERSION}/sha256sum.txt", f"/v{VERSION}/{AMD64}"]
    assert ("gpu1", "ollama", "sha256sum.txt") in fetches.reported
    # a second run (another host of the run, or the next run) uses the cached, checked copies
    again = _deploy(ollama_base_url=www.url)
    again.prepare(_Fetches())
    assert again.archives[0].sha256 == archive.sha256
    assert _paths(www) == [f"/v{VERSION}/sha256sum.txt", f"/v{VERSION}/{AMD64}"]


def test_a_pin_below_0_14_fetches_the_tgz(www: FileServer) -> None:
    data = compress("ollama-linux-amd64.tgz", double_tar())
    write_release(www.root, "0.13.5", {"ollama-linux-amd64.tgz": data})
    deploy = _deploy(ollama_base_url=www.url, ollama_version="v0.13.5")
    deploy.prepare(_Fetches())
    assert [a.path.name for a in deploy.archives] == ["ollama-linux-amd64.tgz"]
    assert _paths(www)[-1] == "/v0.13.5/ollama-linux-amd64.tgz"
    with tarfile.open(deploy.archives[0].path) as tar:
        assert "bin/ollama" in tar.getnames()


def test_rocm_and_jetpack_archives_are_fetched_and_checked(www: FileServer) -> None:
    files = {name: _archive(name.encode()) for name in (
        AMD64, "ollama-linux-amd64-rocm.tar.zst",
        "ollama-linux-arm64.tar.zst", "ollama-linux-arm64-jetpack6.tar.zst",
    )}
    write_release(www.root, VERSION, files)
    rocm = _deploy(ollama_base_url=www.url, hardware=CASES["rocm"])
    rocm.prepare(_Fetches())
    assert [a.path.name for a in rocm.archives] == [AMD64, "ollama-linux-amd64-rocm.tar.zst"]
    jetson = dataclasses.replace(
        CASES["cuda"], os=dataclasses.replace(CASES["cuda"].os, arch="aarch64"),
        unified_memory=True,
    )
    jetson.jetson_release = "36.3.0"  # type: ignore[attr-defined]
    orin = _deploy("orin", ollama_base_url=www.url, hardware=jetson)
    orin.prepare(_Fetches())
    assert [(a.path.name, a.sha256) for a in orin.archives] == [
        (n, hashlib.sha256(files[n]).hexdigest())
        for n in ("ollama-linux-arm64.tar.zst", "ollama-linux-arm64-jetpack6.tar.zst")
    ]
    # the host says what it is when served: the same L4T release passes, another one refuses
    orin._check_jetpack("36.3.0")
    with pytest.raises(RigctlError, match=r"^host orin: /etc/nv_tegra_release says L4T 35.4.1,"
                       r" which needs ollama-linux-arm64.tar.zst, ollama-linux-arm64-jetpack5"):
        orin._check_jetpack("35.4.1")


def test_a_jetson_the_hardware_record_did_not_say_is_refused_when_served() -> None:
    arm = dataclasses.replace(CASES["cpu"], os=dataclasses.replace(CASES["cpu"].os, arch="aarch64"))
    deploy = _deploy("orin", hardware=arm)
    assert deploy.names == ["ollama-linux-arm64.tar.zst"]
    deploy._check_jetpack(None)
    with pytest.raises(RigctlError, match="L4T 36.3.0, which needs .*jetpack6.tar.zst") as e:
        deploy._check_jetpack("36.3.0")
    assert "\n" not in str(e.value)


def test_host_data_sha256_wins_and_sha256sum_txt_is_not_fetched(www: FileServer) -> None:
    data = _archive(b"pinned\n")
    # the release's list is wrong for this archive: the pinned sha256 is what counts
    write_release(www.root, VERSION, {AMD64: data}, sums=f"{A}  ./{AMD64}\n")
    sha = hashlib.sha256(data).hexdigest()
    deploy = _deploy(ollama_base_url=www.url, ollama_sha256={AMD64: sha})
    deploy.prepare(_Fetches())
    assert deploy.archives[0].sha256 == sha
    assert _paths(www) == [f"/v{VERSION}/{AMD64}"]


def _refused(deploy: OllamaDeploy) -> str:
    with pytest.raises(BadInput) as e:
        deploy.prepare(_Fetches())
    message = str(e.value)
    assert "\n" not in message and "\r" not in message
    return message


def test_an_archive_that_does_not_match_sha256sum_txt_is_refused(
    www: FileServer, tmp_path: Path
) -> None:
    write_release(www.root, VERSION, {AMD64: _archive(b"one\n")})
    (www.root / f"v{VERSION}" / AMD64).write_bytes(_archive(b"tampered\n"))
    message = _refused(_deploy(ollama_base_url=www.url))
    assert message.startswith(f"host gpu1: field ollama_base_url: could not download {AMD64}:")
    assert "sha256 mismatch" in message
    assert message.endswith(f"the sha256 wanted is {www.url}/v{VERSION}/sha256sum.txt's")
    # nothing unverified is kept in the controller's cache
    assert not list((tmp_path / "cache" / "ollama" / VERSION).glob(f"{AMD64}*"))


def test_an_archive_that_does_not_match_host_data_is_refused(www: FileServer) -> None:
    write_release(www.root, VERSION, {AMD64: _archive(b"one\n")})
    message = _refused(_deploy(ollama_base_url=www.url, ollama_sha256={AMD64: B}))
    assert message.startswith("host gpu1: field ollama_sha256: could not download")
    assert "sha256 mismatch" in message and message.endswith("host data ollama_sha256 gives")


def test_an_archive_sha256sum_txt_does_not_list_is_refused(www: FileServer) -> None:
    write_release(www.root, VERSION, {AMD64: _archive(b"one\n")}, sums=f"{A}  ./other.zip\n")
    message = _refused(_deploy(ollama_base_url=www.url))
    assert message == (
        f"host gpu1: field ollama_sha256: Ollama {VERSION}'s sha256sum.txt"
        f" ({www.url}/v{VERSION}/sha256sum.txt) lists no {AMD64}: give its sha256 in ollama_sha256"
    )
    assert _paths(www) == [f"/v{VERSION}/sha256sum.txt"]  # no archive fetched unchecked


@pytest.mark.parametrize(
    ("sums", "why"),
    [
        (f"{A}  ./{AMD64}\r\n", "not a sha256sum.txt: line 1 is not"),
        ("<html>rate limited</html>", "not a sha256sum.txt: line 1 is not"),
        (f"{A}  ./{AMD64}\n" * 2000, "more than the 65,536 expected"),
    ],
)
def test_a_malformed_or_oversized_sha256sum_txt_is_refused(
    www: FileServer, sums: str, why: str
) -> None:
    write_release(www.root, VERSION, {AMD64: _archive(b"one\n")}, sums=sums)
    message = _refused(_deploy(ollama_base_url=www.url))
    assert message.startswith("host gpu1: field ollama_base_url: could not download sha256sum.txt")
    assert why in message
    assert _paths(www) == [f"/v{VERSION}/sha256sum.txt"]


def test_a_release_the_mirror_does_not_have_is_refused(www: FileServer) -> None:
    message = _refused(_deploy(ollama_base_url=www.url, ollama_version="0.30.0"))
    assert message.startswith("host gpu1: field ollama_base_url: could not download sha256sum.txt")
    assert "404" in message


def test_plain_http_beyond_loopback_needs_pinned_sha256s() -> None:
    """sha256sum.txt over plain http could be changed on the way: only pins vouch there."""
    deploy = _deploy(ollama_base_url="http://192.0.2.7/ollama", allow_http=True)
    message = _refused(deploy)
    assert message.startswith("host gpu1: field ollama_base_url: plain http:// needs a known sha256")


def test_a_cached_sha256sum_txt_is_per_source(www: FileServer, tmp_path: Path) -> None:
    write_release(www.root, VERSION, {AMD64: _archive(b"one\n")})
    _deploy(ollama_base_url=www.url).prepare(_Fetches())
    other = tmp_path / "other"
    with FileServer(other) as mirror:
        other.mkdir(exist_ok=True)
        write_release(other, VERSION, {AMD64: _archive(b"one\n")}, sums=f"{A}  ./x.zip\n")
        message = _refused(_deploy(ollama_base_url=mirror.url))
    assert "lists no ollama-linux-amd64.tar.zst" in message


def test_sums_text_is_upstreams_shape() -> None:
    text = sums_text({AMD64: b"x"})
    assert text == f"{hashlib.sha256(b'x').hexdigest()}  ./{AMD64}\n"
    assert release.parse_sha256sums(text.encode()) == {AMD64: hashlib.sha256(b"x").hexdigest()}
