"""Credits errors, rendered by the one handler of kit.errors."""

from __future__ import annotations

from mana_credits.kit.errors import Conflict


class ReservationResolved(Conflict):
    code = "reservation_resolved"
    message = "Reservation is already committed or released"


class AmountExceedsReservation(Conflict):
    code = "amount_exceeds_reservation"
    message = "Commit amount exceeds the reserved amount"
