"""Health, readiness, metrics, OpenAPI, unknown routes."""

from __future__ import annotations

import httpx


async def test_health_is_liveness(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["service"] == "mana-credits" and body["timestamp"]


async def test_ready_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200


async def test_unknown_route_is_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"statusCode": 404, "message": "Not Found", "code": "not_found"}


async def test_wrong_method_is_json_405(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/v1/credits/packages")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


async def test_metrics_are_prometheus_text(client: httpx.AsyncClient) -> None:
    await client.get("/health")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert "mana_credits_requests_total" in response.text


async def test_openapi_document_and_docs_page(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert schema["info"]["title"] == "mana-credits"
    assert "/api/v1/credits/use" in schema["paths"]
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]


async def test_docs_page_shows_the_published_document(client: httpx.AsyncClient) -> None:
    """The reference page reads the corrected contract (our error envelope), not Litestar's raw one."""
    page = (await client.get("/docs")).text
    assert 'data-url="/docs/openapi.json"' in page
    shown = await client.get("/docs/openapi.json")
    assert shown.status_code == 200
    assert shown.json() == (await client.get("/openapi.json")).json()
    assert "ErrorEnvelope" in shown.json()["components"]["schemas"]


async def test_cors_preflight_for_the_web_app(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/api/v1/credits/balance",
        headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "GET"},
    )
    assert response.status_code in (200, 204)
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"


async def test_cors_headers_on_browser_requests_only(api: object, client: httpx.AsyncClient) -> None:
    from tests.support import Api

    assert isinstance(api, Api)
    user = api.actor()
    await api.fund(user.id, 7)
    origin = {"Origin": "http://localhost:5173"}
    browser = await client.get("/api/v1/credits/balance", headers={**user.headers, **origin})
    assert browser.status_code == 200 and browser.json()["balance"] == 7
    assert browser.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert browser.headers["access-control-allow-credentials"] == "true"
    assert "x-request-id" in browser.headers["access-control-expose-headers"].lower()
    assert browser.headers["x-content-type-options"] == "nosniff"
    foreign = await client.get(
        "/api/v1/credits/balance", headers={**user.headers, "Origin": "https://evil.test"}
    )
    assert foreign.status_code == 200 and "access-control-allow-origin" not in foreign.headers
    server = await client.get("/api/v1/credits/balance", headers=user.headers)
    assert server.status_code == 200 and server.json()["balance"] == 7
    assert not [name for name in server.headers if name.startswith("access-control-")]


async def test_request_id_is_echoed_or_made(client: httpx.AsyncClient) -> None:
    given = await client.get("/health", headers={"X-Request-Id": "trace-123"})
    assert given.headers["x-request-id"] == "trace-123"
    made = await client.get("/api/v1/credits/balance")  # an error answer carries one too
    assert len(made.headers["x-request-id"]) == 32


async def test_oversized_body_is_rejected_not_crashed(api: object, client: httpx.AsyncClient) -> None:
    from tests.support import Api

    assert isinstance(api, Api)
    user = api.actor()
    body = {"amount": 1, "appId": "chat", "description": "x", "metadata": {"blob": "x" * 1_200_000}}
    response = await client.post("/api/v1/credits/use", json=body, headers=user.headers)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
