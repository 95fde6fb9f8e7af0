"""The published contract (/openapi.json) says what the service does: errors are our envelope, each
operation lists its real statuses, and what the schema allows is accepted. (The exhaustive proof is
schemathesis with every check in test_fuzz.py, in the slow target.)"""

from __future__ import annotations

from typing import Any

import httpx

from tests.support import Api

ENVELOPE = {"$ref": "#/components/schemas/ErrorEnvelope"}


async def _schema(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


async def test_every_error_is_the_envelope(client: httpx.AsyncClient) -> None:
    schema = await _schema(client)
    assert schema["components"]["schemas"]["ErrorEnvelope"]["required"] == ["statusCode", "message", "code"]
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if status[0] in "45":
                    assert response["content"]["application/json"]["schema"] == ENVELOPE, (method, path)


async def test_operations_list_the_statuses_they_answer(client: httpx.AsyncClient) -> None:
    paths = (await _schema(client))["paths"]
    use = paths["/api/v1/credits/use"]["post"]["responses"]
    assert {"200", "400", "401", "402", "409", "413", "503"} <= set(use)
    redeem = paths["/api/v1/gifts/{code}/redeem"]["post"]["responses"]
    assert {"403", "404", "410", "429"} <= set(redeem)
    # One resource on the wire, one path in the document, its parameter named for both operations.
    gift = paths["/api/v1/gifts/{codeOrGiftId}"]
    assert {"get", "delete"} <= set(gift)
    assert "/api/v1/gifts/{gift_id}" not in paths and "/api/v1/gifts/{code}" not in paths
    (code,) = gift["get"]["parameters"]
    cancel = next(p for p in gift["delete"]["parameters"] if p["in"] == "path")
    assert code["name"] == cancel["name"] == "codeOrGiftId"
    assert "gift code" in code["description"] and "UUID" in cancel["description"]
    webhook = paths["/api/v1/webhooks/stripe"]["post"]
    assert webhook["parameters"][0]["name"] == "Stripe-Signature" and webhook["parameters"][0]["required"]


async def test_options_allows_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    for path, methods in {
        "/api/v1/gifts/ABCDEFGH": "DELETE, GET, OPTIONS",
        "/api/v1/internal/credits/balance/someone": "DELETE, GET, OPTIONS",
        "/api/v1/admin/sync/someone/gift": "DELETE, OPTIONS, POST",
    }.items():
        response = await client.options(path)
        assert response.headers["allow"] == methods, path


async def test_an_integral_float_is_an_integer(api: Api) -> None:
    """JSON Schema's `integer` includes 1.0; a fraction stays refused (a usage debit's amount takes up to
    three decimals, tests/contract/test_api_fractional.py; a grant's does not)."""
    user = api.actor()
    await api.fund(user.id, 10)
    whole = {"amount": 2.0, "appId": "chat", "description": "x"}
    response = await api.client.post("/api/v1/credits/use", json=whole, headers=user.headers)
    assert response.status_code == 200, response.text
    assert (await api.balance(user))["balance"] == 8
    fraction = {**whole, "amount": 2.0005}
    assert (
        await api.client.post("/api/v1/credits/use", json=fraction, headers=user.headers)
    ).status_code == 400
