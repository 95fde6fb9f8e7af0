"""Switching over on the old service's real database: both schemas it may have (the inline-named
`legacy_schema.sql` and the one `drizzle-kit push` made), with realistic rows, migrated in place; then the
old routes answer as the old service answered for those rows, old retries replay, and audit lists only the
old service's own inconsistencies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from mana_credits.app import create_app
from mana_credits.db.embedded import database_url
from mana_credits.db.migrate import upgrade_async
from mana_credits.ledger.audit import audit
from tests.conftest import LiveServer, make_settings
from tests.support import SERVICE_KEY, JwksServer

FIXTURES = Path(__file__).parent.parent / "fixtures"
ROWS = (FIXTURES / "legacy_rows.sql").read_text()
SERVICE = {"X-Service-Key": SERVICE_KEY}


class Adopted:
    def __init__(self, client: httpx.AsyncClient, db: asyncpg.Connection, jwks: JwksServer) -> None:
        self.client = client
        self.db = db
        self.jwks = jwks

    def user(self, user_id: str, email: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.jwks.mint({'sub': user_id, 'email': email})}"}


@pytest.fixture(params=["legacy_schema.sql", "legacy_schema_drizzle.sql"])
async def adopted(
    request: pytest.FixtureRequest, pg_admin_url: str, jwks: JwksServer
) -> AsyncIterator[Adopted]:
    name = "adopt_" + request.param.split(".")[0]
    admin = await asyncpg.connect(pg_admin_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = database_url(pg_admin_url, name)
    db = await asyncpg.connect(url)
    await db.execute((FIXTURES / request.param).read_text())
    await db.execute(ROWS)
    await upgrade_async(url)
    server = LiveServer(create_app(make_settings(url, jwks)))
    base = await server.start()
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            yield Adopted(client, db, jwks)
    finally:
        await server.stop()
        await db.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _offenders(db: asyncpg.Connection) -> dict[str, list[str]]:
    return {o.user_id: o.problems for o in await audit(db)}


async def test_old_rows_read_as_the_old_service_answered(adopted: Adopted) -> None:
    client, anna = adopted.client, adopted.user("anna", "anna@example.com")
    # Only carl disagrees with his ledger: the old service counted a refund as earned. Listed, unchanged.
    assert set(await _offenders(adopted.db)) == {"carl"}

    balance = (await client.get("/api/v1/credits/balance", headers=anna)).json()
    assert balance == {"balance": 250, "totalEarned": 505, "totalSpent": 235, "reserved": 20}
    internal = (await client.get("/api/v1/internal/credits/balance/anna", headers=SERVICE)).json()
    assert (internal["balance"], internal["transactionsCount"]) == (250, 7)

    history = (await client.get("/api/v1/credits/transactions?limit=50&offset=0", headers=anna)).json()
    assert [row["amount"] for row in history] == [-30, -100, -50, -25, 5, -30, 500]
    assert history[-1]["description"] == "Credit purchase: 500 credits"
    page = (await client.get("/api/v1/credits/transactions?limit=2&offset=5", headers=anna)).json()
    assert [row["amount"] for row in page] == [-30, 500]

    purchases = (await client.get("/api/v1/credits/purchases", headers=anna)).json()
    assert [(p["status"], p["stripeCustomerId"], p["metadata"]) for p in purchases] == [
        ("completed", "cus_anna", {"source": "web"})
    ]
    packages = {p["name"]: p for p in (await client.get("/api/v1/credits/packages")).json()}
    assert (packages["Starter"]["stripePriceId"], packages["Starter"]["metadata"]) == (
        "price_starter", {"badge": "popular"},
    )  # fmt: skip

    anna_sync = (await client.get("/api/v1/sync/status", headers=anna)).json()
    assert (anna_sync["active"], anna_sync["interval"], anna_sync["pausedAt"]) == (True, "monthly", None)
    assert anna_sync["nextChargeAt"] is not None
    carl_sync = (await client.get("/api/v1/internal/sync/status/carl", headers=SERVICE)).json()
    assert carl_sync["active"] is False and carl_sync["pausedAt"] is not None

    # The public gift page: the old service showed the creator's address here; now only the name part.
    gift = (await client.get("/api/v1/gifts/FORBOB01")).json()
    assert (gift["creatorName"], gift["totalCredits"], gift["status"]) == ("anna", 100, "active")
    assert "@" not in str(gift)
    created = (await client.get("/api/v1/gifts/me/created", headers=anna)).json()
    assert {g["code"]: g["reservationTransactionId"] for g in created} == {
        "SIMPLE50": "00000000-0000-4000-8000-000000000105",
        "FORBOB01": "00000000-0000-4000-8000-000000000106",
    }
    received = (
        await client.get("/api/v1/gifts/me/received", headers=adopted.user("carl", "c@example.com"))
    ).json()
    assert [(r["code"], r["creatorName"]) for r in received] == [("SIMPLE50", "anna")]


async def test_retries_across_the_cut_over_replay_and_keys_are_per_user(adopted: Adopted) -> None:
    client = adopted.client
    anna = adopted.user("anna", "anna@example.com")
    body = {"amount": 30, "appId": "chat", "description": "Chat GPT-4"}
    # The web app retried a request the old service already executed: a replay, no second charge.
    retry = await client.post(
        "/api/v1/credits/use", json=body, headers={**anna, "Idempotency-Key": "chat-msg-1"}
    )
    assert retry.status_code == 200, retry.text
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["transaction"]["id"] == "00000000-0000-4000-8000-000000000102"
    # The same retry through the internal route, with the key in the body as the old clients sent it.
    internal = await client.post(
        "/api/v1/internal/credits/use",
        json={**body, "userId": "anna", "idempotencyKey": "chat-msg-1"},
        headers={**SERVICE, "X-App-Id": "chat"},
    )
    assert internal.status_code == 200 and internal.headers["Idempotent-Replayed"] == "true"
    assert (await client.get("/api/v1/credits/balance", headers=anna)).json()["balance"] == 250

    # Another user (and another app) with the same key: its own effect, never a 500.
    await client.post(
        "/api/v1/internal/credits/grant",
        json={"userId": "dora", "amount": 100, "reason": "welcome", "referenceId": "welcome-dora"},
        headers=SERVICE,
    )
    dora = adopted.user("dora", "dora@example.com")
    for _ in range(2):
        own = await client.post(
            "/api/v1/credits/use", json=body, headers={**dora, "Idempotency-Key": "chat-msg-1"}
        )
        assert own.status_code == 200, own.text
    assert (await client.get("/api/v1/credits/balance", headers=dora)).json()["balance"] == 70
    carl_key = await client.post(
        "/api/v1/internal/credits/use",
        json={
            "userId": "anna",
            "amount": 5,
            "appId": "picture",
            "description": "x",
            "idempotencyKey": "carl-1",
        },
        headers={**SERVICE, "X-App-Id": "picture"},
    )
    assert carl_key.status_code == 200 and "Idempotent-Replayed" not in carl_key.headers
    assert (await client.get("/api/v1/credits/balance", headers=anna)).json()["balance"] == 245
    # A repeated feedback grant of the old service stays granted once (mana-analytics sends no X-App-Id).
    grant = await client.post(
        "/api/v1/internal/credits/grant",
        json={"userId": "anna", "amount": 5, "reason": "feedback_submit", "referenceId": "fb-1"},
        headers=SERVICE,
    )
    assert grant.json()["alreadyGranted"] is True
    assert set(await _offenders(adopted.db)) == {"carl"}


async def test_old_holds_and_pending_gifts_carry_on(adopted: Adopted) -> None:
    client, db = adopted.client, adopted.db
    # mana-research polls its job hours later and commits the hold the old service made.
    research = {**SERVICE, "X-App-Id": "mana-research"}
    commit = await client.post(
        "/api/v1/internal/credits/commit",
        json={"reservationId": "00000000-0000-4000-8000-0000000000c2", "description": "research perplexity"},
        headers=research,
    )
    assert commit.status_code == 200, commit.text
    assert commit.json()["success"] is True
    anna = (await client.get("/api/v1/internal/credits/balance/anna", headers=SERVICE)).json()
    assert (anna["balance"], anna["reserved"], anna["totalSpent"]) == (250, 0, 255)
    app = await db.fetchval(
        "SELECT app_id FROM credits.transactions WHERE metadata->>'reservationId' = "
        "'00000000-0000-4000-8000-0000000000c2'"
    )
    assert app == "research"  # the old service's app for a hold: the reason's prefix

    # Bob registers: mana-auth calls init, then redeem-pending with his address (only X-Service-Key).
    init = await client.post("/api/v1/internal/credits/init", json={"userId": "bob"}, headers=SERVICE)
    assert init.status_code == 200 and init.json()["userId"] == "bob"
    pending = await client.post(
        "/api/v1/internal/gifts/redeem-pending",
        json={"userId": "bob", "email": "bob@example.com"},
        headers=SERVICE,
    )
    assert pending.json() == {"redeemed": 1, "totalCredits": 100}
    source = await db.fetchval(
        "SELECT source_app_id FROM gifts.gift_redemptions WHERE redeemer_user_id = 'bob'"
    )
    assert source == "auto-registration"
    assert (await client.get("/api/v1/internal/credits/balance/bob", headers=SERVICE)).json()[
        "balance"
    ] == 100
    assert set(await _offenders(db)) == {"carl"}


async def test_totals_stay_non_negative_across_the_switch(adopted: Adopted) -> None:
    """carl's old totals say he spent 10 (the old service counted its refund as earned); a refund of 20 for
    usage from before the switch lowers totalSpent, which mana-auth's data export shows as "spent": it stops
    at 0 and the rest counts as earned, so earned - spent is still the balance."""
    client = adopted.client
    refund = await client.post(
        "/api/v1/internal/credits/refund",
        json={"userId": "carl", "amount": 20, "description": "Image generation failed", "appId": "picture"},
        headers={**SERVICE, "X-App-Id": "picture"},
    )
    assert refund.status_code == 200, refund.text
    carl = (await client.get("/api/v1/internal/credits/balance/carl", headers=SERVICE)).json()
    assert (carl["balance"], carl["totalEarned"], carl["totalSpent"]) == (70, 70, 0)
    own = (await client.get("/api/v1/credits/balance", headers=adopted.user("carl", "c@example.com"))).json()
    assert (own["totalEarned"], own["totalSpent"]) == (70, 0)
    assert set(await _offenders(adopted.db)) == {"carl"}  # as before the refund: his old totals


async def test_an_old_database_without_the_hand_added_enum_values(pg_admin_url: str) -> None:
    """`grant` came to the old database by a hand-run SQL file: a database that never got it adopts too."""
    schema = (FIXTURES / "legacy_schema_drizzle.sql").read_text().replace(",\n    'grant'\n", "\n")
    assert "'grant'" not in schema
    admin = await asyncpg.connect(pg_admin_url)
    await admin.execute('DROP DATABASE IF EXISTS "adopt_no_grant" WITH (FORCE)')
    await admin.execute('CREATE DATABASE "adopt_no_grant"')
    url = database_url(pg_admin_url, "adopt_no_grant")
    db = await asyncpg.connect(url)
    try:
        await db.execute(schema)
        await upgrade_async(url)
        values = await db.fetchval("SELECT enum_range(NULL::public.transaction_type)::text[]")
        assert {"purchase", "usage", "refund", "gift", "grant", "reversal", "expiry"} <= set(values)
        unique = await db.fetchval(
            "SELECT count(*) FROM pg_constraint "
            "WHERE conrelid = 'credits.transactions'::regclass AND contype = 'u'"
        )
        assert unique == 0
    finally:
        await db.close()
        await admin.execute('DROP DATABASE IF EXISTS "adopt_no_grant" WITH (FORCE)')
        await admin.close()
