"""mana-notify, served over real HTTP on a loopback port: records what it receives, can be switched down."""

from __future__ import annotations

import json
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support import ThreadedStub


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: dict[str, Any]


class NotifyStub(ThreadedStub):
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.up = True
        # externalId → (status, raw body) to answer instead of accepting that message.
        self.reject: dict[str, tuple[int, bytes]] = {}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                if self.path != "/api/v1/notifications/send":
                    self._answer(404, {"error": "not found"})
                elif not stub.up:
                    self._answer(503, {"error": "down for maintenance"})
                else:
                    body = json.loads(raw)
                    stub.received.append(Received(dict(self.headers.items()), body))
                    if body.get("externalId") in stub.reject:
                        status, text = stub.reject[body["externalId"]]
                        self._send(status, text)
                    else:
                        self._answer(202, {"queued": True})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                self._send(status, json.dumps(body).encode())

            def _send(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.serve(Handler)

    def sent_with(self, external_id: str) -> list[Received]:
        return [item for item in self.received if item.body.get("externalId") == external_id]
