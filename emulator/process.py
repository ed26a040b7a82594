"""Run the emulator in a child process, for benchmarks.

An in-process `EmulatorServer` shares the GIL with the client under test: with several client
threads parsing 1000-item pages, the emulator's responses slow down and the emulator becomes part
of what is measured. `EmulatorProcess` serves the same site from a separate interpreter and exposes
the same knobs through the HTTP control API.

    with EmulatorProcess(small_site(workbooks=5000), latency_ms=50) as emu:
        emu.url; emu.control.inject_429(1); emu.control.get_request_log()
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any, Self

from . import model as m
from .faults import LogEntry

_ROOT = Path(__file__).resolve().parents[1]


class RemoteControl:
    """`Control`'s methods, sent to a running emulator's `/_emulator/` API."""

    def __init__(self, url: str) -> None:
        self.base = url.rstrip("/") + "/_emulator/"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            return json.loads(reply.read() or b"null")

    def set_latency(self, ms: float) -> None:
        self._call("PUT", "latency", {"ms": ms})

    @property
    def latency_ms(self) -> float:
        return float(self._call("GET", "latency")["ms"])

    def inject_429(
        self,
        count: int = 1,
        retry_after: int | str | None = None,
        body_hint: bool = False,
        html: bool = False,
    ) -> None:
        self._call(
            "POST",
            "faults/429",
            {"count": count, "retry_after": retry_after, "body_hint": body_hint, "html": html},
        )

    def rate_429(self, every: int, retry_after: int | str | None = None) -> None:
        self._call("POST", "faults/429/rate", {"every": every, "retry_after": retry_after})

    def inject_5xx(self, count: int = 1, status: int = 503) -> None:
        self._call("POST", "faults/5xx", {"count": count, "status": status})

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def expire_sessions(self) -> int:
        return int(self._call("POST", "sessions/expire")["expired"])

    def set_job_speed(self, speed: float) -> None:
        self._call("PUT", "job-speed", {"speed": speed})

    @property
    def job_speed(self) -> float:
        return float(self._call("GET", "job-speed")["speed"])

    def get_request_log(self) -> list[LogEntry]:
        return [LogEntry(**entry) for entry in self._call("GET", "requests")]

    def reset_request_log(self) -> None:
        self._call("DELETE", "requests")

    def snapshot(self) -> dict[str, Any]:
        return self._call("GET", "state")


class EmulatorProcess:
    """Serve `site` from a child Python process; `.url`, `.control` and `.request_log` as usual."""

    def __init__(
        self,
        site: m.SiteState,
        *,
        host: str = "127.0.0.1",
        latency_ms: float = 0,
        api_version: str = "3.24",
        session_idle_seconds: float = 14400,
        job_speed: float = 1.0,
    ) -> None:
        self.site = site
        self.args = [
            "--host",
            host,
            "--port",
            "0",
            "--latency-ms",
            str(latency_ms),
            "--api-version",
            api_version,
            "--session-idle-seconds",
            str(session_idle_seconds),
            "--job-speed",
            str(job_speed),
        ]
        self.url = ""
        self.control: RemoteControl | None = None
        self._process: subprocess.Popen[str] | None = None
        self._state_file: str | None = None

    @property
    def request_log(self) -> list[LogEntry]:
        assert self.control is not None
        return self.control.get_request_log()

    def start(self) -> EmulatorProcess:
        handle, self._state_file = tempfile.mkstemp(suffix=".pickle", prefix="emulator-site-")
        with os.fdopen(handle, "wb") as out:
            pickle.dump(self.site, out)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "emulator", "--state-file", self._state_file, *self.args],
            cwd=_ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if " at http" not in line:
            self.stop()
            raise RuntimeError("the emulator process did not start")
        self.url = line.split(" at ", 1)[1].split()[0]
        self.control = RemoteControl(self.url)
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None
        if self._state_file is not None:
            Path(self._state_file).unlink(missing_ok=True)
            self._state_file = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
