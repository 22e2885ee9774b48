"""A local stand-in for Supabase Auth's token side: an ES256 key whose JWKS is served at the
path Supabase uses, and tokens with Supabase's claims, so `pipeline.auth` verifies them with
exactly the code it uses in production."""

import json
import threading
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import jwt
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

JWKS_PATH = "/auth/v1/.well-known/jwks.json"


class LocalIssuer:
    def __init__(self, key_path: Path, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.issuer = f"{self.base_url}/auth/v1"
        self._key = _load_or_create_key(key_path)
        self.kid = "local-" + key_path.stem

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self._key.public_key()))
        jwk.update({"kid": self.kid, "alg": "ES256", "use": "sig", "key_ops": ["verify"]})
        return {"keys": [jwk]}

    def issue(
        self, user_id: UUID, email: str | None = None, ttl_seconds: int = 3600, **extra: Any
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": "authenticated",
            "sub": str(user_id),
            "email": email,
            "role": "authenticated",
            "aal": "aal1",
            "iat": now,
            "exp": now + ttl_seconds,
            "session_id": str(UUID(int=now)),
            "is_anonymous": False,
        } | extra
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self.kid})

    def asgi_app(self) -> Starlette:
        async def jwks(_: Request) -> JSONResponse:
            return JSONResponse(self.jwks(), headers={"Cache-Control": "public, max-age=600"})

        return Starlette(routes=[Route(JWKS_PATH, jwks)])


def _load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key
    key = ec.generate_private_key(ec.SECP256R1())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return key


class ThreadedServer:
    """Serves an ASGI app with uvicorn on a background thread (local stack and tests)."""

    def __init__(self, app: Any, port: int, host: str = "127.0.0.1") -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="auto")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://{host}:{port}"

    def start(self, timeout: float = 30.0) -> "ThreadedServer":
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
