"""Issue 23.12: writes racing or following an account's erasure keep no personal text.

The erasure locks the account (its holds, its gifts, its balance row) so nothing commits around it, and
leaves a tombstone (`credits.erased_accounts`): a later write for that id still moves credits as asked
but is stored without its free text (description = the row's type, metadata = ids only, a hold's reason
= its app, a gift's name and message = none).
"""

from __future__ import annotations

import asyncio

import asyncpg
import httpx

from mana_credits.ledger.audit import audit
from tests.support import SERVICE_KEY, Api

BASE = "/api/v1/internal/credits"
DELETE_HEADERS = {"X-Service-Key": SERVICE_KEY}
APP_HEADERS = {"X-Service-Key": SERVICE_KEY, "X-App-Id": "chat"}
DEBITS = 300

_TEXTS = """
SELECT count(*) FILTER (WHERE description LIKE '%secret%' OR metadata::text LIKE '%secret%') AS texts,
       count(*) AS rows
FROM credits.transactions WHERE user_id = $1 AND type = 'usage'
"""


async def _debit(client: httpx.AsyncClient, user_id: str, n: int) -> httpx.Response:
    body = {"userId": user_id, "amount": 1, "appId": "chat", "description": f"secret question {n}",
            "metadata": {"prompt": f"secret {n}", "referenceId": f"ref-{n}"}}  # fmt: skip
    # Every third one keyed: those take the single-debit path, the rest the group commit.
    headers = {**APP_HEADERS, "Idempotency-Key": f"race-{user_id}-{n}"} if n % 3 == 0 else APP_HEADERS
    return await client.post(f"{BASE}/use", json=body, headers=headers)


async def test_debits_beside_an_erasure_keep_no_text_once_it_answered(
    api: Api, db: asyncpg.Connection
) -> None:
    client = api.client
    user = api.actor()
    await api.fund(user.id, 10_000)

    debits = [asyncio.create_task(_debit(client, user.id, n)) for n in range(DEBITS)]
    await asyncio.sleep(0.05)  # some debits commit before the erasure starts, others wait behind it
    erased = await client.delete(f"{BASE}/balance/{user.id}", headers=DELETE_HEADERS)
    assert erased.status_code == 200, erased.text
    right_after = await db.fetchrow(_TEXTS, user.id)
    answers = await asyncio.gather(*debits)

    assert right_after is not None and right_after["texts"] == 0, dict(right_after or {})
    assert [r.status_code for r in answers] == [200] * DEBITS
    final = await db.fetchrow(_TEXTS, user.id)
    assert final is not None and (final["texts"], final["rows"]) == (0, DEBITS)
    # Every debit moved its credit, before or after: the arithmetic holds.
    balance = (await client.get(f"{BASE}/balance/{user.id}", headers=DELETE_HEADERS)).json()
    assert balance["balance"] == 10_000 - DEBITS
    assert await db.fetchval(
        "SELECT count(*) FROM credits.idempotency_keys "
        "WHERE user_id = $1 AND response_body::text LIKE '%secret%'",
        user.id,
    ) == 0  # fmt: skip
    assert [o for o in await audit(db) if o.user_id == user.id] == []


async def test_writes_after_an_erasure_are_stored_without_free_text(api: Api, db: asyncpg.Connection) -> None:
    client = api.client
    user = api.actor()
    await api.fund(user.id, 100)
    assert (await client.delete(f"{BASE}/balance/{user.id}", headers=DELETE_HEADERS)).status_code == 200

    later = await _debit(client, user.id, 1)
    assert later.status_code == 200, later.text
    tx = later.json()["transaction"]
    assert (tx["description"], tx["metadata"]) == ("Usage", {"referenceId": "ref-1"})
    reserved = await client.post(
        f"{BASE}/reserve", json={"userId": user.id, "amount": 5, "reason": "research:secret lawyer"},
        headers={**APP_HEADERS, "X-App-Id": "mana-research"},
    )  # fmt: skip
    assert reserved.status_code == 200, reserved.text
    reason = await db.fetchval(
        "SELECT reason FROM credits.reservations WHERE id = $1::uuid", reserved.json()["reservationId"]
    )
    assert reason == "mana-research"
    gift = await client.post(
        "/api/v1/gifts", json={"totalCredits": 10, "message": "secret note", "creatorName": "Erin"},
        headers=user.headers,
    )  # fmt: skip
    assert gift.status_code == 201, gift.text
    stored = await db.fetchrow(
        "SELECT creator_name, message FROM gifts.gift_codes WHERE id = $1::uuid", gift.json()["id"]
    )
    assert stored is not None and (stored["creator_name"], stored["message"]) == (None, None)
    usage = await db.fetchval(
        "SELECT count(*) FROM credits.usage_stats WHERE user_id = $1 AND metadata IS NOT NULL", user.id
    )
    texts = await db.fetchval(
        "SELECT count(*) FROM credits.transactions WHERE user_id = $1 AND description LIKE '%secret%'",
        user.id,
    )
    assert (usage, texts) == (0, 0)
    assert [o for o in await audit(db) if o.user_id == user.id] == []
