"""The local stack with its parts breakable on purpose: the fault harness's ground.

Everything is the real thing `svc-local up` runs: Postgres (pgserver), SeaweedFS, the relay,
the API as its own uvicorn process (so it can be SIGKILLed) and GPU workers as `python -m gpu`
child processes of the API. The scheduled tasks that Modal runs in production (reaper,
reconciler, retention) run here from `ChaosStack.crons`, every few seconds.

Each fault has a start and an end so the harness can time them; the workers are found by
their environment (this stack's work dir), never by name, so several stacks (several people
running the suite) never touch each other's processes.
"""

import contextlib
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psutil
import psycopg

from pipeline.local.seaweed import find_free_base, free_port
from pipeline.local.stack import LocalStack, StackConfig

log = logging.getLogger(__name__)

# Short enough that a frozen worker is reaped within a run, long enough for a loaded CPU's
# longest silent stretch (an epoch's validation and 0.5 GB checkpoint save); beats every second.
HEARTBEAT_TIMEOUT_SECONDS = 120
WORK_VOLUME_BYTES = 3 * 2**30  # the training work dir's tmpfs (a checkpoint is ~0.5 GB)

RAISED_RATE_LIMITS = {
    f"VC_RATE_{action}_{kind}": "100000"
    for action in ("UPLOAD", "JOB_START", "CANCEL", "PUBLIC")
    for kind in ("BURST", "PER_MINUTE")
}


def chaos_env(root: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The API's (and so the workers') settings for a CPU-sized run."""
    return (
        {
            "VC_MIN_DATASET_SECONDS": "20",
            "VC_HEARTBEAT_SECONDS": "1",
            "VC_HEARTBEAT_TIMEOUT_SECONDS": str(HEARTBEAT_TIMEOUT_SECONDS),
            "VC_SINGER_CHECK": "false",
            "VC_RECONCILE_AFTER_SECONDS": "5",
            "VC_UNLAUNCHED_AFTER_SECONDS": "5",
            "VC_UPLOAD_URL_SECONDS": "120",
            "VC_WORK_DIR": str(root / "work"),
            "VC_DB_POOL_MAX": "20",
        }
        | RAISED_RATE_LIMITS
        | (extra or {})
    )


@dataclass
class ChaosStack(LocalStack):
    """A `LocalStack` plus the switches the faults flip."""

    work_volume: bool = False  # the training work dir is a tmpfs of its own

    @classmethod
    def create(cls, root: Path, extra_env: dict[str, str] | None = None) -> "ChaosStack":
        config = StackConfig(
            root=root,
            api_port=free_port(),
            auth_port=free_port(),
            web_port=free_port(),
            s3_base_port=find_free_base(),
            bucket="svc-chaos",
            api_env=chaos_env(root, extra_env),
        )
        return cls(config)

    def start_all(self) -> None:
        self.config.root.mkdir(parents=True, exist_ok=True)
        (self.config.root / "work").mkdir(exist_ok=True)
        self.work_volume = self.mount_work_volume()
        self.start_database()
        self.start_storage()
        self.start_auth()
        self.prepare_models()
        self.start_api(timeout=120)
        self.start_relay()

    def stop(self) -> None:
        for proc in self.workers():
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGCONT)
                proc.kill()
        self.restore_work_volume()
        super().stop()
        self.stop_postgres_if_running()

    # Postgres ------------------------------------------------------------------------

    @property
    def pgdata(self) -> Path:
        return self.config.root / "pg"

    @property
    def _pg_user(self) -> str | None:
        """pgserver runs the server as an unprivileged user when started by root."""
        return getattr(self.postgres, "system_user", None)

    def stop_postgres(self) -> None:
        """A fast shutdown, as an upgrade or failover does: every session is cut."""
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self._pg_user)

    def start_postgres(self) -> None:
        from pgserver._commands import pg_ctl

        socket_dir = parse_qs(urlsplit(self.database_url).query)["host"][0]
        log_file = self.pgdata / "log"
        args = ["-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(log_file), "start"]
        pg_ctl(args, pgdata=self.pgdata, user=self._pg_user, timeout=60)

    def stop_postgres_if_running(self) -> None:
        """pgserver's cleanup stops only the server it started: one the harness restarted
        (`start_postgres`) is stopped here."""
        if self.postgres is not None and (self.pgdata / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                self.stop_postgres()

    def start_postgres_if_stopped(self) -> None:
        if not (self.pgdata / "postmaster.pid").exists():
            self.start_postgres()

    def terminate_backends(self) -> int:
        """`pg_terminate_backend` on every session but this one: the API's, the workers'."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            row = conn.execute(
                "select count(pg_terminate_backend(pid)) from pg_stat_activity"
                " where pid <> pg_backend_pid() and backend_type = 'client backend'"
            ).fetchone()
        return int(row[0]) if row else 0

    def sql(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.database_url, autocommit=True)

    # Object storage ------------------------------------------------------------------

    def stop_storage(self) -> None:
        assert self.s3 is not None
        self.s3.stop()

    def restart_storage(self) -> None:
        assert self.s3 is not None
        self.s3.start()

    def freeze_storage(self) -> None:
        """SIGSTOP SeaweedFS: connections are accepted by the kernel and never answered, the
        way a store in an incident stalls writes instead of refusing them cleanly."""
        assert self.s3 is not None and self.s3.process is not None
        os.kill(self.s3.process.pid, signal.SIGSTOP)

    def thaw_storage(self) -> None:
        assert self.s3 is not None and self.s3.process is not None
        os.kill(self.s3.process.pid, signal.SIGCONT)

    # Relay and API -------------------------------------------------------------------

    def stop_relay(self) -> None:
        if self.relay is not None:
            self.relay.stop()
            self.relay = None

    def kill_api(self) -> None:
        """SIGKILL: no shutdown hook runs, requests in flight are cut mid-way."""
        assert self.api is not None
        self.api.kill()
        self.api.wait(10)

    def restart_api(self) -> None:
        self.start_api(timeout=120)

    # Workers -------------------------------------------------------------------------

    def workers(self, kind: str | None = None) -> list[psutil.Process]:
        """This stack's `python -m gpu …` processes (matched by its work dir)."""
        work_dir = self.config.api_env["VC_WORK_DIR"]
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            cmd = proc.info["cmdline"] or []
            if "gpu" not in cmd[1:3] or "-m" not in cmd[1:3]:
                continue
            if kind is not None and kind not in cmd:
                continue
            with contextlib.suppress(psutil.Error):
                if proc.environ().get("VC_WORK_DIR") == work_dir:
                    found.append(proc)
        return found

    # Work volume ---------------------------------------------------------------------

    @property
    def training_dir(self) -> Path:
        return Path(self.config.api_env["VC_WORK_DIR"]) / "training"

    def mount_work_volume(self) -> bool:
        """The training work dir on a tmpfs of its own, as Modal's work volume is a volume of
        its own, so `fill_work_volume` fills it and nothing else. False where mounting is not
        allowed (the `work_volume_full` fault is then skipped and reported so)."""
        self.training_dir.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={WORK_VOLUME_BYTES}", "tmpfs",
             str(self.training_dir)],
            capture_output=True,
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            log.warning("cannot mount a tmpfs: %s", done.stderr.decode().strip())
        return done.returncode == 0

    def fill_work_volume(self) -> None:
        """Leaves a few hundred KB free: the next feature extraction meets ENOSPC."""
        filler = self.training_dir / ".filler"
        free = psutil.disk_usage(str(self.training_dir)).free
        with filler.open("ab") as out, contextlib.suppress(OSError):
            out.write(b"\0" * max(free - 256 * 1024, 0))

    def drain_work_volume(self) -> None:
        (self.training_dir / ".filler").unlink(missing_ok=True)

    def restore_work_volume(self) -> None:
        if self.training_dir.is_mount():
            subprocess.run(["umount", "-l", str(self.training_dir)], check=False)


def wait_for(predicate: Any, timeout: float, every: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():
                return True
        time.sleep(every)
    return False
