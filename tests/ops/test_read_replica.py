"""DATABASE_READ_URL: a user's own balance and history come from the replica; everything else, including
the internal balance apps check before charging, from the primary. Two databases with different rows
make the source visible."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from mana_credits import ledger
from mana_credits.app import create_app
from mana_credits.db.pool import connect
from mana_credits.ledger.schemas import TxType
from tests.conftest import LiveServer, make_settings
from tests.support import Api, JwksServer, service_headers


async def test_own_reads_use_the_replica_and_internal_reads_the_primary(
    fresh_database: Callable[[], Awaitable[str]], jwks: JwksServer, api: Api
) -> None:
    primary, replica = await fresh_database(), await fresh_database()
    user = api.actor()
    conn = await connect(replica)
    try:
        await ledger.credit(conn, user.id, 7, type=TxType.GRANT, app_id="t", description="on the replica")
    finally:
        await conn.close()
    server = LiveServer(create_app(make_settings(primary, jwks, DATABASE_READ_URL=replica)))
    url = await server.start()
    try:
        client = api.client
        grant = {"userId": user.id, "amount": 100, "reason": "primary", "referenceId": f"r-{user.id}"}
        response = await client.post(
            f"{url}/api/v1/internal/credits/grant", json=grant, headers=service_headers()
        )
        assert response.status_code == 200, response.text
        internal = await client.get(
            f"{url}/api/v1/internal/credits/balance/{user.id}", headers=service_headers()
        )
        assert internal.json()["balance"] == 100
        own = await client.get(f"{url}/api/v1/credits/balance", headers=user.headers)
        assert own.json()["balance"] == 7
        history = await client.get(f"{url}/api/v1/credits/transactions", headers=user.headers)
        assert [row["description"] for row in history.json()] == ["on the replica"]
        # A write never goes to the replica: spending checks the primary's 100.
        spend = {"amount": 50, "appId": "chat", "description": "spend"}
        used = await client.post(f"{url}/api/v1/credits/use", json=spend, headers=user.headers)
        assert used.status_code == 200, used.text
        internal = await client.get(
            f"{url}/api/v1/internal/credits/balance/{user.id}", headers=service_headers()
        )
        assert internal.json()["balance"] == 50
    finally:
        await server.stop()
