"""Rendering that cannot be escaped: every file rigctl renders, from hostile values.

A model's ``general.name`` is written by whoever published the GGUF, host data by whoever
edits the inventory; both reach units that systemd runs as root. For every template (and the
other files rigctl writes: environment files, Modelfiles) these tests render arbitrary text
in every field and parse the result by the format's own rules: rendering is either refused
(:class:`BadInput`) or gives exactly the structure of the harmless rendering, and the values
read back are the values put in. A newline plus ``[Service]`` and ``ExecStartPre=+...`` in a
model name, a space in a writable path, an ESC sequence on the terminal: each is one case.

The unit parser follows systemd.syntax(7) and conf-parser.c, and is more permissive than
systemd where that can only find more: lines end at ``\\n``, ``\\r``, ``\\r\\n`` and NUL
(systemd's ``read_line``) and, in a second pass, wherever Python's ``str.splitlines`` breaks.
"""

from __future__ import annotations

import functools
import json
import plistlib
import re
import shutil
import subprocess
from collections.abc import Callable
from copy import deepcopy
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rigctl.deploys import llamacpp as llamacpp_deploy
from rigctl.deploys import ollama as ollama_deploy
from rigctl.deploys import vllm as vllm_deploy
from rigctl.templates import FILTERS, ollama_modelfile, render
from test_templates import CASES

from rigctl.errors import BadInput
from rigctl.hostspec import host_spec
from rigctl.models import get_catalog_model
from rigctl.models.gguf_header import clean_text, read_local_header
from rigctl.plan import make_plan

TEMPLATES_DIR = Path(__file__).parent.parent / "templates"
INJECTION = "Evil\n[Service]\nExecStartPre=+/bin/sh -c id"

# --------------------------------------------------------------------------- a unit parser

Item = tuple[str, str, str]  # (section, key, value); key "<junk>" for a line systemd ignores


def systemd_lines(text: str) -> list[str]:
    """Lines as systemd's ``read_line`` ends them: ``\\n``, ``\\r\\n``, ``\\r``, NUL."""
    return re.split(r"\r\n|[\n\r\x00]", text)


def python_lines(text: str) -> list[str]:
    """Lines as Python's ``str.splitlines`` ends them (VT, FF, FS/GS/RS, NEL, U+2028/2029 too)."""
    return text.splitlines()


def parse_unit(
    text: str,
    split: Callable[[str], list[str]] = systemd_lines,
    comments_continue: bool = False,
) -> list[Item]:
    """(section, key, value) of every assignment, in order, as conf-parser.c reads a unit.

    Comments start with ``#`` or ``;``; an odd trailing backslash continues the line (the
    backslash becomes a space), and a comment line met inside a continuation is skipped.
    systemd skips comment lines before it looks for a continuation; ``comments_continue``
    reads them as older parsers did, a comment ending in ``\\`` swallowing the next line.
    Section headers and lines without ``=`` are items too, so an injected one shows.
    """
    items: list[Item] = []
    section = ""
    continuation: str | None = None
    for number, raw in enumerate(split(text)):
        line = raw.removeprefix("\ufeff") if number == 0 else raw
        is_comment = line.lstrip(" \t\n\r")[:1] in ("#", ";")
        if is_comment and (continuation is not None or not comments_continue):
            continue
        if continuation is not None:
            line = continuation + line
            continuation = None
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2:
            continuation = line[:-1] + " "
            continue
        stripped = line.strip(" \t\n\r")
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("["):
            section = stripped[1:-1] if stripped.endswith("]") else "<bad header>"
            items.append((section, "<section>", ""))
            continue
        key, equals, value = stripped.partition("=")
        if not equals:
            items.append((section, "<junk>", stripped))
            continue
        items.append((section, key.strip(" \t\n\r"), value.strip(" \t\n\r")))
    if continuation is not None:
        items.append((section, "<junk>", continuation))
    return items


_UNESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "r": "\r", " ": " ", ";": ";"}


def systemd_words(value: str) -> list[str]:
    """Words as ``extract_first_word(EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE)`` splits a value."""
    words: list[str] = []
    i, n = 0, len(value)
    while True:
        while i < n and value[i] in " \t\n\r":
            i += 1
        if i >= n:
            return words
        word: list[str] = []
        quote = ""
        while i < n:
            char = value[i]
            if char == "\\":
                i += 1
                following = value[i] if i < n else ""
                word.append(_UNESCAPES.get(following, "\\" + following))
            elif quote:
                if char == quote:
                    quote = ""
                else:
                    word.append(char)
            elif char in " \t\n\r":
                break
            elif char in "\"'":
                quote = char
            else:
                word.append(char)
            i += 1
        if quote:
            word.append("<unterminated quote>")
        words.append("".join(word))


def resolve(word: str, *, dollars: bool = False) -> str:
    """Specifiers resolved (``%%`` is ``%``; any other is marked, never what was meant) and, on
    command lines, ``$$`` (``$NAME`` is marked: an expansion, not the text)."""
    out: list[str] = []
    i = 0
    while i < len(word):
        char = word[i]
        following = word[i + 1] if i + 1 < len(word) else ""
        if char == "%":
            out.append("%" if following == "%" else f"<specifier %{following}>")
            i += 2
        elif dollars and char == "$":
            out.append("$" if following == "$" else "<expansion>")
            i += 2 if following == "$" else 1
        else:
            out.append(char)
            i += 1
    return "".join(out)


#: Prefixes systemd reads off a command line's program (``+``: full privileges), even quoted,
#: and off each entry of a path list (``-``: ignore a missing path, ``+``: below RootDirectory).
EXEC_PREFIXES = "-@:+!|"
PATH_PREFIXES = "-+"


def _prefixed(word: str, prefixes: str) -> str:
    """``word`` with any prefix systemd would take as one marked, so it never reads as text."""
    if word[:1] and word[0] in prefixes:
        return f"<prefix {word[0]}>{_prefixed(word[1:], prefixes)}"
    return word


def unit_values(items: list[Item], key: str, kind: str) -> list[Any]:
    """Every value of ``key`` as systemd reads it: ``raw`` (the string), ``words`` (a list),
    ``paths`` (a path list), ``exec`` (a command line's words, prefixes marked)."""
    found: list[Any] = []
    for _section, item_key, value in items:
        if item_key != key:
            continue
        if kind == "raw":
            found.append(resolve(value))
            continue
        words = [resolve(w, dollars=kind == "exec") for w in systemd_words(value)]
        if kind == "exec" and words:
            words[0] = _prefixed(words[0], EXEC_PREFIXES)
        if kind == "paths":
            words = [_prefixed(w, PATH_PREFIXES) for w in words]
        found.append(words)
    return found


# --------------------------------------------------------------------------- a presets parser


def parse_presets(text: str) -> dict[str, dict[str, str]]:
    """A llama-server presets file as the pinned parser reads it (common/preset.cpp's grammar):
    lines end at ``\r\n``, ``\n`` or ``\r``; ``[name]`` (spaces after ``[`` skipped, the
    name all up to ``]``); ``key = value``, the value running to a ``;``/``#`` comment or the
    line's end, spaces around it dropped; ``;``/``#`` comment lines and blank lines. A line of
    any other shape fails the whole file (ValueError), as it does llama-server's start."""
    sections: dict[str, dict[str, str]] = {"": {}}
    current = ""
    for line in re.split(r"\r\n|\n|\r", text):
        if re.fullmatch(r"[ \t]*([;#].*)?", line, re.DOTALL):
            continue
        header = re.fullmatch(r"\[[ \t]*([^\]]+)\][ \t]*([;#].*)?", line, re.DOTALL)
        if header:
            current = header.group(1)
            sections[current] = {}
            continue
        pair = re.fullmatch(
            r"([A-Za-z_][A-Za-z0-9_.-]*)[ \t]*=[ \t]*((?:(?![ \t]*(?:[;#]|$)).)*)[ \t]*([;#].*)?",
            line, re.DOTALL,
        )
        if not pair:
            raise ValueError(f"llama-server cannot parse {line!r}")
        sections[current][pair.group(1)] = pair.group(2)
    return sections


# --------------------------------------------------------------------------- the templates


def _presets_context() -> dict[str, Any]:
    from rigctl.deploys.llamacpp_router import Preset

    return {
        "unit": "rigctl-llama-server",
        "plan_summary": "2 models, swap, at most 1 loaded at once",
        "presets": [
            Preset("chat", "Llama 3.1 8B Q4_K_M: loaded at start",
                   (("m", "/var/lib/rigctl/models/a.gguf"), ("c", "8192"), ("fit", "off"),
                    ("load-on-startup", "true"))),
            Preset("coder", "Qwen2.5 Coder 7B Q4_K_M: on demand",
                   (("m", "/var/lib/rigctl/models/b c.gguf"), ("ctk", "q8_0"))),
        ],
    }


def _presets_expectations(context: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        "": {"version": "1"},
        **{preset.alias: dict(preset.options) for preset in context["presets"]},
    }




def _unit_context() -> dict[str, Any]:
    return {
        "unit": "rigctl-llama-server",
        "model_name": "Llama 3.1 8B Instruct Q4_K_M",
        "build_name": "b1-cuda-abc",
        "plan_summary": "llamacpp, 1 user(s), 8192 tokens each",
        "user": "llama",
        "group": "llama",
        "supplementary_groups": ["render", "video"],
        "argv": ["/opt/rigctl/llamacpp/current/bin/llama-server", "-m", "/m/a.gguf", "--alias", "a b"],
        "environment": {"GGML_CUDA": "1", "OTHER": "x y"},
        "state_directory": "rigctl-llama-server",
        "read_only_paths": ["/var/lib/rigctl/models", "/opt/rigctl/llamacpp"],
        "gpu_devices": ["/dev/nvidia0", "char-nvidia*"],
        # the router's key (several models); "-": systemd-analyze need not find the file
        "environment_files": ["-/etc/rigctl/rigctl-llama-server/api-key.env"],
    }


def _vllm_context() -> dict[str, Any]:
    context = _unit_context()
    context.pop("build_name")
    context.update(
        unit="rigctl-vllm",
        venv_name="vllm-0.32.0-cuda-abc",
        argv=["/opt/rigctl/vllm/v/bin/python", "-m", "vllm.entrypoints.openai.api_server"],
        environment_files=["/etc/rigctl/rigctl-vllm/api-key.env", "-/etc/rigctl/rigctl-vllm/hf.env"],
        state_directory="rigctl-vllm",
    )
    return context


def _unit_expectations(context: dict[str, Any], description: str) -> list[tuple[str, str, Any]]:
    """(key, kind, expected values) every unit template must read back."""
    state = context["state_directory"]
    return [
        # a trailing backslash is dropped from free text (it would continue the line)
        ("Description", "raw", [description.format(str(context["model_name"]).rstrip("\\"))]),
        ("User", "raw", [context["user"]]),
        ("Group", "raw", [context["group"]]),
        ("SupplementaryGroups", "words", [[g] for g in context["supplementary_groups"]]),
        ("ExecStart", "exec", [context["argv"]]),
        ("Environment", "words", [[f"{k}={v}"] for k, v in context["environment"].items()]),
        ("StateDirectory", "raw", [state]),
        ("WorkingDirectory", "raw", [f"/var/lib/{state}"]),
        ("ReadOnlyPaths", "paths", [context["read_only_paths"]]),
        ("DeviceAllow", "words", [[d, "rw"] for d in context["gpu_devices"]]),
    ]


def _vllm_expectations(context: dict[str, Any]) -> list[tuple[str, str, Any]]:
    return [
        *_unit_expectations(context, "vLLM server ({}), managed by rigctl"),
        ("EnvironmentFile", "raw", list(context["environment_files"])),
    ]


TEMPLATES: dict[str, tuple[Callable[[], dict[str, Any]], Callable[[dict[str, Any]], Any]]] = {
    "llama-server.service.j2": (
        _unit_context,
        lambda c: [
            *_unit_expectations(c, "llama.cpp server ({}), managed by rigctl"),
            ("EnvironmentFile", "raw", list(c["environment_files"])),
        ],
    ),
    "llama-server-models.ini.j2": (_presets_context, _presets_expectations),
    "vllm.service.j2": (_vllm_context, _vllm_expectations),
    "ollama-dropin.conf.j2": (
        lambda: {
            "model_name": "llama 3.1 8b Q4_K_M",
            "environment": {"OLLAMA_HOST": "127.0.0.1:11434", "OLLAMA_MODELS": "/var/lib/m"},
            "writable_paths": ["/var/lib/rigctl/ollama/models", "/usr/share/ollama"],
            "gpu_devices": ["/dev/nvidia0", "char-nvidia*"],
        },
        lambda c: [
            ("Environment", "words", [[f"{k}={v}"] for k, v in c["environment"].items()]),
            ("ReadWritePaths", "paths", [c["writable_paths"]]),
            ("DeviceAllow", "words", [[d, "rw"] for d in c["gpu_devices"]]),
        ],
    ),
    "ollama.service.j2": (
        lambda: {"install_dir": "/usr/local", "user": "ollama"},
        lambda c: [
            ("ExecStart", "exec", [[f"{c['install_dir']}/bin/ollama", "serve"]]),
            ("User", "raw", [c["user"]]),
            ("Group", "raw", [c["user"]]),
        ],
    ),
    "llama-server.plist.j2": (
        lambda: {
            "label": "org.rigctl.llama-server",
            "model_name": "Llama 3.1 8B Q4_K_M",
            "build_name": "b1-metal-abc",
            "user": "llama",
            "group": "llama",
            "argv": ["/opt/rigctl/llamacpp/current/bin/llama-server", "-m", "/m/a b.gguf"],
            "environment": {"GGML_METAL": "1", "B": "<&>"},
            "working_directory": "/var/lib/rigctl-llama-server",
            "log_path": "/var/log/rigctl/rigctl-llama-server.log",
        },
        lambda c: {
            "Label": c["label"],
            "ProgramArguments": c["argv"],
            "UserName": c["user"],
            "GroupName": c["group"],
            "EnvironmentVariables": c["environment"],
            "WorkingDirectory": c["working_directory"],
            "StandardOutPath": c["log_path"],
            "StandardErrorPath": c["log_path"],
        },
    ),
}


def test_every_template_is_covered_and_every_value_filtered() -> None:
    """Each shipped template is in :data:`TEMPLATES`, and each ``{{ }}`` ends in a rendering
    filter (``finalize`` refuses anything else at render time as well)."""
    shipped = sorted(p.name for p in TEMPLATES_DIR.glob("*.j2"))
    assert shipped == sorted(TEMPLATES)
    for path in TEMPLATES_DIR.glob("*.j2"):
        for expression in re.findall(r"{{(.*?)}}", path.read_text()):
            last = expression.rsplit("|", 1)
            assert len(last) == 2, f"{path.name}: {{{{{expression}}}}} has no filter"
            name = last[1].strip().split("(", 1)[0]
            assert name in FILTERS, f"{path.name}: {{{{{expression}}}}} ends in {name}"


def test_a_value_printed_without_a_filter_is_refused() -> None:
    from rigctl.templates import _environment

    with pytest.raises(BadInput, match="without a rendering filter"):
        _environment.from_string("ExecStart={{ x }}").render(x="/bin/true")


@functools.cache
def _harmless(name: str) -> str:
    make, _expect = TEMPLATES[name]
    return render(name, **make())


def _structure(items: list[Item]) -> list[tuple[str, str]]:
    return [(section, key) for section, key, _value in items]


def check_rendering(
    name: str, context: dict[str, Any], harmless_context: dict[str, Any] | None = None
) -> str | None:
    """Render ``name`` from ``context``; None when refused, else the text, after asserting it
    parses to the harmless rendering's structure (``harmless_context``: lists of the same
    lengths, default the template's own) with ``context``'s values read back."""
    try:
        text = render(name, **context)
    except BadInput:
        return None
    _make, expect = TEMPLATES[name]
    harmless = _harmless(name) if harmless_context is None else render(name, **harmless_context)
    if name.endswith(".ini.j2"):
        assert parse_presets(text) == expect(context)
        return text
    if name.endswith(".plist.j2"):
        parsed = plistlib.loads(text.encode())
        reference = plistlib.loads(harmless.encode())
        assert sorted(parsed) == sorted(reference)
        assert len(parsed["ProgramArguments"]) == len(context["argv"])
        assert parsed == {**reference, **expect(context)}
        return text
    for split in (systemd_lines, python_lines):
        for old in (False, True):
            items = parse_unit(text, split, old)
            reference = parse_unit(harmless, split, old)
            assert _structure(items) == _structure(reference), (split.__name__, old)
            for key, kind, expected in expect(context):
                assert unit_values(items, key, kind) == expected, (split.__name__, old, key)
    return text


# --------------------------------------------------------------------------- hostile values

NASTY = list("\n\r\x00\x0b\x0c\x1b\x7f\x85\u2028\u2029\ufeff\u202e\t []%$\"'\\;#=-+/:@&<>`*")
ATTACKS = [
    INJECTION,
    "x\r[Service]\rExecStartPre=+/bin/sh -c id",
    "x\u2028ExecStartPre=+/bin/sh -c id",
    "x\x85ExecStartPre=/bin/id",
    "x\x00ExecStartPre=/bin/id",
    "trailing\\",
    "/var/lib/x /etc",
    "/var/lib/x\n/etc",
    "/var/lib/../../etc",
    "+/bin/sh",
    "-/bin/sh",
    "%h/%u",
    "$HOME",
    "[/]x",
    "\x1b[31mred",
    "a--b",
    '"quoted"',
    "it's",
    "<&>",
    "",
    " ",
]

hostile_text = st.one_of(
    st.sampled_from(ATTACKS),
    st.text(max_size=40),
    st.text(alphabet=st.sampled_from([*NASTY, "a", "b", "/"]), max_size=24),
    st.text(alphabet=st.sampled_from([*NASTY, "a", "/"]), max_size=16).map(lambda s: "/" + s),
)


def _fields(context: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Every rendered field of a context: names, list elements, environment names and values."""
    fields: list[tuple[Any, ...]] = []
    for key, value in context.items():
        if isinstance(value, dict):
            fields += [(key, "name", i) for i in range(len(value))]
            fields += [(key, "value", i) for i in range(len(value))]
        elif isinstance(value, list):
            fields += [(key, i) for i in range(len(value))]
        else:
            fields.append((key,))
    return fields


def _replaced(context: dict[str, Any], field: tuple[Any, ...], text: str) -> dict[str, Any]:
    """``context`` with one field set to ``text`` (an environment name that would collide with
    another is given a suffix, so the environment keeps its size)."""
    changed = deepcopy(context)
    key = field[0]
    if len(field) == 1:
        changed[key] = text
    elif len(field) == 2:
        changed[key][field[1]] = text
    else:
        items = list(changed[key].items())
        name, value = items[field[2]]
        if field[1] == "name":
            others = {n for n, _v in items} - {name}
            while text in others:
                text += "_"
            items[field[2]] = (text, value)
        else:
            items[field[2]] = (name, text)
        changed[key] = dict(items)
    return changed


@pytest.mark.parametrize("name", sorted(TEMPLATES))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_hostile_values_never_change_the_structure(name: str, data: st.DataObject) -> None:
    make, _expect = TEMPLATES[name]
    context = make()
    fields = _fields(context)
    chosen = data.draw(st.lists(st.sampled_from(fields), min_size=1, max_size=3, unique=True))
    for field in chosen:
        context = _replaced(context, field, data.draw(hostile_text, label=str(field)))
    check_rendering(name, context)


@pytest.mark.parametrize("name", sorted(TEMPLATES))
@pytest.mark.parametrize("attack", ATTACKS)
def test_known_attacks_in_every_field(name: str, attack: str) -> None:
    """Each attack in each field alone: refused, or read back as exactly itself."""
    make, _expect = TEMPLATES[name]
    for field in _fields(make()):
        check_rendering(name, _replaced(make(), field, attack))


def test_odd_but_harmless_values_are_rendered_not_refused() -> None:
    """The filters refuse what cannot be written safely, not everything unusual."""
    context = {
        **_unit_context(),
        "model_name": "[Service] 100% $HOME \"q\" it's a\\b",
        "argv": ["/opt/x%/bin/llama-server", "--alias", "[/]x; $HOME 'q' \"d\" \\", ";", ""],
        "environment": {"A": 'x "y" \\ %h $z', "B": "[Install]"},
        "read_only_paths": ["/srv/100%/models", "/srv/[models]"],
    }
    text = check_rendering("llama-server.service.j2", context)
    assert text is not None and "ExecStart=/opt/x%%/bin/llama-server " in text


def test_systemd_analyze_verify_accepts_hostile_renderings(tmp_path: Path) -> None:
    """What systemd itself reads: no injected directive, no complaint about the file."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not on PATH")
    samples = [
        {"model_name": INJECTION.replace("\n", " ")},
        {"model_name": "[Service] ExecStartPre=+/bin/sh -c id"},
        {"model_name": "100% %h $HOME", "plan_summary": "a; b #c"},
        {"argv": ["/bin/true", "--alias", "x\\ny", ";", "$HOME", "%h", '"q"', "a b"]},
        {"read_only_paths": ["/srv/100%", "/srv/[x]"], "environment": {"A": 'x "y" %h'}},
    ]
    for number, changes in enumerate(samples):
        harmless = {**_unit_context(), "gpu_devices": [], "supplementary_groups": []}
        harmless["argv"] = ["/bin/true", *harmless["argv"][1:]]
        context = {**harmless, **changes}
        context["argv"] = ["/bin/true", *context["argv"][1:]]
        harmless["argv"] = ["/bin/true"] * len(context["argv"])
        harmless["environment"] = {f"V{i}": "1" for i in range(len(context["environment"]))}
        text = check_rendering("llama-server.service.j2", context, harmless)
        assert text is not None, changes
        unit = tmp_path / f"rigctl-hostile{number}.service"
        unit.write_text(text)
        result = subprocess.run(
            ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True
        )
        problems = [line for line in result.stderr.splitlines() if unit.name in line]
        assert result.returncode == 0 and not problems, result.stderr
        assert not [item for item in parse_unit(text) if item[1] == "ExecStartPre"]


def _preset_fields(context: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The presets file's own fields, inside its sections: alias, description, each option's
    name and value (the generic fields see ``presets`` only whole)."""
    fields: list[tuple[Any, ...]] = [("plan_summary",), ("unit",)]
    for i, preset in enumerate(context["presets"]):
        fields += [("alias", i), ("description", i)]
        fields += [(part, i, j) for j in range(len(preset.options)) for part in ("key", "value")]
    return fields


def _preset_replaced(context: dict[str, Any], field: tuple[Any, ...], text: str) -> dict[str, Any]:
    import dataclasses

    changed = deepcopy(context)
    if len(field) == 1:
        changed[field[0]] = text
        return changed
    preset = changed["presets"][field[1]]
    if field[0] in ("alias", "description"):
        changed["presets"][field[1]] = dataclasses.replace(preset, **{field[0]: text})
        return changed
    options = list(preset.options)
    key, value = options[field[2]]
    if field[0] == "key":
        while text in {k for k, _v in options} - {key}:  # keep the section's size
            text += "_"
    options[field[2]] = (text, value) if field[0] == "key" else (key, text)
    changed["presets"][field[1]] = dataclasses.replace(preset, options=tuple(options))
    return changed


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_hostile_values_in_a_preset_are_refused_or_read_back_by_llama_server(
    data: st.DataObject,
) -> None:
    """An alias, a description, an option's name or value from a plan: the presets file either
    refuses it or llama-server's grammar reads back exactly the sections and options meant
    (no option added, none cut short, no section split)."""
    context = _presets_context()
    fields = _preset_fields(context)
    chosen = data.draw(st.lists(st.sampled_from(fields), min_size=1, max_size=3, unique=True))
    for field in chosen:
        context = _preset_replaced(context, field, data.draw(hostile_text, label=str(field)))
    if len({p.alias for p in context["presets"]}) < len(context["presets"]):
        return  # two sections of one name: the host-data schema refuses that earlier
    check_rendering("llama-server-models.ini.j2", context)


@pytest.mark.parametrize("attack", [*ATTACKS, "a;b", "a #b", "x]y", "x\n[evil]", "n-gpu-layers = 0"])
def test_known_attacks_in_every_preset_field(attack: str) -> None:
    for field in _preset_fields(_presets_context()):
        check_rendering("llama-server-models.ini.j2",
                        _preset_replaced(_presets_context(), field, attack))


# --------------------------------------------------------------------------- other files


def parse_env_file(text: str) -> list[tuple[str, str]]:
    """``NAME=value`` lines as systemd's env-file parser reads them (single quotes literal)."""
    entries = []
    for line in systemd_lines(text):
        if not line.strip() or line.lstrip()[0] in "#;":
            continue
        name, _eq, value = line.partition("=")
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        entries.append((name.strip(), value))
    return entries


@settings(max_examples=200, deadline=None)
@given(token=hostile_text)
def test_env_file_reads_back_the_one_value(token: str) -> None:
    try:
        text = vllm_deploy.token_file_text(token)
    except BadInput:
        return
    assert parse_env_file(text) == [("HF_TOKEN", token)]
    assert python_lines(text) == [f"HF_TOKEN='{token}'"]


def test_env_file_is_safe_to_source_as_root(tmp_path: Path) -> None:
    """The Hub download sources the token file with ``sh``: nothing in it may run."""
    marker = tmp_path / "pwned"
    with pytest.raises(BadInput):
        vllm_deploy.token_file_text(f"x'; touch {marker}; '")
    with pytest.raises(BadInput):
        vllm_deploy.token_file_text(f"x\ntouch {marker}")
    token = f"hf_abc$(touch {marker})`touch {marker}`;touch {marker}"
    path = tmp_path / "hf-token.env"
    path.write_text(vllm_deploy.token_file_text(token))
    shown = subprocess.run(
        ["sh", "-c", f"set -a; . {path}; set +a; printf %s \"$HF_TOKEN\""],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    ).stdout
    assert shown == token and not marker.exists()


@settings(max_examples=200, deadline=None)
@given(path=hostile_text)
def test_modelfile_has_exactly_its_two_instructions(path: str) -> None:
    try:
        text = ollama_modelfile(path, {"num_ctx": 8192})
    except BadInput:
        return
    lines = python_lines(text)
    assert systemd_lines(text) == [*lines, ""]
    assert lines == [f"FROM {path}", "PARAMETER num_ctx 8192"]


# --------------------------------------------------------------------------- from a real GGUF


def _write_gguf(path: Path, name: str, arch: str = "llama") -> Path:
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(name)
    writer.add_block_count(2)
    writer.add_context_length(4096)
    writer.add_embedding_length(32)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    writer.add_tensor("token_embd.weight", np.zeros((64, 32), dtype=np.float16))
    writer.add_tensor("blk.0.attn_q.weight", np.zeros((32, 32), dtype=np.float32))
    writer.add_tensor("blk.1.attn_q.weight", np.zeros((32, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_model_name_cannot_add_a_directive(tmp_path: Path) -> None:
    """The reported attack: a GGUF whose general.name holds a newline and ``[Service]``."""
    facts = read_local_header(_write_gguf(tmp_path / "evil.gguf", INJECTION))
    assert "\n" not in facts.name and facts.name == "Evil [Service] ExecStartPre=+/bin/sh -c id"
    hardware = CASES["cpu"]
    plan = make_plan(hardware, facts)
    spec = host_spec("rig", {"model": str(tmp_path / "evil.gguf")})
    build = llamacpp_deploy.build_spec_for(hardware, plan, "0c1e57098", [])
    unit = llamacpp_deploy.render_unit(spec, plan, build)
    items = parse_unit(unit)
    assert not [item for item in items if item[1] == "ExecStartPre"]
    reference = llamacpp_deploy.render_unit(
        spec, make_plan(hardware, get_catalog_model("llama-3.1-8b-instruct:q4_k_m")), build
    )
    assert _structure(items) == _structure(parse_unit(reference))
    # The model name itself is refused by no renderer: the unit is written, harmlessly.
    assert "Description=llama.cpp server (Evil [Service] ExecStartPre=+/bin/sh" in unit


def test_gguf_metadata_is_cleaned(tmp_path: Path) -> None:
    assert clean_text("a\n\tb\x1b[31m\u2028c\u202e  d") == "a b [31m c d"
    assert clean_text("x" * 200) == "x" * 80
    facts = read_local_header(_write_gguf(tmp_path / "blank-Q4.gguf", "\x1b\n\u200b"))
    assert facts.name == "blank-Q4"  # nothing printable left: the file's stem
    with pytest.raises(BadInput, match="general.architecture"):
        read_local_header(_write_gguf(tmp_path / "arch.gguf", "x", arch="llama\n[Service]"))


@pytest.mark.parametrize("name", ["[/]x", "\x1b[31mred\x1b[0m\x07\x08\r", "[bold]x[/bold] \\"])
def test_plan_prints_hostile_model_names_as_text(tmp_path: Path, name: str) -> None:
    from rigctl.cli.main import cli

    model = _write_gguf(tmp_path / "m-Q4_K_M.gguf", name)
    hardware = tmp_path / "cpu.json"
    hardware.write_text(json.dumps({"hosts": {"box": _cpu_host()}}))
    result = CliRunner().invoke(cli, ["plan", "--hardware", str(hardware), "--model", str(model)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 0, result.output
    for control in "\x1b\x07\x08\r":
        assert control not in result.output
    assert clean_text(name) in result.output


def _cpu_host() -> dict[str, Any]:
    return {
        "accelerator": "cpu",
        "gpus": [],
        "memory_bytes": 64 * 1024**3,
        "cpu": {"model": "Ryzen", "cores": 16, "threads": 32, "flags": ["avx2"]},
        "os": {
            "system": "Linux", "distro": "ubuntu", "version": "24.04", "arch": "x86_64",
            "init": "systemd",
        },
        "disk_free_bytes": 500 * 1024**3,
    }


# --------------------------------------------------------------------------- host data


def _cpu_plan(runtime: str = "auto") -> Any:
    return make_plan(CASES["cpu"], get_catalog_model("llama-3.1-8b-instruct:q4_k_m"), runtime=runtime)


@pytest.mark.parametrize("bad", ["/var/lib/x /etc", "/srv/x\nExecStartPre=+/bin/sh -c id", "srv", "/a/../etc"])
def test_host_data_paths_are_refused_not_rendered(bad: str) -> None:
    spec = host_spec("rig", {"model": "llama-3.1-8b-instruct:q4_k_m", "port": 11434})
    plan = _cpu_plan()
    build = llamacpp_deploy.build_spec_for(CASES["cpu"], plan, "0c1e57098", [])
    with pytest.raises(BadInput, match="field (argv|read_only_paths)"):
        llamacpp_deploy.render_unit(spec, plan, build, prefix=bad)
    with pytest.raises(BadInput, match="field (environment|writable_paths)"):
        ollama_deploy.render_dropin(spec, _cpu_plan("ollama"), "cpu", models_dir=bad)
    with pytest.raises(BadInput, match="field ollama_install_dir"):
        render("ollama.service.j2", install_dir=bad, user="ollama")


def test_errors_and_json_are_one_line_redacted_and_control_free(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from rigctl.cli.render import emit_json, error_line, esc, safe_text

    error_line("bad \x1b[2J\nthing at https://user:pw@example.com/x?token=abc")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and "pw@" not in err and "abc" not in err
    assert "\\x1b[2J\\nthing" in err
    emit_json({"url": "https://user:pw@example.com/", "name": "\x1b[31m"})
    out = capsys.readouterr().out
    assert "pw@" not in out and "\x1b" not in out and json.loads(out)["name"] == "\x1b[31m"
    assert safe_text("a\u202eb\u2028") == "a\\u202eb\\u2028"
    assert esc("[/]x") == "\\[/]x"


def test_tables_and_lines_print_data_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    from rigctl.cli.render import Markup, esc, line, status_style, table

    table("[red]t", ["[/]c"], [["[/]x\x1b[31m", status_style("ok"), status_style("[/]weird")]])
    line(Markup(f"[bold]{esc('[/]n')}[/] done"))
    out = capsys.readouterr().out
    assert "[/]x\\x1b[31m" in out and "[/]weird" in out and "[red]t" in out and "[/]n done" in out
    assert "\x1b" not in out
