"""The price list of chargeable operations, served at GET /credits/operations."""

from __future__ import annotations

from mana_credits.credits.schemas import Operation

_AI = [
    ("chat_gpt4", "Chat GPT-4", 5),
    ("chat_claude", "Chat Claude", 5),
    ("chat_gemini", "Chat Gemini", 2),
    ("chat_qwen", "Chat Qwen", 2),
    ("image_generation", "Image generation", 10),
    ("image_upscale", "Image upscale", 5),
    ("quick_research", "Quick research", 5),
    ("deep_research", "Deep research", 25),
    ("food_analysis", "Food analysis", 3),
    ("deck_generation", "Deck generation", 20),
    ("card_generation", "Card generation", 2),
    ("quote_explanation", "Quote explanation", 2),
    ("plant_analysis", "Plant analysis", 2),
    ("guide_generation", "Guide generation", 5),
    ("context_generation", "Context generation", 2),
    ("smart_scheduling", "Smart scheduling", 2),
    ("suggestions", "Suggestions", 2),
    ("enrichment", "Enrichment", 2),
]
_PREMIUM = [
    ("cloud_sync_monthly", "Cloud sync (monthly)", 30, "month"),
    ("cloud_sync_quarterly", "Cloud sync (quarterly)", 90, "quarter"),
    ("cloud_sync_yearly", "Cloud sync (yearly)", 360, "year"),
    ("pdf_export", "PDF export", 1, None),
    ("premium_theme", "Premium theme", 3, None),
    ("bulk_import", "Bulk import", 1, "50 items"),
]

OPERATIONS: list[Operation] = [Operation(id=i, name=n, category="ai", credits=c) for i, n, c in _AI] + [
    Operation(id=i, name=n, category="premium", credits=c, unit=u) for i, n, c, u in _PREMIUM
]
