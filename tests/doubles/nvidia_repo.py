"""TEST DOUBLE of NVIDIA's CUDA apt repository, served over HTTPS on 127.0.0.1.

NVIDIA's repository (``https://developer.download.nvidia.com/compute/cuda/repos/<distro>/<arch>/``)
cannot be reached here. This builds one in its layout, a flat apt repository:

- ``cuda-keyring_1.1-1_all.deb``: as NVIDIA's, it installs the repository's signing key
  (``/usr/share/keyrings/cuda-archive-keyring.gpg``) and the source line
  (``/etc/apt/sources.list.d/cuda-<distro>-<arch>.list``, ``signed-by`` that key) naming this
  server;
- ``Packages``, ``Release`` and ``InRelease``, signed with a key made for the run (gpg);
- the driver's packages as empty DOUBLES (``nvidia-open`` and the running kernel's
  ``linux-headers-*``: a lab host runs the controller's kernel, which no Debian mirror has), each
  installing only ``/usr/share/doc/<name>/TEST-DOUBLE``.

The server's certificate is signed by a CA made for the run; :func:`host_trust_commands` make a
lab host trust it beside the public CAs (curl and apt), as a site with a private mirror does.
"""

from __future__ import annotations

import datetime
import email.utils
import gzip
import hashlib
import ipaddress
import os
import shlex
import shutil
import ssl
import subprocess
import tempfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

KEYRING_DEB = "cuda-keyring_1.1-1_all.deb"
#: Where a lab host keeps the bundle of public CAs plus the double's CA.
HOST_BUNDLE = "/etc/ssl/rigctl-test/ca-bundle.crt"
DOUBLE_MARK = "TEST-DOUBLE"


def _deb(work: Path, name: str, version: str, files: dict[str, bytes], description: str) -> Path:
    tree = work / f"{name}_{version}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: rigctl tests <tests@rigctl.invalid>\nSection: misc\nPriority: optional\n"
        f"Description: TEST DOUBLE: {description}\n"
    )
    for path, content in files.items():
        target = tree / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    out = work / f"{name}_{version}_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(out)],
        check=True, capture_output=True,
    )
    shutil.rmtree(tree)
    return out


def _gpg(home: Path, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["gpg", "--batch", "--quiet", "--homedir", str(home), *args],
        check=True, capture_output=True, **kwargs,
    )


def _release(repo: Path, files: list[str]) -> str:
    date = email.utils.formatdate(usegmt=True)
    lines = [
        "Origin: rigctl test double of NVIDIA's CUDA repository",
        "Label: NVIDIA CUDA (TEST DOUBLE)",
        "Architecture: amd64",
        f"Date: {date}",
        "SHA256:",
    ]
    for name in files:
        data = (repo / name).read_bytes()
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {name}")
    return "\n".join(lines) + "\n"


def _certificates(work: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for 127.0.0.1 it signs: (ca.pem, server.pem, server.key)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rigctl test double CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    paths = work / "ca.pem", work / "server.pem", work / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class NvidiaRepository:
    """The double, built in ``root`` and served over HTTPS while the ``with`` block runs.

    ``base_url`` is what host data ``nvidia_repo_base_url`` takes; the repository of
    ``distro``/``arch`` lies under it as under NVIDIA's.
    """

    def __init__(self, root: Path, distro: str = "debian12", arch: str = "x86_64",
                 kernel: str | None = None) -> None:
        self.root, self.distro, self.arch = root, distro, arch
        self.kernel = kernel or os.uname().release
        root.mkdir(parents=True, exist_ok=True)
        self.ca, cert, key = _certificates(root)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        handler = partial(_Quiet, directory=str(root / "www"))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.driver_packages = ["nvidia-open", f"linux-headers-{self.kernel}"]
        self._build()

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}"

    @property
    def repo_url(self) -> str:
        return f"{self.base_url}/{self.distro}/{self.arch}"

    def _build(self) -> None:
        repo = self.root / "www" / self.distro / self.arch
        repo.mkdir(parents=True)
        home = Path(tempfile.mkdtemp(prefix="gpg-", dir=self.root))
        home.chmod(0o700)
        try:
            _gpg(home, "--passphrase", "", "--quick-gen-key",
                 "rigctl test double <tests@rigctl.invalid>", "ed25519", "sign", "never")
            keyring = _gpg(home, "--export").stdout
            listing = (
                f"deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] {self.repo_url}/ /\n"
            )
            work = self.root / "debs"
            work.mkdir()
            debs = [
                _deb(work, "cuda-keyring", "1.1-1", {
                    "/usr/share/keyrings/cuda-archive-keyring.gpg": keyring,
                    f"/etc/apt/sources.list.d/cuda-{self.distro}-{self.arch}.list": listing.encode(),
                }, "NVIDIA's CUDA repository key and source line"),
                *(
                    _deb(work, name, "580.95.05-1", {f"/usr/share/doc/{name}/{DOUBLE_MARK}": b""},
                         f"{name} (nothing is installed)")
                    for name in self.driver_packages
                ),
            ]
            for deb in debs:
                shutil.move(deb, repo / deb.name)
            packages = subprocess.run(
                ["dpkg-scanpackages", "--multiversion", ".", "/dev/null"],
                cwd=repo, check=True, capture_output=True,
            ).stdout
            (repo / "Packages").write_bytes(packages)
            (repo / "Packages.gz").write_bytes(gzip.compress(packages))
            (repo / "Release").write_text(_release(repo, ["Packages", "Packages.gz"]))
            _gpg(home, "--clearsign", "-o", str(repo / "InRelease"), str(repo / "Release"))
            _gpg(home, "--armor", "--detach-sign", "-o", str(repo / "Release.gpg"),
                 str(repo / "Release"))
        finally:
            subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"],
                           capture_output=True, check=False)
            shutil.rmtree(home, ignore_errors=True)

    def host_trust_commands(self) -> str:
        """Shell run on a lab host so curl and apt trust the double's CA as well as the public
        ones (the lab binds the controller's bundle read-only, so a bundle of its own)."""
        ca = shlex.quote(self.ca.read_text())
        bundle = shlex.quote(HOST_BUNDLE)
        return (
            f"mkdir -p $(dirname {bundle}) && "
            f"cat /etc/ssl/certs/ca-certificates.crt > {bundle}.part && "
            f"printf '%s\\n' {ca} >> {bundle}.part && mv {bundle}.part {bundle} && "
            f"echo 'cacert = \"{HOST_BUNDLE}\"' > /root/.curlrc && "
            f"echo 'Acquire::https::CaInfo \"{HOST_BUNDLE}\";' "
            "> /etc/apt/apt.conf.d/60rigctl-test-ca"
        )

    def __enter__(self) -> NvidiaRepository:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
