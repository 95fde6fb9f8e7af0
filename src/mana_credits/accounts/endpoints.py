"""DELETE /api/v1/internal/credits/balance/{userId} (service key): erase a deleted account's personal data.

Mounted in the internal credits router (`credits.endpoints`), which owns that path's other method.
"""

from __future__ import annotations

from litestar import delete

from mana_credits.accounts import service
from mana_credits.accounts.schemas import Erased
from mana_credits.auth.models import ServiceCaller
from mana_credits.context import AppContext
from mana_credits.kit.validation import UserIdParam


@delete("/balance/{user_id:str}", status_code=200)
async def erase_account(ctx: AppContext, caller: ServiceCaller, user_id: UserIdParam) -> Erased:
    async with ctx.pool.acquire() as conn, conn.transaction():
        return await service.erase(conn, user_id)
