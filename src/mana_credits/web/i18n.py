"""The pages' words in German (the default: Mana is German-first) and English. `{name}` marks a value
filled in by the page script; keys the script needs travel to the browser as one JSON block."""

from __future__ import annotations

from typing import Any

LANGUAGES = ("de", "en")
DEFAULT = "de"

# key: (German, English)
TEXT: dict[str, tuple[str, str]] = {
    # layout
    "skip": ("Zum Inhalt springen", "Skip to content"),
    "nav_label": ("Hauptmenü", "Main menu"),
    "nav_credits": ("Credits", "Credits"),
    "nav_sync": ("Cloud Sync", "Cloud Sync"),
    "nav_gifts": ("Geschenke", "Gifts"),
    "sign_out": ("Abmelden", "Sign out"),
    "switch_language": ("English", "Deutsch"),
    "switch_language_label": ("Switch to English", "Auf Deutsch wechseln"),
    "banner_paused": (
        "Cloud Sync ist pausiert: Dein Guthaben hat für die Verlängerung nicht gereicht.",
        "Cloud Sync is paused: your credits did not cover the renewal.",
    ),
    "banner_buy": ("Credits kaufen", "Buy credits"),
    "banner_reactivate": ("Wieder aktivieren", "Reactivate"),
    "banner_reactivated": ("Cloud Sync ist wieder aktiv.", "Cloud Sync is active again."),
    "working": ("Wird ausgeführt …", "Working …"),
    "loading": ("Wird geladen …", "Loading …"),
    "error_generic": (
        "Das hat nicht geklappt. Bitte versuch es noch einmal.",
        "That did not work. Please try again.",
    ),
    "error_network": ("Der Server ist nicht erreichbar.", "The server cannot be reached."),
    "insufficient_credits": (
        "Nicht genug Credits: {required} nötig, {available} vorhanden.",
        "Not enough credits: {required} needed, {available} available.",
    ),
    "rate_limited": (
        "Zu viele Versuche. Bitte warte {seconds} Sekunden.",
        "Too many attempts. Please wait {seconds} seconds.",
    ),
    "credits_n": ("{n} Credits", "{n} credits"),
    # sign-in
    "signin_title": ("Anmelden", "Sign in"),
    "signin_sso_intro": (
        "Melde dich mit deinem Mana-Konto an. Bist du in diesem Browser schon in einer Mana-App angemeldet, "
        "genügt ein Klick.",
        "Sign in with your Mana account. If you are already signed in to a Mana app in this browser, "
        "one click is enough.",
    ),
    "signin_sso_button": ("Mit Mana-Konto anmelden", "Sign in with your Mana account"),
    "signin_sso_none": (
        "Du bist bei Mana nicht angemeldet. Melde dich zuerst in einer Mana-App in diesem Browser an "
        "und versuch es dann noch einmal.",
        "You are not signed in to Mana. Sign in to a Mana app in this browser first, then try again.",
    ),
    "signin_dev_intro": (
        "Entwicklungsmodus: Melde dich als beliebiger Nutzer an. Das Token signiert der lokale "
        "Entwicklungsschlüssel, wie beim Befehl „mana-credits token“.",
        "Development mode: sign in as any user. The token is signed with the local development key, "
        "like the command “mana-credits token”.",
    ),
    "field_user_id": ("Nutzer-ID", "User ID"),
    "field_email": ("E-Mail (optional)", "Email (optional)"),
    "field_name": ("Name (optional)", "Name (optional)"),
    "signin_dev_button": ("Anmelden als dieser Nutzer", "Sign in as this user"),
    "required": ("Bitte ausfüllen.", "Please fill this in."),
    "signed_out": ("Du bist abgemeldet.", "You are signed out."),
    # credits
    "credits_title": ("Credits", "Credits"),
    "balance": ("Guthaben", "Balance"),
    "reserved": ("Reserviert", "Reserved"),
    "reserved_hint": ("für laufende Aufträge vorgemerkt", "held for running jobs"),
    "credit_hint": ("1 Credit = 1 Cent", "1 credit = 1 euro cent"),
    "usage_title": ("Verbrauch der letzten 30 Tage", "Usage in the last 30 days"),
    "usage_total": ("Gesamt: {n} Credits", "Total: {n} credits"),
    "usage_none": (
        "In den letzten 30 Tagen wurden keine Credits verbraucht.",
        "No credits were used in the last 30 days.",
    ),
    "usage_chart_label": (
        "Balkendiagramm: Credits pro Tag und App, insgesamt {n} Credits",
        "Bar chart: credits per day and app, {n} credits in all",
    ),
    "usage_per_app": ("Verbrauch pro App", "Usage per app"),
    "usage_per_day": ("Verbrauch pro Tag", "Usage per day"),
    "col_app": ("App", "App"),
    "col_credits": ("Credits", "Credits"),
    "col_date": ("Datum", "Date"),
    "col_type": ("Art", "Type"),
    "col_description": ("Beschreibung", "Description"),
    "col_amount": ("Betrag", "Amount"),
    "history_title": ("Verlauf", "History"),
    "filter_type": ("Art", "Type"),
    "filter_all": ("Alle", "All"),
    "filter_app": ("App", "App"),
    "filter_app_hint": ("z. B. chat", "e.g. chat"),
    "filter_apply": ("Filtern", "Filter"),
    "load_more": ("Mehr laden", "Load more"),
    "history_empty": ("Keine Buchungen.", "No transactions."),
    "type_purchase": ("Kauf", "Purchase"),
    "type_usage": ("Verbrauch", "Usage"),
    "type_refund": ("Erstattung", "Refund"),
    "type_gift": ("Geschenk", "Gift"),
    "type_grant": ("Gutschrift", "Grant"),
    "type_reversal": ("Rückbuchung", "Reversal"),
    "type_expiry": ("Verfall", "Expiry"),
    # What the service itself wrote in a ledger row, said from the row's type and metadata (app.js).
    "tx_gift_made": ("Geschenk über {n} Credits", "Gift of {n} credits"),
    "tx_gift_from": ("Geschenk von {name}", "Gift from {name}"),
    "tx_gift_cancelled": ("Geschenk storniert: Credits zurück", "Gift cancelled: credits returned"),
    "tx_gift_expired": ("Geschenk abgelaufen: Credits zurück", "Gift expired: credits returned"),
    "tx_sync": ("Cloud Sync ({interval})", "Cloud Sync ({interval})"),
    "tx_purchase": ("Kauf von {n} Credits", "Purchase of {n} credits"),
    "tx_taken_back": (
        "Stripe-Erstattung oder -Rückbuchung: {n} Credits zurückgenommen",
        "Stripe refund or dispute: {n} credits taken back",
    ),
    "tx_restored": (
        "Stripe-Rückbuchung aufgehoben: {n} Credits zurück",
        "Stripe reversal undone: {n} credits back",
    ),
    # The apps the service books its own rows (and services' grants) to.
    "app_community": ("Mana-Community", "Mana community"),
    "app_gifts": ("Geschenke", "Gifts"),
    "app_sync": ("Cloud Sync", "Cloud Sync"),
    "app_mana-credits": ("Mana Credits", "Mana Credits"),
    "app_support": ("Support", "Support"),
    "app_system": ("System", "System"),
    "pack_saving": ("{pct} % günstiger", "{pct} % off"),
    "packages_title": ("Credits kaufen", "Buy credits"),
    "buy": ("Kaufen", "Buy"),
    "packages_none": ("Zurzeit gibt es keine Pakete.", "There are no packages right now."),
    "checkout_cancelled": (
        "Der Kauf wurde abgebrochen. Es wurde nichts berechnet.",
        "The purchase was cancelled. Nothing was charged.",
    ),
    "payments_unavailable": (
        "Käufe sind auf diesem Server nicht eingerichtet (kein Stripe-Schlüssel). Es wurde nichts berechnet.",
        "Purchases are not set up on this server (no Stripe key). Nothing was charged.",
    ),
    # purchase status
    "purchase_title": ("Dein Kauf", "Your purchase"),
    "purchase_pending": ("Die Zahlung wird bestätigt …", "Waiting for the payment to be confirmed …"),
    "purchase_completed": (
        "Abgeschlossen: {credits} Credits wurden gutgeschrieben.",
        "Completed: {credits} credits were added.",
    ),
    "purchase_failed": (
        "Die Zahlung ist fehlgeschlagen. Es wurde nichts gutgeschrieben.",
        "The payment failed. Nothing was added.",
    ),
    "purchase_other": ("Status: {status}", "Status: {status}"),
    "purchase_slow": (
        "Noch nicht bestätigt. Diese Seite prüft weiter; du kannst sie auch später wieder öffnen.",
        "Not confirmed yet. This page keeps checking; you can also come back later.",
    ),
    "purchase_not_found": ("Diesen Kauf gibt es nicht.", "This purchase does not exist."),
    "purchase_summary": ("{credits} Credits für {price}", "{credits} credits for {price}"),
    "back_to_credits": ("Zurück zu den Credits", "Back to credits"),
    # sync
    "sync_title": ("Cloud Sync", "Cloud Sync"),
    "sync_intro": (
        "Cloud Sync hält deine Daten auf allen Geräten aktuell. Bezahlt wird im Voraus mit Credits, "
        "pro Zeitraum.",
        "Cloud Sync keeps your data current on all your devices. It is paid in advance with credits, "
        "per period.",
    ),
    "sync_status": ("Status", "Status"),
    "sync_active": ("Aktiv", "Active"),
    "sync_inactive": ("Nicht aktiv", "Not active"),
    "sync_paused": ("Pausiert – zu wenig Credits", "Paused – not enough credits"),
    "sync_cancelled": ("Gekündigt – aktiv bis {date}", "Cancelled – active until {date}"),
    "sync_gifted": ("Geschenkt – ohne Kosten aktiv", "Gifted – active at no cost"),
    "sync_next_charge": (
        "Nächste Abbuchung am {date}: {amount} Credits",
        "Next charge on {date}: {amount} credits",
    ),
    "interval_legend": ("Zeitraum", "Billing period"),
    "interval_monthly": ("Monatlich", "Monthly"),
    "interval_quarterly": ("Vierteljährlich", "Quarterly"),
    "interval_yearly": ("Jährlich", "Yearly"),
    "interval_price": ("{amount} Credits", "{amount} credits"),
    "sync_activate": ("Aktivieren", "Activate"),
    "sync_change": ("Zeitraum ändern", "Change period"),
    "sync_cancel": ("Kündigen", "Cancel"),
    "sync_resume": ("Fortsetzen", "Resume"),
    "sync_activated": (
        "Cloud Sync ist aktiv. Abgebucht: {amount} Credits.",
        "Cloud Sync is active. Charged: {amount} credits.",
    ),
    "sync_resumed": ("Die Kündigung ist aufgehoben.", "The cancellation is undone."),
    "sync_changed": (
        "Ab {date} gilt der neue Zeitraum ({amount} Credits).",
        "The new period applies from {date} ({amount} credits).",
    ),
    "sync_cancelled_ok": (
        "Gekündigt. Cloud Sync bleibt bis {date} aktiv.",
        "Cancelled. Cloud Sync stays active until {date}.",
    ),
    "sync_already_active": ("Cloud Sync ist schon aktiv.", "Cloud Sync is already active."),
    "sync_not_active": ("Cloud Sync ist nicht aktiv.", "Cloud Sync is not active."),
    "sync_gifted_error": (
        "Cloud Sync ist dir geschenkt – es gibt nichts zu bezahlen oder zu kündigen.",
        "Cloud Sync is gifted to you – there is nothing to pay or cancel.",
    ),
    # gifts
    "gifts_title": ("Geschenke", "Gifts"),
    "create_title": ("Credits verschenken", "Give credits"),
    "field_amount": ("Credits", "Credits"),
    "field_recipient": ("E-Mail des Empfängers (optional)", "Recipient's email (optional)"),
    "recipient_hint": (
        "Dann kann nur das Konto mit dieser E-Mail-Adresse das Geschenk einlösen.",
        "Then only the account with this email address can redeem the gift.",
    ),
    "field_message": ("Nachricht (optional)", "Message (optional)"),
    "field_expiry": ("Gültig für (Tage)", "Valid for (days)"),
    "create_button": ("Geschenk erstellen", "Create gift"),
    "created_ok": (
        "Geschenk über {credits} Credits erstellt. Teile diesen Link:",
        "Gift of {credits} credits created. Share this link:",
    ),
    "gift_link": ("Link zum Geschenk", "Link to the gift"),
    "copy_link": ("Link kopieren", "Copy link"),
    "copied": ("Kopiert.", "Copied."),
    "created_title": ("Von dir erstellt", "Created by you"),
    "received_title": ("Von dir eingelöst", "Redeemed by you"),
    "none_created": ("Du hast noch keine Geschenke erstellt.", "You have not created any gifts yet."),
    "none_received": ("Du hast noch keine Geschenke eingelöst.", "You have not redeemed any gifts yet."),
    "gift_for": ("für {email}", "for {email}"),
    "gift_expires": ("gültig bis {date}", "valid until {date}"),
    "gift_status_active": ("Aktiv", "Active"),
    "gift_status_depleted": ("Eingelöst", "Redeemed"),
    "gift_status_expired": ("Abgelaufen", "Expired"),
    "gift_status_cancelled": ("Storniert", "Cancelled"),
    "gift_status_refunded": ("Erstattet", "Refunded"),
    "cancel_gift": ("Stornieren", "Cancel"),
    "cancelled_ok": (
        "Storniert: {credits} Credits wurden dir zurückgebucht.",
        "Cancelled: {credits} credits were returned to you.",
    ),
    "redeem_title": ("Geschenk einlösen", "Redeem a gift"),
    "field_code": ("Code", "Code"),
    "redeem_button": ("Einlösen", "Redeem"),
    "redeemed_ok": ("{credits} Credits wurden dir gutgeschrieben.", "{credits} credits were added for you."),
    "from_name": ("von {name}", "from {name}"),
    "gift_not_found": (
        "Diesen Code gibt es nicht. Prüfe die Schreibweise.",
        "This code does not exist. Check the spelling.",
    ),
    "gift_already_redeemed": ("Dieser Code wurde schon eingelöst.", "This code has already been redeemed."),
    "gift_cancelled": ("Dieses Geschenk wurde storniert.", "This gift was cancelled."),
    "gift_expired": ("Dieser Code ist abgelaufen.", "This code has expired."),
    "gift_wrong_recipient": (
        "Dieses Geschenk ist für eine andere E-Mail-Adresse bestimmt.",
        "This gift is meant for another email address.",
    ),
    "gift_own": (
        "Das ist dein eigenes Geschenk: Du kannst es stornieren, aber nicht einlösen.",
        "This is your own gift: you can cancel it, but not redeem it.",
    ),
    "gift_not_cancellable": (
        "Nur ein aktives Geschenk lässt sich stornieren.",
        "Only an active gift can be cancelled.",
    ),
    "err_totalCredits": ("Bitte 1 bis 10.000 Credits.", "Please 1 to 10,000 credits."),
    "err_targetEmail": ("Bitte eine gültige E-Mail-Adresse.", "Please enter a valid email address."),
    "err_message": ("Höchstens 500 Zeichen.", "At most 500 characters."),
    "err_expirationDays": ("Bitte 1 bis 365 Tage.", "Please 1 to 365 days."),
    "err_code": ("Bitte einen Code eingeben.", "Please enter a code."),
    # public gift page
    "gift_public_title": ("Ein Geschenk für dich", "A gift for you"),
    "gift_unknown_title": ("Geschenk nicht gefunden", "Gift not found"),
    "gift_from": ("{name} schenkt dir", "{name} gives you"),
    "gift_someone": ("Jemand", "Someone"),
    "gift_valid_until": ("Gültig bis {date}", "Valid until {date}"),
    "gift_sign_in_redeem": ("Anmelden und einlösen", "Sign in and redeem"),
    "gift_personal": (
        "Dieses Geschenk ist für eine bestimmte E-Mail-Adresse.",
        "This gift is for a particular email address.",
    ),
    "gift_gone": (
        "Dieses Geschenk ist nicht mehr einlösbar: {status}.",
        "This gift can no longer be redeemed: {status}.",
    ),
}

# What the page script needs (everything else is rendered on the server).
SCRIPT_KEYS = [
    key
    for key in TEXT
    if key.startswith(
        ("type_", "gift_status_", "gift_", "sync_", "purchase_", "err_", "usage_", "interval_", "tx_", "app_")
    )
] + [
    "working", "loading", "error_generic", "error_network", "insufficient_credits", "rate_limited",
    "credits_n", "signin_sso_none", "required", "history_empty", "cancelled_ok", "redeemed_ok", "from_name",
    "created_ok", "copied", "cancel_gift", "banner_reactivated", "payments_unavailable", "col_app",
    "col_credits", "col_date", "buy", "pack_saving",
]  # fmt: skip


def texts(lang: str) -> dict[str, str]:
    index = LANGUAGES.index(lang) if lang in LANGUAGES else 0
    return {key: pair[index] for key, pair in TEXT.items()}


def script_texts(lang: str) -> dict[str, Any]:
    words = texts(lang)
    return {key: words[key] for key in SCRIPT_KEYS}


def pick(cookie: str | None, accept_language: str | None) -> str:
    """The language cookie (set by the toggle) wins; else the first supported Accept-Language entry."""
    if cookie in LANGUAGES:
        return cookie
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, position, primary))
    return min(ranked)[2] if ranked else DEFAULT
