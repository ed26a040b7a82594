"""The signing key: where it comes from, how it is protected, and what a seal binds."""

from __future__ import annotations

import os
import stat

import pytest

from server.governance.keys import (
    ENV_KEY,
    SigningKeyError,
    check_seal,
    load_signing_key,
    seal,
)


def test_first_start_creates_a_0600_key_file_outside_the_store(tmp_path):
    key_file = tmp_path / "keys" / "signing.key"
    key = load_signing_key(tmp_path / "store" / "audit.sqlite", key_file=key_file, env={})
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = load_signing_key(tmp_path / "store" / "audit.sqlite", key_file=key_file, env={})
    assert again.material == key.material and again.key_id == key.key_id
    assert key.material.hex() not in repr(key)


def test_key_file_inside_the_store_directory_is_refused(tmp_path):
    with pytest.raises(SigningKeyError, match="store's directory"):
        load_signing_key(tmp_path / "audit.sqlite", key_file=tmp_path / "signing.key", env={})


def test_world_readable_key_file_is_refused(tmp_path):
    key_file = tmp_path / "k" / "signing.key"
    load_signing_key(tmp_path / "s" / "audit.sqlite", key_file=key_file, env={})
    os.chmod(key_file, 0o644)
    with pytest.raises(SigningKeyError, match="chmod 600"):
        load_signing_key(tmp_path / "s" / "audit.sqlite", key_file=key_file, env={})


def test_environment_key_wins_and_short_keys_are_refused(tmp_path):
    key = load_signing_key(tmp_path / "a.sqlite", key_file=tmp_path / "none", env={ENV_KEY: "ab" * 32})
    assert key.source == "env" and key.material == bytes.fromhex("ab" * 32)
    assert not (tmp_path / "none").exists()
    with pytest.raises(SigningKeyError, match="at least 32 bytes"):
        load_signing_key(tmp_path / "a.sqlite", env={ENV_KEY: "abcd"})


def test_missing_key_without_create_is_refused(tmp_path):
    with pytest.raises(SigningKeyError, match="no signing key"):
        load_signing_key(tmp_path / "s" / "a.sqlite", key_file=tmp_path / "k" / "x", env={}, create=False)


def test_a_seal_binds_key_purpose_and_payload(tmp_path):
    k1 = load_signing_key(None, env={ENV_KEY: "01" * 32})
    k2 = load_signing_key(None, env={ENV_KEY: "02" * 32})
    tag = seal(k1, "approval.request", "payload")
    assert check_seal(k1, "approval.request", "payload", tag)
    assert not check_seal(k2, "approval.request", "payload", tag)
    assert not check_seal(k1, "approval.decision", "payload", tag)
    assert not check_seal(k1, "approval.request", "payload!", tag)
    assert not check_seal(k1, "approval.request", "payload", None)
    assert k1.key_id != k2.key_id
