"""Payment errors, rendered by the one handler of kit.errors."""

from __future__ import annotations

from mana_credits.kit.errors import CreditsError


class PaymentsUnavailable(CreditsError):
    status = 503
    code = "payments_unavailable"
    message = "Payments are not configured on this server"


class PaymentProviderError(CreditsError):
    status = 502
    code = "payment_provider_error"
    message = "The payment provider could not be reached; nothing was charged, please try again"


class InvalidSignature(CreditsError):
    status = 400
    code = "invalid_signature"
    message = "Missing or invalid Stripe-Signature"
