"""Gift errors: each names why a code cannot be redeemed or a gift cannot be cancelled."""

from __future__ import annotations

from uuid import UUID

from mana_credits.kit.errors import Conflict, CreditsError, Forbidden, NotFound


class GiftNotFound(NotFound):
    code = "gift_not_found"
    message = "Gift not found"


class GiftAlreadyRedeemed(Conflict):
    code = "gift_already_redeemed"
    message = "This gift has already been redeemed"


class GiftCancelled(Conflict):
    code = "gift_cancelled"
    message = "This gift was cancelled by its creator"


class GiftExpired(CreditsError):
    status = 410
    code = "gift_expired"
    message = "This gift has expired"


class GiftWrongRecipient(Forbidden):
    code = "gift_wrong_recipient"
    message = "This gift is meant for another email address"


class GiftOwn(CreditsError):
    status = 400
    code = "gift_own"
    message = "You cannot redeem your own gift; cancel it instead"


class GiftNotCancellable(Conflict):
    code = "gift_not_cancellable"
    message = "Only an active gift can be cancelled"


class Refused(Exception):
    """A redeem of an existing gift that may not happen: the error to answer and the status to record."""

    def __init__(self, error: CreditsError, gift_id: UUID, redemption_status: str) -> None:
        super().__init__(error.message)
        self.error = error
        self.gift_id = gift_id
        self.redemption_status = redemption_status
