"""Real components for the test session: a JWKS server over HTTP, token minting, test users."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

AUDIENCE = "mana"
SERVICE_KEY = "test-service-key"
APP_KEYS = {"chat": "chat-app-key", "picture": "picture-app-key"}


class StubHandler(BaseHTTPRequestHandler):
    """A stub's request handler: reads a body, answers JSON, and keeps the test output quiet."""

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.send_raw(status, json.dumps(body).encode(), headers)

    def send_raw(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class ThreadedStub:
    """A stub HTTP server of another service on a loopback port, served from a thread."""

    def serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()  # shutdown() only stops the loop; the listening socket stays open


class JwksServer(ThreadedStub):
    """mana-auth's JWKS endpoint, served over real HTTP on a loopback port; keys can be rotated."""

    def __init__(self) -> None:
        self.keys: dict[str, Ed25519PrivateKey] = {}
        self.extra_jwks: list[dict[str, Any]] = []
        self.requests = 0
        self.current_kid = self.add_key()
        server = self

        class Handler(StubHandler):
            def do_GET(self) -> None:
                if self.path != "/api/auth/jwks":
                    self.send_json(404, {})
                    return
                server.requests += 1
                self.send_json(200, {"keys": server.jwks()})

        self.serve(Handler)

    def add_key(self) -> str:
        kid = f"key-{uuid.uuid4().hex[:8]}"
        self.keys[kid] = Ed25519PrivateKey.generate()
        return kid

    def rotate(self) -> str:
        self.current_kid = self.add_key()
        return self.current_kid

    def jwks(self) -> list[dict[str, Any]]:
        out = []
        for kid, key in self.keys.items():
            data = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
            data.update(kid=kid, alg="EdDSA", use="sig")
            out.append(data)
        return out + self.extra_jwks

    def mint(self, claims: dict[str, Any] | None = None, *, kid: str | None = None, **headers: Any) -> str:
        kid = kid or self.current_kid
        now = int(time.time())
        body = {"iss": self.url, "aud": AUDIENCE, "iat": now, "exp": now + 900, "role": "user"}
        body.update(claims or {})
        return jwt.encode(body, self.keys[kid], algorithm="EdDSA", headers={"kid": kid, **headers})


@dataclass
class Actor:
    """A test user with a fresh id and a valid token."""

    id: str
    email: str
    name: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def service_headers(app: str = "tests", key: str = SERVICE_KEY) -> dict[str, str]:
    return {"X-Service-Key": key, "X-App-Id": app}


class Api:
    """Thin helpers over the real HTTP API."""

    def __init__(self, client: httpx.AsyncClient, jwks: JwksServer) -> None:
        self.client = client
        self.jwks = jwks

    def actor(self, *, role: str = "user", email: str | None = None, name: str | None = None) -> Actor:
        user_id = f"u-{uuid.uuid4()}"
        email = email or f"{user_id}@example.com"
        name = name or f"User {user_id[2:8]}"
        token = self.jwks.mint({"sub": user_id, "email": email, "name": name, "role": role})
        return Actor(id=user_id, email=email, name=name, token=token)

    async def fund(self, user_id: str, amount: int) -> int:
        """Give credits through the internal grant API; returns the new balance."""
        response = await self.client.post(
            "/api/v1/internal/credits/grant",
            json={
                "userId": user_id,
                "amount": amount,
                "reason": "test funding",
                "referenceId": str(uuid.uuid4()),
            },
            headers=service_headers(),
        )
        assert response.status_code == 200, response.text
        return int(response.json()["newBalance"])

    async def balance(self, actor: Actor) -> dict[str, int]:
        response = await self.client.get("/api/v1/credits/balance", headers=actor.headers)
        assert response.status_code == 200, response.text
        return dict(response.json())
