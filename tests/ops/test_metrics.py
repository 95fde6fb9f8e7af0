"""Money and HTTP metrics on GET /metrics, and JSON log lines with the request id and the calling app."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mana_credits.context import AppContext
from mana_credits.kit import logs, metrics, money_metrics
from mana_credits.kit.edge import edge_middleware
from mana_credits.kit.jobs import Job, JobRunner
from tests.conftest import Served
from tests.support import Api, service_headers

Scrape = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: httpx.AsyncClient) -> Scrape:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(scraped: Scrape, name: str, **labels: str) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_credits_moved_and_refused_per_app(api: Api, client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    user = api.actor()
    grant = {"userId": user.id, "amount": 100, "reason": "metrics", "referenceId": f"m-{user.id}"}
    response = await client.post(
        "/api/v1/internal/credits/grant", json=grant, headers=service_headers(app="metrics-app")
    )
    assert response.status_code == 200
    spend = {"amount": 30, "appId": "metrics-chat", "description": "chat"}
    assert (await client.post("/api/v1/credits/use", json=spend, headers=user.headers)).status_code == 200
    too_much = {"amount": 1000, "appId": "metrics-chat", "description": "chat"}
    assert (await client.post("/api/v1/credits/use", json=too_much, headers=user.headers)).status_code == 402
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("mana_credits_credited_credits_total", app="metrics-app", type="grant") == 100
    assert delta("mana_credits_debited_credits_total", app="metrics-chat", type="usage") == 30
    assert delta("mana_credits_insufficient_credits_total", app="metrics-chat") == 1


async def test_sampled_gauges_and_job_success(ctx: AppContext, client: httpx.AsyncClient) -> None:
    await money_metrics.sample(ctx.pool)
    async with ctx.pool.acquire() as conn:
        open_holds = await conn.fetchval(
            "SELECT count(*) FROM credits.reservations WHERE status = 'reserved'"
        )
        backlog = await conn.fetchval(
            "SELECT count(*) FROM credits.notification_outbox WHERE delivered_at IS NULL"
        )
    scraped = await scrape(client)
    assert value(scraped, "mana_credits_holds_open") == open_holds
    assert value(scraped, "mana_credits_outbox_backlog") == backlog
    assert value(scraped, "mana_credits_db_pool_size") >= 1

    ran = asyncio.Event()

    async def work() -> None:
        ran.set()

    runner = JobRunner([Job("metrics-test-job", 3600, work)])
    runner.start()
    await ran.wait()
    for _ in range(100):  # the loop records success right after the run returns
        if value(
            await scrape(client), "mana_credits_job_last_success_timestamp_seconds", job="metrics-test-job"
        ):
            break
        await asyncio.sleep(0.01)
    await runner.stop()
    stamp = value(
        await scrape(client), "mana_credits_job_last_success_timestamp_seconds", job="metrics-test-job"
    )
    assert stamp > 0


async def test_log_lines_carry_request_id_and_calling_app(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logs.configure(json=True)

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        logging.getLogger("mana_credits.test").info("charged")
        await send({"type": "http.response.start", "status": 204, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]

    server = Served(edge_middleware(app), lifespan=False)  # type: ignore[arg-type]
    url = await server.start()
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            response = await http.get("/", headers={"X-Request-Id": "req-42", "X-App-Id": "chat"})
            assert response.headers["x-request-id"] == "req-42"
    finally:
        await server.stop()
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if '"charged"' in line]
    assert lines and lines[0]["request_id"] == "req-42" and lines[0]["app"] == "chat"


async def test_concurrent_debits_on_one_account_are_counted_once_each(
    api: Api, client: httpx.AsyncClient
) -> None:
    before = await scrape(client)
    user = api.actor()
    await api.fund(user.id, 100)
    spend = {"amount": 10, "appId": "metrics-burst", "description": "burst"}
    responses = await asyncio.gather(
        *(client.post("/api/v1/credits/use", json=spend, headers=user.headers) for _ in range(20))
    )
    assert sorted(r.status_code for r in responses) == [200] * 10 + [402] * 10
    after = await scrape(client)
    debited = value(after, "mana_credits_debited_credits_total", app="metrics-burst", type="usage") - value(
        before, "mana_credits_debited_credits_total", app="metrics-burst", type="usage"
    )
    refused = value(after, "mana_credits_insufficient_credits_total", app="metrics-burst") - value(
        before, "mana_credits_insufficient_credits_total", app="metrics-burst"
    )
    assert (debited, refused) == (100, 10)


async def test_http_requests_counted_per_route_and_status(api: Api, client: httpx.AsyncClient) -> None:
    path = "/api/v1/internal/credits/balance/{user_id}"  # the route's template: few series
    route = {"method": "GET", "path": path, "app_name": "mana_credits"}
    before = await scrape(client)
    user = api.actor()
    for _ in range(3):
        ok = await client.get(f"/api/v1/internal/credits/balance/{user.id}", headers=service_headers())
        assert ok.status_code == 200
    refused = await client.get(f"/api/v1/internal/credits/balance/{user.id}")  # no service key
    assert refused.status_code == 401
    after = await scrape(client)

    def grew(name: str, status: str) -> float:
        labels = {**route, "status_code": status}
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("mana_credits_requests_total", "200") == 3
    assert grew("mana_credits_requests_total", "401") == 1
    assert grew("mana_credits_request_duration_seconds_count", "200") == 3
    assert grew("mana_credits_requests_error_total", "401") == 0
    assert value(after, "mana_credits_requests_in_progress", **{**route, "status_code": "200"}) == 0


async def test_tallied_requests_reach_the_shared_values_exactly(client: httpx.AsyncClient) -> None:
    # Requests are tallied in the process and flushed (each second, and before /metrics answers).
    path = f"/tallied/{uuid.uuid4()}"
    for seconds, status in [(0.003, 200), (0.2, 200), (20.0, 200), (0.01, 503)]:
        metrics.request_started("POST", path)
        metrics.request_finished("POST", path, status, seconds)
    metrics.request_started("POST", path)  # still in flight at the scrape
    scraped = await scrape(client)
    metrics.request_finished("POST", path, 200, 0.001)
    ok = {"method": "POST", "path": path, "app_name": "mana_credits", "status_code": "200"}
    failed = {**ok, "status_code": "503"}
    assert value(scraped, "mana_credits_requests_total", **ok) == 3
    assert value(scraped, "mana_credits_requests_error_total", **ok) == 0
    assert value(scraped, "mana_credits_requests_total", **failed) == 1
    assert value(scraped, "mana_credits_requests_error_total", **failed) == 1
    buckets = {le: value(scraped, "mana_credits_request_duration_seconds_bucket", **ok, le=le) for le in
               ("0.005", "0.1", "0.25", "10.0", "+Inf")}  # fmt: skip
    assert buckets == {"0.005": 1, "0.1": 1, "0.25": 2, "10.0": 2, "+Inf": 3}
    assert value(scraped, "mana_credits_request_duration_seconds_sum", **ok) == pytest.approx(20.203)
    assert value(scraped, "mana_credits_request_duration_seconds_count", **ok) == 3
    assert value(scraped, "mana_credits_requests_in_progress", **ok) == 1


async def test_debits_answered_ahead_of_the_framework_are_counted(
    api: Api, client: httpx.AsyncClient
) -> None:
    route = {"method": "POST", "path": "/api/v1/internal/credits/use", "app_name": "mana_credits"}
    before = await scrape(client)
    user = api.actor()
    await api.fund(user.id, 2)
    debit = {"userId": user.id, "amount": 1, "appId": "chat", "description": "counted"}
    statuses = [
        (await client.post(route["path"], json=debit, headers=service_headers())).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 402]
    after = await scrape(client)
    for status, count in (("200", 2), ("402", 1)):
        labels = {**route, "status_code": status}
        grown = value(after, "mana_credits_requests_total", **labels) - value(
            before, "mana_credits_requests_total", **labels
        )
        assert grown == count


async def test_app_label_is_bounded_whatever_appids_callers_send(api: Api, client: httpx.AsyncClient) -> None:
    """A signed-in user with no credits sending a new appId each time must not grow /metrics."""
    user = api.actor()
    size_before = len((await client.get("/metrics")).text)
    before = await scrape(client)
    for n in range(300):
        spend = {"amount": 5, "appId": f"junk-{uuid.uuid4().hex}-{n}", "description": "x"}
        response = await client.post("/api/v1/credits/use", json=spend, headers=user.headers)
        assert response.status_code == 402
    known = {"amount": 5, "appId": "chat", "description": "x"}
    assert (await client.post("/api/v1/credits/use", json=known, headers=user.headers)).status_code == 402
    text = (await client.get("/metrics")).text
    after = await scrape(client)
    name = "mana_credits_insufficient_credits_total"
    # 300 refusals land on one series; a known app keeps its own name.
    assert value(after, name, app="other") - value(before, name, app="other") == 300
    assert value(after, name, app="chat") - value(before, name, app="chat") == 1
    assert "junk-" not in text
    assert len(text) - size_before < 2_000
