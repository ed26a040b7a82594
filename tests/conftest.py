"""Shared fixtures: emulated sites, emulators that must answer XSD-valid XML, signed-in TSC servers.

Every test that starts an emulator goes through `start_emulator` (directly or via these fixtures),
which fails the test at teardown if any response did not validate against the patched 3.29 XSD.
Other test directories can call `start_emulator(site=None, **knobs)` themselves:

    from emulator.testing import start_emulator
    with start_emulator(latency_ms=50, job_speed=100) as emu: ...
"""

from __future__ import annotations

import contextlib
import copy
import functools

import pytest
import tableauserverclient as TSC

from emulator import model as m
from emulator.testing import (  # noqa: F401  (re-exported for other test directories)
    ADMIN_PAT,
    CREATOR_PAT,
    DEMO_PAT,
    EXPLORER_PAT,
    add_admin_pat,
    signed_in_server,
    small_site,
    start_emulator,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def _signing_key_directory(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("signing-key")


@pytest.fixture(autouse=True)
def signing_key_file(_signing_key_directory, monkeypatch: pytest.MonkeyPatch):
    """Every test uses the session's signing key file, outside any test's store directory (a sibling of
    `tmp_path`), so no test ever reads or writes the real ~/.config/tableau-steward/signing.key. One key
    for the session, since module-scoped fixtures share a store across tests; a test wanting another
    key sets the variables itself.

    Subprocesses inherit it through the environment; tests that build a subprocess environment by hand
    add `signing_key_env()`. XDG_CONFIG_HOME points at a temporary directory too, as a second guard.
    """
    directory = _signing_key_directory
    path = directory / "signing.key"
    monkeypatch.delenv("STEWARD_SIGNING_KEY", raising=False)
    monkeypatch.setenv("STEWARD_SIGNING_KEY_FILE", str(path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(directory / "config"))
    return path


def signing_key_env() -> dict[str, str]:
    """The signing-key variables a hand-built subprocess environment must carry (see `signing_key_file`)."""
    import os

    names = ("STEWARD_SIGNING_KEY_FILE", "XDG_CONFIG_HOME")
    return {name: os.environ[name] for name in names if name in os.environ}


@functools.lru_cache(maxsize=4)
def _generated(size: str, seed: int) -> m.SiteState:
    from emulator.generator import build_site

    return build_site(size=size, seed=seed, content_url="demo")


def demo_site_copy(size: str = "demo", seed: int = 7) -> m.SiteState:
    """A fresh copy of the generated site (generated once per process), with the test admin PAT."""
    site = copy.deepcopy(_generated(size, seed))
    add_admin_pat(site)
    return site


@pytest.fixture
def demo_site() -> m.SiteState:
    """The generated demo site, with the site administrator's PAT `DEMO_PAT` added."""
    return demo_site_copy()


@pytest.fixture
def emulator(demo_site):
    """The demo site served with XSD validation; fails at teardown on any invalid response."""
    with start_emulator(demo_site, job_speed=100) as emu:
        yield emu


@pytest.fixture
def tsc_server(emulator):
    """A TSC 0.42 server signed in to `emulator` as the site administrator (PAT `DEMO_PAT`)."""
    server = signed_in_server(emulator, DEMO_PAT)
    yield server
    if server.is_signed_in():
        # The test may have expired or replaced the session on purpose.
        with contextlib.suppress(TSC.NotSignedInError, TSC.ServerResponseError):
            server.auth.sign_out()


@pytest.fixture
def small_emulator():
    """`small_site()` served with XSD validation and fast jobs."""
    with start_emulator(small_site(), job_speed=100) as emu:
        yield emu


@pytest.fixture
def small_server(small_emulator):
    """A TSC server signed in to `small_emulator` as its site administrator."""
    return signed_in_server(small_emulator, ADMIN_PAT)


@pytest.fixture(scope="session")
def postgres_cluster():
    """One throwaway PostgreSQL cluster for the session (tests/postgres_cluster.py); a test takes a fresh
    database from it with `postgres_cluster.new_database()`. Fails, never skips, when PostgreSQL cannot run."""
    from tests.postgres_cluster import running_cluster

    with running_cluster() as cluster:
        yield cluster
