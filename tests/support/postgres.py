"""A throwaway PostgreSQL cluster for tests: initdb into a temp dir, pg_ctl start on a free loopback port.

PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` user (or `nobody`).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg

INSTALL_HINT = "install PostgreSQL 15 server binaries: apt-get install -y postgresql (or `make test`, which does it)"


def find_binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise RuntimeError(f"PostgreSQL binary {name!r} not found; {INSTALL_HINT}")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> list[str]:
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
            return ["runuser", "-u", user, "--"]
        except KeyError:
            continue
    raise RuntimeError("running as root and no `postgres` or `nobody` user exists to run PostgreSQL as")


@dataclass
class PostgresCluster:
    datadir: Path
    port: int
    prefix: list[str]

    @property
    def admin_dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def create_database(self, encoding: str | None = None) -> str:
        """A new database (the cluster's UTF8, or e.g. SQL_ASCII: what initdb makes where no locale is set)."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        options = f" ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0" if encoding else ""
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{options}')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def sessions(self, url: str) -> tuple[int, int]:
        """(client sessions open now, sessions ever opened) on the database of a create_database() URL."""
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND backend_type = "
                "'client backend'), (SELECT sessions FROM pg_stat_database WHERE datname = %s)",
                (name, name),
            ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1] or 0)

    def stop(self) -> None:
        subprocess.run(
            [*self.prefix, find_binary("pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )

    def start(self) -> None:
        """Start the cluster again after stop() (an outage in a test), on the same port."""
        for attempt in range(10):
            try:
                _pg_ctl_start(self.prefix, self.datadir, self.port)
                return
            except RuntimeError:
                if attempt == 9:
                    raise
                time.sleep(1)  # the stopped postmaster may still be letting go of its port and pid file


def start_cluster(base: Path) -> PostgresCluster:
    base.mkdir(parents=True, exist_ok=True)
    datadir = base / "data"
    prefix = _run_as()
    if prefix:
        user = prefix[2]
        shutil.chown(base, user)
        os.chmod(base, 0o755)
        # runuser needs to traverse every parent of the data dir.
        for parent in base.parents:
            if parent != Path("/") and os.stat(parent).st_mode & 0o001 == 0:
                os.chmod(parent, os.stat(parent).st_mode | 0o001)
    subprocess.run(
        [
            *prefix,
            find_binary("initdb"),
            "-D",
            str(datadir),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    _pg_ctl_start(prefix, datadir, port)
    return PostgresCluster(datadir, port, prefix)


def _pg_ctl_start(prefix: list[str], datadir: Path, port: int) -> None:
    base = datadir.parent
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off -c max_connections=200"
    r = subprocess.run(
        [*prefix, find_binary("pg_ctl"), "-D", str(datadir), "-o", opts, "-l", str(base / "log"), "-w", "start"],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise RuntimeError(f"pg_ctl start failed ({r.returncode}): {r.stdout}{r.stderr}")
