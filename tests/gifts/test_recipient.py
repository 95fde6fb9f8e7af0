"""Who a personalized gift is for: e-mails compared as mana-auth normalises them (case-folded without any
locale: a Turkish `İ` is not an `i`), an unverified e-mail matches nothing, an adopted gift without an
e-mail is nobody's."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from tests.gifts.conftest import Gifts
from tests.support import Api, service_headers


async def _pending(gifts: Gifts, email: str, **extra: object) -> dict[str, int]:
    response = await gifts.client.post(
        "/api/v1/internal/gifts/redeem-pending",
        json={"userId": f"u-{uuid.uuid4()}", "email": email, **extra},
        headers=service_headers(),
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_a_look_alike_dotted_capital_i_does_not_match(
    gifts: Gifts, api: Api, db: asyncpg.Connection
) -> None:
    creator = await gifts.creator(500)
    suffix = uuid.uuid4().hex[:8]
    gift = await gifts.create(creator, 50, type="personalized", targetEmail=f"bob-{suffix}@mail.com")
    # Under a Turkish locale lower('İ') = 'i'; the addresses are different mailboxes.
    look_alike = f"bob-{suffix}@maİl.com"
    assert (await gifts.redeem(api.actor(email=look_alike), gift["code"])).status_code == 403
    assert await _pending(gifts, look_alike) == {"redeemed": 0, "totalCredits": 0}
    # ASCII case differences still match, as mana-auth lower-cases addresses.
    assert (await gifts.redeem(api.actor(email=f"BOB-{suffix}@Mail.COM"), gift["code"])).status_code == 200


async def test_an_unverified_email_matches_nothing(gifts: Gifts, api: Api) -> None:
    creator = await gifts.creator(500)
    email = f"carol-{uuid.uuid4().hex[:8]}@mail.com"
    gift = await gifts.create(creator, 50, type="personalized", targetEmail=email)
    user = api.actor(email=email)
    unverified = gifts.api.jwks.mint({"sub": user.id, "email": email, "email_verified": False})
    response = await gifts.client.post(
        f"/api/v1/gifts/{gift['code']}/redeem", headers={"Authorization": f"Bearer {unverified}"}
    )
    assert response.status_code == 403, response.text
    assert await _pending(gifts, email, emailVerified=False) == {"redeemed": 0, "totalCredits": 0}
    verified = gifts.api.jwks.mint({"sub": user.id, "email": email, "email_verified": True})
    response = await gifts.client.post(
        f"/api/v1/gifts/{gift['code']}/redeem", headers={"Authorization": f"Bearer {verified}"}
    )
    assert response.status_code == 200, response.text


async def test_an_adopted_personalized_gift_without_email_is_refused_not_500(
    gifts: Gifts, api: Api, db: asyncpg.Connection
) -> None:
    code = "ZZ" + uuid.uuid4().hex[:6].upper().replace("0", "A").replace("1", "B")
    await db.execute(
        """
        INSERT INTO gifts.gift_codes
          (code, short_url, creator_id, total_credits, type, target_email, expires_at)
        VALUES ($1, 'x', 'old-creator', 10, 'personalized', NULL, $2)
        """,
        code,
        datetime.now(UTC) + timedelta(days=5),
    )
    response = await gifts.redeem(api.actor(), code)
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "gift_wrong_recipient"
