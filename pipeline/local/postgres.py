"""Embedded Postgres through pgserver: a real server on a Unix socket, data in a folder."""

from pathlib import Path
from typing import Any


def start_postgres(data_dir: Path) -> tuple[Any, str]:
    """Starts (or reuses) the server for `data_dir`; returns it and a connection URL."""
    import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    return server, server.get_uri()
