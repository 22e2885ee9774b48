"""Starts and stops the pieces of the local stack in order; reused by the CLI and the tests."""

import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID, uuid4

import httpx
import psycopg
from starlette.routing import Mount

from pipeline.auth import TokenVerifier
from pipeline.local.issuer import LocalIssuer, ThreadedServer
from pipeline.local.migrate import prepare_database
from pipeline.local.postgres import start_postgres
from pipeline.local.processes import stop_process
from pipeline.local.realtime import RealtimeStandIn, apply_realtime_feed
from pipeline.local.relay import LocalRelay
from pipeline.local.seaweed import SeaweedPorts, SeaweedS3, port_free
from pipeline.local.web import page_config, web_app
from pipeline.settings import Settings
from pipeline.storage import Storage
from pipeline.webhooks import new_ed25519_keypair

REPO_ROOT = Path(__file__).resolve().parents[2]
DEV_EMAIL = "dev@localhost"
WORKER_ROLE = "svc_worker"  # created in supabase/schemas/00_schemas_and_roles.sql


class PortTaken(RuntimeError):
    """A port the stack needs is held by another program."""


@dataclass
class StackConfig:
    root: Path = REPO_ROOT / ".local"
    api_port: int = 8000
    auth_port: int = 54321
    web_port: int = 3000
    s3_base_port: int = 8330
    bucket: str = "svc-pipeline-local"
    api_env: dict[str, str] = field(default_factory=dict)  # VC_* overrides for the API


def wait_healthy(proc: subprocess.Popen[Any], url: str, timeout: float) -> None:
    """Until the API process at `url` answers `/health` with 200; an exit or the timeout
    raises (the local stack's API and the load bench's instrumented one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the API exited during start-up")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the API did not become healthy")


@dataclass
class LocalStack:
    config: StackConfig
    database_url: str = ""
    postgres: Any = None
    s3: SeaweedS3 | None = None
    issuer: LocalIssuer | None = None
    servers: list[ThreadedServer] = field(default_factory=list)
    api: subprocess.Popen[bytes] | None = None
    relay: LocalRelay | None = None
    realtime: RealtimeStandIn | None = None

    # Pieces ---------------------------------------------------------------------------

    def start_database(self) -> list[str]:
        self.postgres, self.database_url = start_postgres(self.config.root / "pg")
        applied = prepare_database(self.database_url)
        apply_realtime_feed(self.database_url)
        return applied

    def start_storage(self) -> None:
        access, secret = self._s3_credentials()
        ports = SeaweedPorts.from_base(self.config.s3_base_port)
        self.s3 = SeaweedS3(self.config.root / "s3", ports, access, secret)
        self.s3.start()
        deadline = time.monotonic() + 30
        while True:  # the gateway answers before the volume server takes writes
            try:
                Storage(self.settings()).ensure_bucket(self.cors_origins())
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def start_auth(self) -> None:
        """The Supabase stand-in on one port, as a project URL serves both: the token
        issuer's JWKS under /auth/v1 and Realtime under /realtime/v1."""
        self.issuer = LocalIssuer(self.config.root / "auth" / "es256.pem", self.supabase_url)
        verifier = TokenVerifier.from_settings(self.settings())
        self.realtime = RealtimeStandIn(self.database_url, verifier.verify)
        app = self.realtime.app(Mount("/", self.issuer.asgi_app()))
        self.servers.append(ThreadedServer(app, self.config.auth_port).start())

    def start_web(self) -> None:
        # offline, only `tiny` can train: `standard` fine-tunes weights fetched from the network
        preset = "tiny" if self.env()["VC_OFFLINE_MODELS"] == "true" else "standard"
        config = page_config(self.api_url, DEV_EMAIL, preset, self.supabase_url)
        app = web_app(REPO_ROOT / "web" / "public", config, self.dev_session)
        self.servers.append(ThreadedServer(app, self.config.web_port).start())

    def start_api(self, timeout: float = 60.0) -> None:
        env = os.environ | self.env()
        args = [
            sys.executable, "-m", "uvicorn", "endpoints.app:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(self.config.api_port), "--log-level", "info",
        ]  # fmt: skip
        self.api = subprocess.Popen(args, env=env, cwd=REPO_ROOT)
        wait_healthy(self.api, self.api_url, timeout)

    def start_relay(self, api_url: str | None = None) -> None:
        assert self.s3 is not None
        filer = f"127.0.0.1:{self.s3.ports.filer}"
        secret, _ = self.relay_keys()
        self.relay = LocalRelay(filer, self.config.bucket, api_url or self.api_url, secret).start()

    def prepare_models(self) -> bool:
        """Builds the offline weights once, if the GPU extra is installed; else says so."""
        import importlib.util

        if importlib.util.find_spec("so_vits_svc_fork") is None:
            return False
        if not (self.config.root / "models" / "huggingface").exists():
            args = [sys.executable, "-m", "gpu", "models", "--offline"]
            subprocess.run(args, env=os.environ | self.env(), cwd=REPO_ROOT, check=True)
        return True

    def ports(self) -> dict[int, str]:
        """Every TCP port the stack listens on, with what listens there."""
        seaweed = SeaweedPorts.from_base(self.config.s3_base_port).named()
        return {
            self.config.api_port: "the API (--api-port)",
            self.config.web_port: "the web page (--web-port)",
            self.config.auth_port: "the auth stand-in (--auth-port)",
        } | {port: f"SeaweedFS {name} (--s3-base-port)" for port, name in seaweed.items()}

    def check_ports(self) -> None:
        """Refuses to start when a port is taken: a piece that cannot bind its port (the
        filer's gRPC port, seen when another program held it) would otherwise fail quietly
        while the stack reports itself ready."""
        taken = [(port, what) for port, what in self.ports().items() if not port_free(port)]
        if taken:
            listed = ", ".join(f"{port} ({what})" for port, what in sorted(taken))
            raise PortTaken(
                f"Port(s) already in use by another program: {listed}. Stop that program or "
                "choose other ports with the options named."
            )

    def start(self) -> None:
        self.check_ports()
        self.config.root.mkdir(parents=True, exist_ok=True)
        self.start_database()
        self.start_storage()
        self.start_auth()
        self.prepare_models()
        self.start_web()
        self.start_api()
        self.start_relay()

    def stop(self) -> None:
        if self.relay is not None:
            self.relay.stop()
        stop_process(self.api)
        for server in reversed(self.servers):
            server.stop()
        if self.s3 is not None:
            self.s3.stop()
        if self.postgres is not None:
            self.postgres.cleanup()

    # What the pieces need to know about each other --------------------------------------

    @property
    def worker_database_url(self) -> str:
        """The same database as the worker login the migrations create (`svc_worker`), so
        local workers and the probe run with exactly the privileges they have in production
        (the embedded server trusts local connections: no password)."""
        parts = urlsplit(self.database_url)
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{WORKER_ROLE}@{host}"))

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.config.api_port}"

    @property
    def supabase_url(self) -> str:
        return f"http://127.0.0.1:{self.config.auth_port}"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.config.web_port}"

    def cors_origins(self) -> list[str]:
        return [self.web_url, f"http://localhost:{self.config.web_port}"]

    def env(self) -> dict[str, str]:
        assert self.s3 is not None
        return {
            "VC_DB_TRANSPORT": "postgres",
            "VC_DATABASE_URL": self.database_url,
            "VC_WORKER_DATABASE_URL": self.worker_database_url,
            "VC_SUPABASE_URL": self.supabase_url,
            "VC_S3_ENDPOINT_URL": self.s3.endpoint_url,
            "VC_S3_BUCKET": self.config.bucket,
            "VC_S3_ACCESS_KEY_ID": self.s3.access_key,
            "VC_S3_SECRET_ACCESS_KEY": self.s3.secret_key,
            "VC_CORS_ORIGINS": json.dumps(self.cors_origins()),
            "VC_WEBHOOK_PUBLIC_KEY": self.relay_keys()[1],
            "VC_DISPATCH": "thread",
            "VC_MODEL_CACHE_DIR": str(self.config.root / "models"),
            "VC_WORK_DIR": str(self.config.root / "work"),
            "VC_OFFLINE_MODELS": "true",
            # Offline, text is spoken by Piper with its packaged voice (tests and local use
            # only); Kokoro's files are baked into production images.
            "VC_TEXT_ENGINE": "piper",
        } | self.config.api_env

    def settings(self, **overrides: Any) -> Settings:
        values = {k.removeprefix("VC_").lower(): v for k, v in self.env().items()}
        values["cors_origins"] = self.cors_origins()
        return Settings(**(values | overrides))

    def _s3_credentials(self) -> tuple[str, str]:
        path = self.config.root / "s3-credentials.json"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                json.dumps(
                    {"access": "local" + secrets.token_hex(6), "secret": secrets.token_urlsafe(24)}
                )
            )
            path.chmod(0o600)
        creds = json.loads(path.read_text())
        return creds["access"], creds["secret"]

    def relay_keys(self) -> tuple[str, str]:
        """The local relay's Ed25519 pair (whsk_, whpk_), made once and kept with the data."""
        path = self.config.root / "relay-keys.json"
        if not path.exists():
            secret, public = new_ed25519_keypair()
            path.write_text(json.dumps({"secret": secret, "public": public}))
            path.chmod(0o600)
        keys = json.loads(path.read_text())
        return keys["secret"], keys["public"]

    # Users ----------------------------------------------------------------------------

    def ensure_user(self, email: str, user_id: UUID | None = None) -> UUID:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            row = conn.execute("select id from auth.users where email = %s", (email,)).fetchone()
            if row:
                return row[0]
            new_id = user_id or uuid4()
            conn.execute("insert into auth.users (id, email) values (%s, %s)", (new_id, email))
            return new_id

    def dev_token(self, email: str = DEV_EMAIL, ttl_seconds: int = 12 * 3600) -> str:
        return self.dev_session(email, ttl_seconds)["access_token"]

    def dev_session(self, email: str, ttl_seconds: int = 12 * 3600) -> dict[str, Any]:
        """What the page's local sign-in receives: the same shape as a Supabase session."""
        assert self.issuer is not None
        user_id = self.ensure_user(email)
        token = self.issuer.issue(user_id, email, ttl_seconds)
        expires_at = int(time.time()) + ttl_seconds
        return {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": ttl_seconds,
            "expires_at": expires_at,
            "user": {"id": str(user_id), "email": email},
        }
