"""Secrets never appear in what rigctl prints or writes (rigctl/redact.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rigctl.hostdata import check_host_data
from rigctl.redact import MASK, redact, redact_data, register_secret

SECRET = "s3cr3t-Value_42"


@pytest.mark.parametrize(
    "text",
    [
        f"https://user:{SECRET}@mirror.example/m.gguf",
        f"https://{SECRET}@mirror.example/m.gguf",
        f"https://cdn.example/m.gguf?token={SECRET}&x=1",
        f"https://cdn.example/m.gguf?sig={SECRET}",
        f"https://s3.example/m.gguf?X-Amz-Credential={SECRET}%2F20261201&X-Amz-Signature={SECRET}",
        f"https://storage.example/m.gguf?X-Goog-Signature={SECRET}",
        f"https://h.example/x?access_token={SECRET}",
        f"Authorization: Bearer {SECRET}",
        f"download failed: 403 for https://u:{SECRET}@h/x (token={SECRET})",
    ],
)
def test_credentials_in_urls_and_headers_are_masked(text: str) -> None:
    out = redact(text)
    assert SECRET not in out
    assert MASK in out


def test_hugging_face_tokens_and_registered_secrets_are_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_" + "A1b2" * 8)
    assert "A1b2" not in redact("sent hf_" + "A1b2" * 8 + " to the Hub")
    register_secret("pa55word-of-the-day")
    assert "pa55word" not in redact("ssh: login with pa55word-of-the-day failed")
    # host data secrets are registered when the schema checks them
    check_host_data("h", {"ssh_password": "Zq9-unique-ssh-password"})
    assert "Zq9" not in redact("Authentication failed for Zq9-unique-ssh-password")


def test_documents_are_redacted_in_every_string_keys_kept() -> None:
    doc = {"source": f"https://u:{SECRET}@h/m.gguf", "nested": [{"url": f"h?token={SECRET}"}], "n": 3}
    out = redact_data(doc)
    assert SECRET not in repr(out)
    assert set(out) == {"source", "nested", "n"} and out["n"] == 3


def test_ordinary_text_is_left_alone() -> None:
    for text in ("context=4096 port=8080", "https://huggingface.co/org/repo/resolve/main/x.gguf"):
        assert redact(text) == text


@settings(max_examples=200, deadline=None)
@given(
    secret=st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~", min_size=8, max_size=40),
    param=st.sampled_from(["token", "sig", "signature", "X-Amz-Credential", "X-Amz-Signature", "api_key", "password"]),
)
def test_any_credential_parameter_is_masked(secret: str, param: str) -> None:
    out = redact(f"GET https://h.example/m.gguf?a=1&{param}={secret}&b=2 failed")
    assert f"{param}={secret}" not in out
    assert f"{param}={MASK}" in out
