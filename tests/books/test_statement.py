"""The monthly statement on a ledger built through the API: every flow by its breakdown, opening and
closing outstanding credits, and the reconciliation that names a corrupted balance's user."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from mana_credits.ledger.audit import audit
from tests.books.conftest import Books
from tests.test_cli import run_cli

BERLIN = ZoneInfo("Europe/Berlin")


def _months() -> tuple[str, str]:
    now = datetime.now(BERLIN)
    previous = now.replace(day=1) - timedelta(days=1)
    return now.strftime("%Y-%m"), previous.strftime("%Y-%m")


async def _statement(books: Books, month: str) -> dict[str, Any]:
    admin = books.shop.api.actor(role="admin")
    response = await books.client.get(
        "/api/v1/admin/statement", params={"month": month}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _flows(statement: dict[str, Any]) -> list[tuple[str, str, str, int, int]]:
    return [(f["kind"], f["detail"], f["direction"], f["count"], f["credits"]) for f in statement["flows"]]


async def _dave_last_month(books: Books) -> None:
    """A user whose rows are all of last month (the ledger's time is the database's: moved by hand)."""
    await books.grant("dave", 300, "migration")
    await books.use("dave", 20, "chat", "chat_gpt4")
    back = timedelta(days=datetime.now(BERLIN).day + 5)  # a few days before this month's first
    await books.db.execute(
        "UPDATE credits.transactions SET created_at = created_at - $2::interval WHERE user_id = $1",
        books.user("dave").id,
        back,
    )


async def test_the_statement_of_a_month_built_through_the_api(books: Books) -> None:
    this_month, last_month = _months()
    await _dave_last_month(books)
    await books.build_ledger()
    assert await audit(books.db) == []

    statement = await _statement(books, this_month)

    assert statement["reconciled"] is True, statement["problems"]
    assert statement["problems"] == []
    assert statement["timezone"] == "Europe/Berlin"
    assert statement["opening"] == {"outstanding": 280, "balance": 280, "reserved": 0, "users": 1}
    # alice 340, bob 265 (15 of them held), carol 300 (erased: her credits are still owed), dave 280
    assert statement["closing"] == {"outstanding": 1185, "balance": 1170, "reserved": 15, "users": 4}
    assert _flows(statement) == [
        ("purchased", "Basic", "in", 2, 1000),
        ("granted", "welcome / mana-auth", "in", 1, 200),
        ("granted", "feedback / mana-auth", "in", 1, 25),
        ("usage", "chat / chat_gpt4", "out", 1, 30),
        ("usage", "chat / research", "out", 1, 25),
        ("usage", "picture / image_generation", "out", 1, 10),
        ("usage_refunded", "chat", "in", 1, 5),
        ("sync_renewals", "monthly", "out", 2, 60),
        ("stripe_reversed", "", "out", 1, 200),
        ("gifts_reserved", "", "out", 3, 170),
        ("gifts_redeemed", "", "in", 1, 100),
        ("gifts_cancelled", "", "in", 1, 50),
        ("gifts_expired", "", "in", 1, 20),
    ]
    assert statement["flows"][0]["euroCents"] == 1000
    assert (statement["inflow"], statement["outflow"]) == (1400, 495)
    assert statement["holds"] == {
        "opened": 3, "openedCredits": 65, "committed": 1, "committedCredits": 25, "released": 1,
        "releasedCredits": 10, "reservedAtOpening": 0, "reservedAtClosing": 15,
    }  # fmt: skip
    assert statement["erasedAccounts"] == {
        "erasedInMonth": 1, "erasedInMonthCredits": 300, "holdingAtClosing": 1, "creditsAtClosing": 300,
    }  # fmt: skip

    before = await _statement(books, last_month)
    assert before["reconciled"] is True
    assert before["opening"]["outstanding"] == 0 and before["closing"]["outstanding"] == 280
    assert _flows(before) == [
        ("granted", "migration / mana-auth", "in", 1, 300),
        ("usage", "chat / chat_gpt4", "out", 1, 20),
    ]

    code, out = await run_cli("statement", "--month", this_month, "--format", "json",
                              env={"DATABASE_URL": books.url})  # fmt: skip
    assert code == 0, out
    assert json.loads(out[out.index("{") :]) == statement
    code, out = await run_cli(
        "statement", "--month", this_month, env={"DATABASE_URL": books.url, "COLUMNS": "200"}
    )
    assert code == 0, out
    print(out)
    assert "reconciled" in out and "1185" in out


async def test_a_corrupted_balance_fails_the_statement_naming_the_user(books: Books) -> None:
    this_month, _ = _months()
    await books.build_ledger()
    bob = books.user("bob").id
    await books.db.execute("UPDATE credits.balances SET balance = balance + 7 WHERE user_id = $1", bob)

    statement = await _statement(books, this_month)

    assert statement["reconciled"] is False
    checks = {problem["check"]: problem for problem in statement["problems"]}
    assert set(checks) == {"balances_at_opening", "balances_at_closing"}
    closing = checks["balances_at_closing"]
    assert closing["difference"] == 7 and closing["userCount"] == 1
    assert closing["users"] == [{"userId": bob, "difference": 7}]
    assert bob in closing["message"]
    # The ledger still says what it said: the figures come from the ledger, the problem from the balances.
    assert statement["closing"]["outstanding"] == 905

    code, out = await run_cli("statement", "--month", this_month, "--format", "csv",
                              env={"DATABASE_URL": books.url})  # fmt: skip
    assert code == 1, out
    assert bob in out and "does not reconcile" in out


async def test_the_statement_refuses_what_is_not_a_month(books: Books) -> None:
    admin = books.shop.api.actor(role="admin")
    for month in ("2026-13", "2026-1", "november", "", "2026-11-01", "1969-12", "3000-01", "２０２６-11"):
        response = await books.client.get("/api/v1/admin/statement", params={"month": month},
                                          headers=admin.headers)  # fmt: skip
        assert response.status_code == 400, (month, response.text)
        assert response.json()["code"] == "validation_error"
    missing = await books.client.get("/api/v1/admin/statement", headers=admin.headers)
    assert missing.status_code == 400
    user = books.shop.api.actor()
    refused = await books.client.get(
        "/api/v1/admin/statement", params={"month": "2026-11"}, headers=user.headers
    )
    assert refused.status_code == 403
    code, out = await run_cli("statement", "--month", "2026-13", env={"DATABASE_URL": books.url})
    assert code == 2 and "YYYY-MM" in out
