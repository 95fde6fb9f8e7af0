"""Gift conservation in `audit`: every gift's reserved credits = redeemed + returned + still held, across
the creator's and the recipients' accounts (each account alone can be consistent while a gift is not)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from mana_credits.app import create_app
from mana_credits.db.pool import connect
from mana_credits.gifts import service
from mana_credits.ledger.audit import GiftOffender, audit
from tests.conftest import LiveServer, make_settings
from tests.support import Api, JwksServer, service_headers


async def test_audit_checks_that_every_gift_conserves_its_credits(
    own_url: str, jwks: JwksServer, api: Api
) -> None:
    server = LiveServer(create_app(make_settings(own_url, jwks)))
    base = await server.start()
    creator, friend = api.actor(), api.actor()
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            grant = {"userId": creator.id, "amount": 1000, "reason": "fund", "referenceId": f"f-{creator.id}"}
            assert (await client.post("/api/v1/internal/credits/grant", json=grant,
                                      headers=service_headers())).status_code == 200  # fmt: skip
            made = []
            for total in (100, 50, 30, 20):
                answer = await client.post("/api/v1/gifts", json={"totalCredits": total, "expirationDays": 1},
                                           headers=creator.headers)  # fmt: skip
                assert answer.status_code == 201, answer.text
                made.append(answer.json())
            redeemed, cancelled, expiring, held = made
            answer = await client.post(f"/api/v1/gifts/{redeemed['code']}/redeem", headers=friend.headers)
            assert answer.status_code == 200, answer.text
            answer = await client.delete(f"/api/v1/gifts/{cancelled['id']}", headers=creator.headers)
            assert answer.status_code == 200, answer.text
    finally:
        await server.stop()
    conn = await connect(own_url)
    try:
        await conn.execute("UPDATE gifts.gift_codes SET expires_at = now() - interval '1 hour' WHERE id = $1",
                           expiring["id"])  # fmt: skip
        async with conn.transaction():
            expired, _ = await service.expire_batch(conn, datetime.now(UTC) + timedelta(seconds=1))
        assert expired == 1
        assert await audit(conn) == []  # redeemed, cancelled, expired and held gifts all conserve

        # A gift marked redeemed whose credits never reached anyone; one refunded twice.
        await conn.execute("UPDATE gifts.gift_codes SET status = 'depleted' WHERE id = $1", held["id"])
        await conn.execute(
            "INSERT INTO credits.transactions (user_id, type, status, amount, balance_before, balance_after,"
            " app_id, description, metadata) SELECT user_id, type, status, amount, balance_before,"
            " balance_after, app_id, description, metadata FROM credits.transactions"
            " WHERE type = 'refund' AND metadata->>'giftCodeId' = $1",
            cancelled["id"],
        )
        offenders = [o for o in await audit(conn) if isinstance(o, GiftOffender)]
    finally:
        await conn.close()
    assert sorted(str(o.gift_id) for o in offenders) == sorted([held["id"], cancelled["id"]])
    assert {o.user_id for o in offenders} == {creator.id}
    problems = {str(o.gift_id): o.problems[0] for o in offenders}
    assert "redeemed 0 + returned 0 + held 0" in problems[held["id"]]
    assert "returned 100" in problems[cancelled["id"]] and "reserved 50" in problems[cancelled["id"]]
