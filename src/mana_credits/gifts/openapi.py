"""The gift routes' part of the published OpenAPI document (kit.openapi applies it)."""

from __future__ import annotations

from typing import Any

from mana_credits.kit.validation import EMAIL, EMAIL_SPACE

# As gifts.service checks it (surrounding spaces are trimmed first).
EMAIL_PATTERN = f"^{EMAIL_SPACE}*{EMAIL}{EMAIL_SPACE}*$"
BLANK = f"^{EMAIL_SPACE}*$"


def adjust(schema: dict[str, Any]) -> None:
    _conditional_email(schema["components"]["schemas"])
    _gift_aliases(schema["components"]["schemas"])


def _conditional_email(schemas: dict[str, Any]) -> None:
    """targetEmail: required (an address) for a personalized gift, empty or absent for a simple one."""
    create = schemas.get("CreateGift")
    if create is None:
        return
    create["allOf"] = [
        {
            "if": {"properties": {"type": {"const": "personalized"}}, "required": ["type"]},
            "then": {"required": ["targetEmail"],
                     "properties": {"targetEmail": {"type": "string", "pattern": EMAIL_PATTERN}}},
            "else": {"properties": {"targetEmail": {"oneOf": [{"type": "null"},
                                                              {"type": "string", "pattern": BLANK}]}}},
        }
    ]  # fmt: skip


# The web app's spellings beside ours (gifts/schemas.py): what each alias means.
GIFT_ALIASES = {
    "CreateGift": {
        "totalCredits": "The gift's credits; required unless its alias `credits` is given.",
        "credits": "Alias of totalCredits (the web app); given with totalCredits, they must agree.",
        "expirationDays": "Days until the gift expires (default 90); or `expiresAt`, not both.",
        "expiresAt": "Alias for the expiry (the web app): an instant in the next 365 days, instead of "
        "expirationDays.",
    },
    "Gift": {"url": "Alias of shortUrl (the web app)."},
    "PublicGift": {"isPersonalized": "type is personalized (the web app)."},
    "RedeemResult": {
        "credits": "Alias of creditsReceived (the web app).",
        "newBalance": "The redeemer's balance after the gift (the web app).",
    },
    "Redemption": {
        "credits": "Alias of creditsReceived (the web app).",
        "redeemedAt": "Alias of createdAt (the web app).",
    },
}


def _gift_aliases(schemas: dict[str, Any]) -> None:
    """Describe the aliases; a gift needs totalCredits or credits (not null), and one way to expire."""
    for name, fields in GIFT_ALIASES.items():
        for field, description in fields.items():
            if name in schemas:
                schemas[name]["properties"][field]["description"] = description
    create = schemas.get("CreateGift")
    if create is None:
        return
    create.setdefault("allOf", []).extend(
        [
            {"anyOf": [{"required": [field], "properties": {field: {"type": "integer"}}}
                       for field in ("totalCredits", "credits")]},
            {"not": {"required": ["expiresAt", "expirationDays"],
                     "properties": {"expiresAt": {"type": "string"}, "expirationDays": {"type": "integer"}}}},
        ]
    )  # fmt: skip
