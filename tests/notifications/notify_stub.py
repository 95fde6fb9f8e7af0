"""mana-notify, served over real HTTP on a loopback port: records what it receives, can be switched down."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tests.support import StubHandler, ThreadedStub


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

        class Handler(StubHandler):
            def do_POST(self) -> None:
                raw = self.read_body()
                if self.path != "/api/v1/notifications/send":
                    self.send_json(404, {"error": "not found"})
                elif not stub.up:
                    self.send_json(503, {"error": "down for maintenance"})
                else:
                    body = json.loads(raw)
                    stub.received.append(Received(dict(self.headers.items()), body))
                    if body.get("externalId") in stub.reject:
                        status, text = stub.reject[body["externalId"]]
                        self.send_raw(status, text)
                    else:
                        self.send_json(202, {"queued": True})

        self.serve(Handler)

    def sent_with(self, external_id: str) -> list[Received]:
        return [item for item in self.received if item.body.get("externalId") == external_id]
