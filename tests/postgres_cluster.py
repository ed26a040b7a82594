"""A throwaway PostgreSQL cluster for the tests: initdb into a temp dir, a Unix socket there, no TCP.

initdb and postgres refuse to run as root, so as root they run as the `postgres` user (which the Debian
package creates) through runuser. Anything that prevents the cluster from starting raises: the
PostgreSQL tests then FAIL, they are never skipped (scripts/ensure-postgres installs the package).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

PORT = 5432  # only names the socket file (.s.PGSQL.5432) in our own directory: TCP is off


def _bin_dir() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not versions:
        raise RuntimeError("PostgreSQL is not installed (no initdb): run `make test`, which installs it")
    return versions[-1].parent


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@dataclass
class Cluster:
    socket_dir: Path
    bin_dir: Path
    data_dir: Path
    user: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@/{database}?host={self.socket_dir}&port={PORT}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-w", "-t", "60", *args]),
            check=True, capture_output=True, text=True,
        )

    def stop(self) -> None:
        """Stop the server at once (connections are cut, as when the database host dies)."""
        self.pg_ctl("stop", "-m", "immediate")

    durable: bool = False  # fsync on (benchmarks); the tests run without it

    def start(self) -> None:
        opts = f"-c listen_addresses='' -c unix_socket_directories={self.socket_dir} -c port={PORT}"
        opts += "" if self.durable else " -c fsync=off"
        self.pg_ctl("start", "-l", str(self.socket_dir / "server.log"), "-o", opts)


@contextmanager
def running_cluster(durable: bool = False) -> Iterator[Cluster]:
    """A cluster for the block; `durable` keeps fsync on (as in production) instead of off (tests)."""
    bin_dir = _bin_dir()
    root = Path(tempfile.mkdtemp(prefix="steward-pg-"))
    root.chmod(0o755)
    data = root / "data"
    user = "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    try:
        proc = subprocess.run(
            _as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", user, "--no-sync"]),
            check=False, capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"initdb failed: {proc.stderr.strip() or proc.stdout.strip()}")
        cluster = Cluster(root, bin_dir, data, user, durable)
        try:
            cluster.start()
        except subprocess.CalledProcessError as exc:
            log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {exc.stderr} {log[-2000:]}") from None
        try:
            yield cluster
        finally:
            try:
                cluster.stop()
            except subprocess.CalledProcessError:
                pass
    finally:
        shutil.rmtree(root, ignore_errors=True)
