"""Serving fixtures: a throwaway PostgreSQL server for the session, a fresh store URL per backend and test.

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` account (or `nobody`).
Without the server binaries or psycopg, the PostgreSQL cases are skipped and the SQLite ones still run.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from foryou.serving.store import sqlite_url

PG_SUPERUSER = "foryou"
# Durability is tested against SQLite; the throwaway server trades it for speed.
PG_SETTINGS = "-c fsync=off -c full_page_writes=off -c synchronous_commit=off"


@dataclass
class PostgresServer:
    """A running server; `new_database()` gives each test its own empty database; `restart()` stops it (fast mode:
    open connections are cut) and starts it again."""

    host: str
    port: int
    restart: Callable[[], None]
    _names: Iterator[int] = field(default_factory=itertools.count)

    def new_database(self) -> str:
        """Creates an empty database and returns its SQLAlchemy URL."""
        import psycopg

        name = f"store_{next(self._names)}"
        with psycopg.connect(host=self.host, port=self.port, user=PG_SUPERUSER, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://{PG_SUPERUSER}@{self.host}:{self.port}/{name}"


def _postgres_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl: from PATH, else the newest /usr/lib/postgresql/*/bin."""
    on_path = [shutil.which(name) for name in ("initdb", "pg_ctl")]
    if all(on_path):
        return Path(str(on_path[0])).resolve().parent
    installed = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if (d / "initdb").exists()]
    installed.sort(key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)
    return installed[-1] if installed else None


def _server_account() -> pwd.struct_passwd | None:
    """The account to run the server as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.skip("running as root and no 'postgres' or 'nobody' account exists to run PostgreSQL as")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """initdb in a temp dir, pg_ctl start on a free port (127.0.0.1 + a socket there), stop at the end."""
    pytest.importorskip("psycopg", reason="psycopg not importable: pip install 'psycopg[binary]'")
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    account = _server_account()
    root = Path(tempfile.mkdtemp(prefix="foryou-pg-"))
    if account is not None:
        os.chown(root, account.pw_uid, account.pw_gid)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(bin_dir / args[0]), *args[1:]], check=False, cwd=root, capture_output=True, text=True,
            env={**os.environ, "LC_ALL": "C"},
            user=None if account is None else account.pw_uid,
            group=None if account is None else account.pw_gid,
            extra_groups=None if account is None else [],
        )

    data, log, port = root / "data", root / "server.log", _free_port()
    try:
        made = run("initdb", "-D", str(data), "-U", PG_SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C")
        if made.returncode != 0:
            pytest.fail(f"initdb failed: {made.stderr.strip()}")
        options = f"-p {port} -h 127.0.0.1 -k {root} {PG_SETTINGS}"
        started = run("pg_ctl", "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", options, "start")
        if started.returncode != 0:
            server_log = log.read_text(errors="replace")[-2000:]
            pytest.fail(f"pg_ctl start failed: {started.stdout.strip()}\n{server_log}")

        def restart() -> None:
            again = run("pg_ctl", "-D", str(data), "-l", str(log), "-w", "-t", "60", "-m", "fast",
                        "-o", options, "restart")
            assert again.returncode == 0, f"pg_ctl restart failed: {again.stdout.strip()}"

        try:
            yield PostgresServer(host="127.0.0.1", port=port, restart=restart)
        finally:
            run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store: an SQLite file in tmp_path, or a new database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "store.sqlite")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()


@pytest.fixture(scope="session")
def shop_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle trained once per session on the generated shop (tests/serving/shop.py); treat it as read-only
    (copy it with shutil.copytree to damage or change it)."""
    from tests.serving.shop import build_shop_bundle

    return build_shop_bundle(tmp_path_factory.mktemp("shop"))
