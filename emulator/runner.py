"""Serve the emulator on a real socket from a background thread.

    with EmulatorServer(site, latency_ms=50) as emu:
        server = TSC.Server(emu.url, use_server_version=True)
        emu.control.inject_429(1, retry_after=5)

Startup binds the socket before returning (port 0 picks a free port), so `.url` is usable at once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import Self

import uvicorn

from . import model as m
from .app import Emulator
from .faults import Control, LogEntry
from .validation import XsdFailure, schema

log = logging.getLogger("emulator")


class EmulatorServer:
    def __init__(
        self,
        site: m.SiteState,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0,
        api_version: str = "3.24",
        session_idle_seconds: float = 14400,
        job_speed: float = 1.0,
        validate_xsd: bool = False,
        check_json: bool = False,
    ) -> None:
        self.app = Emulator(
            site,
            latency_ms=latency_ms,
            api_version=api_version,
            session_idle_seconds=session_idle_seconds,
            job_speed=job_speed,
            validate_xsd=validate_xsd,
            check_json=check_json,
        )
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    # -- public surface -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def state(self) -> m.SiteState:
        return self.app.state

    @property
    def control(self) -> Control:
        return self.app.control

    @property
    def lock(self) -> threading.RLock:
        """Hold this while changing `state` from another thread during a test."""
        return self.app.lock

    @property
    def request_log(self) -> list[LogEntry]:
        return self.app.request_log

    @property
    def xsd_failures(self) -> list[XsdFailure]:
        return self.app.xsd_failures

    @property
    def json_mismatches(self) -> list:
        """GET answers whose JSON did not carry the same data as their XML (with `check_json`)."""
        return self.app.json_mismatches

    @property
    def handler_errors(self) -> list[str]:
        """Unexpected exceptions in handlers (answered as 500); empty unless the emulator has a bug."""
        return self.app.handler_errors

    @property
    def sessions(self) -> int:
        return len(self.app.sessions)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> EmulatorServer:
        if self._thread is not None:
            return self
        if self.app.validate_xsd:
            schema()  # compile once up front so the first request is not slow
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit TCP_NODELAY; without it the separate header and body writes meet
        # the client's delayed ACK and every response takes ~40 ms on loopback.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.host, self.port))
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._socket = sock
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            loop="asyncio",
            http="h11",
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        started = threading.Event()

        failure: list[BaseException] = []

        def serve() -> None:
            try:
                asyncio.run(self._serve(sock, started))
            except BaseException as exc:  # noqa: BLE001  surfaced by start(), not lost in the thread
                failure.append(exc)
                started.set()

        self._thread = threading.Thread(target=serve, name=f"emulator:{self.port}", daemon=True)
        self._thread.start()
        if not started.wait(10) or failure:
            self.stop()
            raise RuntimeError("the emulator did not start") from (failure[0] if failure else None)
        log.info("emulator serving %s at %s", self.state.content_url, self.url)
        return self

    async def _serve(self, sock: socket.socket, started: threading.Event) -> None:
        # Driven by hand rather than with uvicorn.Server.serve(): its main loop polls every 0.1 s and
        # its shutdown sleeps 0.1 s, which made each test's teardown cost 0.2 s.
        server = self._server
        assert server is not None
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server.config.load()
        server.lifespan = server.config.lifespan_class(server.config)
        await server.startup(sockets=[sock])
        started.set()
        await self._stopping.wait()
        for listener in server.servers:
            listener.close()
        for connection in list(server.server_state.connections):
            connection.shutdown()  # idle keep-alive connections close at once, busy ones after replying
        for _ in range(200):
            if not server.server_state.connections:
                break
            await asyncio.sleep(0.005)

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            try:
                self._loop.call_soon_threadsafe(self._stopping.set)
            except RuntimeError:  # the loop already ended
                pass
        if self._thread is not None:
            self._thread.join(10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None
        self._loop = self._stopping = None

    def serve_forever(self) -> None:
        """Block until the server stops (the CLI calls this and stops on Ctrl-C)."""
        if self._thread is None:
            self.start()
        assert self._thread is not None
        while self._thread.is_alive():
            self._thread.join(0.5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
