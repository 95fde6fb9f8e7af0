"""The service's own pages. Each is a server-rendered shell (words, forms, layout); the page script fills
it by calling the public JSON API with the user's Bearer token, exactly as any other client does, so
there is no second path to money. The token lives in the browser only (localStorage, as Mana's web apps
keep it); it never travels in a URL and the server never sets a cookie for it."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from mana_credits.auth import devkey
from mana_credits.config import Settings
from mana_credits.context import AppContext
from mana_credits.gifts.errors import GiftNotFound
from mana_credits.gifts.schemas import PublicGift
from mana_credits.kit.errors import NotFound, TooManyRequests
from mana_credits.ledger.schemas import TxType
from mana_credits.sync_billing.periods import PRICES
from mana_credits.web import i18n

if TYPE_CHECKING:
    from jinja2 import Environment

HERE = Path(__file__).parent
STATIC = HERE / "static"
LANG_COOKIE = "mana_lang"
BERLIN = ZoneInfo("Europe/Berlin")


@functools.cache
def _templates() -> Environment:
    """The page templates. jinja2 loads with the first page: a worker that only serves the API spares it."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    return Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


# Asset URLs carry a digest of the assets, so browsers may cache them for long and never run stale code.
ASSET_VERSION = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(STATIC.iterdir()))).hexdigest()[:12]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def security_headers(settings: Settings) -> dict[str, str]:
    """A strict policy for pages only (JSON answers keep theirs): our own script and style, no inline code,
    no plugins, no framing; the page may talk to this service and, for sign-in, to mana-auth."""
    connect = "'self'" if settings.is_development else f"'self' {_origin(settings.MANA_AUTH_URL)}"
    policy = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {connect}; form-action 'self'; base-uri 'none'; frame-ancestors 'none'; "
        "require-trusted-types-for 'script'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        # Gift pages carry their code in the path: never hand it to another site.
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-cache",
        "Vary": "Accept-Language, Cookie",
    }


def render(
    request: Request[Any, Any, Any], ctx: AppContext, template: str, *, status_code: int = 200, **values: Any
) -> Response[str]:
    settings = ctx.settings
    lang = i18n.pick(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))
    other = "en" if lang == "de" else "de"
    page = _templates().get_template(template)
    html = page.render(
        lang=lang,
        t=i18n.texts(lang),
        script_text=i18n.script_texts(lang),
        switch_href=f"/app/lang/{other}?next={request.url.path}",
        auth_mode="dev" if settings.is_development else "sso",
        auth_url="" if settings.is_development else settings.MANA_AUTH_URL.rstrip("/"),
        asset=ASSET_VERSION,
        **values,
    )
    return Response(
        html, status_code=status_code, media_type=MediaType.HTML, headers=security_headers(settings)
    )


@get("/app", include_in_schema=False)
async def credits_page(request: Request[Any, Any, Any], ctx: AppContext) -> Response[str]:
    return render(
        request,
        ctx,
        "credits.html",
        page="credits",
        title="credits_title",
        tx_types=[t.value for t in TxType],
        cancelled=request.query_params.get("checkout") == "cancelled",
    )


@get("/app/purchase/{purchase_id:str}", include_in_schema=False)
async def purchase_page(request: Request[Any, Any, Any], ctx: AppContext, purchase_id: str) -> Response[str]:
    return render(
        request, ctx, "purchase.html", page="purchase", title="purchase_title", purchase_id=purchase_id
    )


@get("/app/sync", include_in_schema=False)
async def sync_page(request: Request[Any, Any, Any], ctx: AppContext) -> Response[str]:
    prices = [(interval.value, price) for interval, price in PRICES.items()]
    return render(request, ctx, "sync.html", page="sync", title="sync_title", prices=prices)


@get("/app/gifts", include_in_schema=False)
async def gifts_page(request: Request[Any, Any, Any], ctx: AppContext) -> Response[str]:
    return render(request, ctx, "gifts.html", page="gifts", title="gifts_title")


@get("/g/{code:str}", include_in_schema=False)
async def public_gift_page(request: Request[Any, Any, Any], ctx: AppContext, code: str) -> Response[str]:
    """Rendered on the server: a gift link is read by messengers' link previews, which run no script.
    An unknown code is a 404 page; the page script only adds the redeem button."""
    from mana_credits.gifts.endpoints import public_gift

    gift, status = None, 404
    if len(code) <= 64:
        try:
            gift, status = (
                await public_gift(ctx, code, ip=request.client.host if request.client else None),
                200,
            )
        except GiftNotFound:
            pass
        except TooManyRequests:
            status = 429
    lang = i18n.pick(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))
    view = gift_view(gift, i18n.texts(lang), lang) if gift else None
    title = "gift_public_title" if gift else "gift_unknown_title"
    return render(
        request, ctx, "gift.html", page="gift", title=title, code=code, gift=view, status_code=status,
        limited=status == 429, url=f"{ctx.settings.WEB_APP_URL.rstrip('/')}/g/{quote(code)}",
    )  # fmt: skip


def gift_view(gift: PublicGift, t: dict[str, str], lang: str) -> dict[str, Any]:
    """The page's words for one gift, as the page script would write them (and the preview's)."""
    credits = f"{gift.total_credits:,}".replace(",", "." if lang == "de" else ",")
    amount = t["credits_n"].format(n=credits)
    sender = t["gift_from"].format(name=gift.creator_name or t["gift_someone"])
    gone = None
    if gift.status != "active" or gift.redeemed:
        status = "depleted" if gift.redeemed else gift.status
        gone = t["gift_gone"].format(status=t.get(f"gift_status_{status}", status))
    expires = None
    if gift.expires_at is not None:
        day = gift.expires_at.astimezone(BERLIN).strftime("%d.%m.%Y" if lang == "de" else "%d/%m/%Y")
        expires = t["gift_valid_until"].format(date=day)
    return {
        "sender": sender, "amount": amount, "message": gift.message, "expires": expires, "gone": gone,
        "personal": gift.type == "personalized", "preview_title": f"{sender} {amount}",
        "preview_text": gift.message or t["gift_public_title"],
    }  # fmt: skip


@get("/app/sign-in", include_in_schema=False)
async def sign_in_page(request: Request[Any, Any, Any], ctx: AppContext) -> Response[str]:
    return render(request, ctx, "sign_in.html", page="sign-in", title="signin_title")


@get("/app/lang/{lang:str}", include_in_schema=False)
async def switch_language(lang: str, next: str = "/app") -> Redirect:
    """The language toggle: remember the choice for a year and go back to the page."""
    if lang not in i18n.LANGUAGES:
        raise NotFound("Unknown language")
    # Only a path on this site (never `//other.site` or a scheme): no open redirect.
    target = next if next.startswith("/") and not next.startswith(("//", "/\\")) else "/app"
    cookie = Cookie(key=LANG_COOKIE, value=lang, max_age=365 * 86400, path="/", samesite="lax", httponly=True)
    return Redirect(target, status_code=303, cookies=[cookie])


@get("/", include_in_schema=False)
async def home() -> Redirect:
    """Whoever opens the bare address wants the pages, not a JSON 404."""
    return Redirect("/app", status_code=303)


@get("/settings/sync", include_in_schema=False)
async def resume_link() -> Redirect:
    """The pause mail links here (`{BASE_URL}/settings/sync`)."""
    return Redirect("/app/sync", status_code=303)


class DevSignIn(msgspec.Struct, rename="camel", kw_only=True):
    user_id: Annotated[str, msgspec.Meta(max_length=255, pattern=r"\S")]
    email: Annotated[str, msgspec.Meta(max_length=254)] | None = None
    name: Annotated[str, msgspec.Meta(max_length=100)] | None = None


class DevToken(msgspec.Struct):
    token: str


@post("/app/dev-token", status_code=200, include_in_schema=False)
async def dev_token(ctx: AppContext, data: DevSignIn) -> DevToken:
    """Development only (not routed otherwise): a token for anyone, signed by the local development key."""
    settings = ctx.settings
    key = devkey.load_or_create(settings.dev_key_path)
    token = devkey.mint(
        key,
        user_id=data.user_id,
        issuer=settings.jwt_issuers[0],
        audience=settings.JWT_AUDIENCE,
        email=data.email or None,
        name=data.name or None,
    )
    return DevToken(token=token)


def routes(settings: Settings) -> list[ControllerRouterHandler]:
    pages: list[ControllerRouterHandler] = [
        credits_page, purchase_page, sync_page, gifts_page, public_gift_page, sign_in_page, switch_language,
        resume_link, home,
    ]  # fmt: skip
    if settings.is_development:
        pages.append(dev_token)
    static = create_static_files_router(
        path="/app/static", directories=[STATIC], name="web-static", include_in_schema=False
    )
    return [*pages, static]
