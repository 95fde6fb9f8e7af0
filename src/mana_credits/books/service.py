"""The monthly statement: credits owed to users at the month's two instants and every flow in between.

Credits are prepaid money, so what users hold (balances plus open holds) is a liability. The statement
reconciles it: the ledger's rows before each instant against the balance rows rolled back to that instant
(per user, so a difference names its users), opening + inflows - outflows against closing, each row of
the month against its own before/after balances, and the balances' `reserved` against the open holds.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from mana_credits.books import repository
from mana_credits.books.schemas import (
    ErasedAccounts,
    Flow,
    Position,
    Problem,
    Statement,
    UserDifference,
)
from mana_credits.db.pool import Conn
from mana_credits.kit.errors import ValidationFailed

ZONE = "Europe/Berlin"
# Calendar months of the years 1970-2999 (kit/openapi.py documents the same pattern for the route).
_MONTH = re.compile(r"(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])")

# The order and words of the flows, as the table shows them.
KINDS = {
    "purchased": "purchased (package)",
    "granted": "granted free (reason / app)",
    "usage": "spent on usage (app / operation)",
    "usage_refunded": "usage refunded (app)",
    "sync_renewals": "Cloud Sync charges (interval)",
    "stripe_reversed": "reversed: Stripe refunds and disputes",
    "stripe_restored": "restored: disputes won, refunds failed",
    "gifts_reserved": "gifts: reserved by creators",
    "gifts_redeemed": "gifts: redeemed",
    "gifts_cancelled": "gifts: refunded on cancel",
    "gifts_expired": "gifts: refunded on expiry",
}


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """`YYYY-MM` to its first instant and the next month's, in Europe/Berlin; 400 otherwise."""
    found = _MONTH.fullmatch(month)
    if found is None:
        example = "month must be YYYY-MM (a calendar month, e.g. 2026-11)"
        raise ValidationFailed(example, details={"field": "month", "value": month})
    year, number = int(found[1]), int(found[2])
    zone = ZoneInfo(ZONE)
    start = datetime(year, number, 1, tzinfo=zone)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=zone)
    return start, end


def _flow(row: repository.FlowRow) -> Flow:
    label = KINDS.get(row.kind, f"other ledger rows ({row.kind.removeprefix('other_')})")
    return Flow(
        kind=row.kind,
        label=label,
        detail=row.detail,
        direction="in" if row.inflow else "out",
        count=row.count,
        credits=abs(row.credits),
        euro_cents=row.euro_cents,
    )


def _order(flow: Flow) -> int:
    kinds = list(KINDS)
    return kinds.index(flow.kind) if flow.kind in kinds else len(kinds)


async def build(conn: Conn, month: str) -> Statement:
    """The statement of `month`, read in one repeatable-read snapshot so every figure sees the same rows."""
    start, end = month_bounds(month)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await repository.roomy(conn)
        rows = await repository.flows(conn, start, end)
        held = await repository.outstanding(conn, start, end)
        holds = await repository.holds(conn, start, end)
        reserved = await repository.reserved_and_held(conn)
        broken = await repository.broken_rows(conn, start, end)
    flows = sorted((_flow(row) for row in rows), key=_order)  # stable: the SQL's order within a kind
    inflow = sum(flow.credits for flow in flows if flow.direction == "in")
    outflow = sum(flow.credits for flow in flows if flow.direction == "out")
    problems = _problems(held, reserved, inflow, outflow, broken)
    return Statement(
        month=month,
        timezone=ZONE,
        start=start,
        end=end,
        opening=_position(held.ledger_opening, holds.reserved_at_opening, held.users_opening),
        closing=_position(held.ledger_closing, holds.reserved_at_closing, held.users_closing),
        inflow=inflow,
        outflow=outflow,
        flows=flows,
        holds=holds,
        erased_accounts=ErasedAccounts(
            erased_in_month=held.erased_in_month,
            erased_in_month_credits=held.erased_in_month_credits,
            holding_at_closing=held.erased_holding,
            credits_at_closing=held.erased_holding_credits,
        ),
        reconciled=not problems,
        problems=problems,
    )


def _position(outstanding: int, reserved: int, users: int) -> Position:
    return Position(outstanding=outstanding, balance=outstanding - reserved, reserved=reserved, users=users)


def _problems(
    held: repository.Outstanding,
    reserved: tuple[int, int],
    inflow: int,
    outflow: int,
    broken: list[repository.BrokenRow],
) -> list[Problem]:
    found = []
    users = [UserDifference(user_id=item.user_id, difference=item.difference) for item in held.mismatches]
    for instant, ledger, balances in (
        ("opening", held.ledger_opening, held.balances_opening),
        ("closing", held.ledger_closing, held.balances_closing),
    ):
        if ledger != balances or held.mismatched_users:
            named = ", ".join(f"{user.user_id} ({user.difference:+})" for user in users)
            found.append(
                Problem(
                    check=f"balances_at_{instant}",
                    message=f"{instant}: the ledger says {ledger}, the balances say {balances} "
                    f"(difference {balances - ledger:+}; {held.mismatched_users} user(s): {named})",
                    difference=balances - ledger,
                    users=users,
                    user_count=held.mismatched_users,
                )
            )
    expected = held.ledger_opening + inflow - outflow
    if expected != held.ledger_closing:
        found.append(
            Problem(
                check="flows",
                message=f"opening {held.ledger_opening} + inflow {inflow} - outflow {outflow} = {expected}, "
                f"but closing is {held.ledger_closing} (difference {held.ledger_closing - expected:+})",
                difference=held.ledger_closing - expected,
            )
        )
    booked, held_now = reserved
    if booked != held_now:
        found.append(
            Problem(
                check="reserved",
                message=f"the balances reserve {booked}, the open holds {held_now} "
                f"(difference {booked - held_now:+}; `mana-credits audit` names the users)",
                difference=booked - held_now,
            )
        )
    for row in broken:
        off = row.balance_after - row.balance_before - row.amount
        found.append(
            Problem(
                check="row_arithmetic",
                message=f"ledger row {row.id} of {row.user_id}: amount {row.amount} but balance "
                f"{row.balance_before} -> {row.balance_after} (difference {off:+})",
                difference=off,
                users=[UserDifference(user_id=row.user_id, difference=off)],
                user_count=1,
            )
        )
    return found
