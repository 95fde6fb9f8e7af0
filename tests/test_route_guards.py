"""Every route names its guard. Litestar runs a dependency only when the handler (or a dependency it uses)
asks for it, so a router's `dependencies=USER` does not protect a handler that forgets the `user` parameter.
This test reads what each handler really resolves and fails on any route that is neither guarded nor on the
public allow-list below; the live test then calls every guarded route without credentials."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Callable
from typing import Any, Literal

import httpx
import pytest
from litestar import Litestar
from litestar.di import Provide
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute

from mana_credits.app import create_app
from mana_credits.auth import dependencies
from mana_credits.config import Settings
from tests.support import Api, service_headers

# The guard a dependency name stands for, and the provider that must stand behind the name.
GUARDS: dict[str, tuple[str, Callable[..., Any]]] = {
    "user": ("user", dependencies.provide_user),
    "admin": ("admin", dependencies.provide_admin),
    "caller": ("service", dependencies.provide_caller),
}

# Open on purpose. Anything added here is readable and writable by the whole internet.
PUBLIC: dict[tuple[str, str], str] = {
    ("GET", "/health"): "liveness probe",
    ("GET", "/ready"): "readiness probe",
    ("GET", "/metrics"): "Prometheus scrape (kept off the public ingress)",
    ("GET", "/openapi.json"): "API description",
    ("GET", "/docs"): "API reference page",
    ("GET", "/docs/openapi.json"): "API description",
    ("GET", "/docs/{path:str}"): "API reference page assets",
    ("GET", "/api/v1/credits/packages"): "price list",
    ("GET", "/api/v1/credits/operations"): "operation cost list",
    ("GET", "/api/v1/gifts/{code:str}"): "a gift's public preview (rate-limited per client)",
    # Web pages: HTML shells; their data comes from the API with the user's own token.
    ("GET", "/app"): "web page",
    ("GET", "/app/purchase/{purchase_id:str}"): "web page",
    ("GET", "/app/sync"): "web page",
    ("GET", "/app/gifts"): "web page",
    ("GET", "/app/sign-in"): "web page",
    ("GET", "/app/lang/{lang:str}"): "language cookie and redirect",
    ("GET", "/g/{code:str}"): "public gift page",
    ("GET", "/settings/sync"): "old link, redirects to /app/sync",
    ("GET", "/"): "redirects to the pages (/app)",
    ("GET", "/app/static/{file_path:path}"): "static assets",
    ("HEAD", "/app/static/{file_path:path}"): "static assets",
    ("POST", "/app/dev-token"): "development only; the test below checks it is not routed in production",
}

# Authenticated by a signature over the body, checked inside the handler before anything is read.
SIGNED: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/webhooks/stripe"): "verify_signature",
}

# The guard follows from the path, so a reader (and this test) can tell who may call a route from its URL.
PREFIX_GUARD = [
    (re.compile(r"^/api/v1/internal/"), "service"),
    (re.compile(r"^/api/v1/admin/"), "admin"),
    (re.compile(r"^/api/v1/(credits|gifts|sync)(/|$)"), "user"),
]


def app_for(env: Literal["production", "development"]) -> Litestar:
    return create_app(
        Settings(MANA_CREDITS_ENV=env, DATABASE_URL="postgresql://unused/unused", MANA_SERVICE_KEY="k" * 32)
    )


def params_of(fn: Callable[..., Any]) -> set[str]:
    return set(inspect.signature(fn).parameters)


def resolved_names(handler: HTTPRouteHandler) -> set[str]:
    """The dependency names a request to this handler really resolves (asked for, directly or through
    another dependency)."""
    provided: dict[str, Provide] = handler.resolve_dependencies()
    todo = list(set(handler.parsed_fn_signature.parameters) & set(provided))
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(params_of(provided[name].dependency) & set(provided))
    for name in seen & set(GUARDS):
        assert provided[name].dependency is GUARDS[name][1], (
            f"{handler}: `{name}` is provided by another function"
        )
    return seen


def calls(fn: Callable[..., Any], name: str) -> bool:
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called == name:
                return True
    return False


def routes(app: Litestar) -> dict[tuple[str, str], HTTPRouteHandler]:
    found: dict[tuple[str, str], HTTPRouteHandler] = {}
    for route in app.routes:
        assert isinstance(route, HTTPRoute), f"{route.path}: not an HTTP route; give it a guard rule here"
        for handler in route.route_handlers:
            for method in handler.http_methods:
                if method == "OPTIONS":  # CORS preflight, answered by Litestar without running a handler
                    continue
                found[(method, route.path)] = handler
    return found


def guard_of(key: tuple[str, str], handler: HTTPRouteHandler) -> str:
    guards = {GUARDS[name][0] for name in resolved_names(handler) & set(GUARDS)}
    assert len(guards) <= 1, f"{key}: more than one guard {guards}"
    if guards:
        return guards.pop()
    if key in SIGNED:
        assert calls(handler.fn, SIGNED[key]), f"{key}: does not call {SIGNED[key]}"
        return "signature"
    return "public"


def test_every_route_is_guarded_or_listed_public() -> None:
    table = {key: guard_of(key, handler) for key, handler in routes(app_for("development")).items()}
    open_routes = {key for key, guard in table.items() if guard == "public"}
    assert open_routes - set(PUBLIC) == set(), (
        "routes without a guard (add the guard, not an allow-list entry)"
    )
    assert set(PUBLIC) - open_routes == set(), "allow-list entries that are no longer public routes"
    assert {key for key, guard in table.items() if guard == "signature"} == set(SIGNED)
    for (method, path), guard in table.items():
        if guard in ("public", "signature"):
            continue
        expected = next((want for pattern, want in PREFIX_GUARD if pattern.search(path)), None)
        assert guard == expected, f"{method} {path}: guarded by {guard}, its path says {expected}"


def test_the_guard_detection_sees_a_forgotten_parameter() -> None:
    """A handler under a USER router that does not name `user` is open: the check above must say so."""
    from litestar import Router, get

    @get("/forgot")
    async def forgot() -> dict[str, str]:
        return {}

    @get("/remembered")
    async def remembered(user: Any) -> dict[str, str]:
        return {}

    router = Router("/api/v1/credits", route_handlers=[forgot, remembered], dependencies=dependencies.USER)
    app = Litestar([router], openapi_config=None)
    table = {key: guard_of(key, handler) for key, handler in routes(app).items()}
    assert table == {
        ("GET", "/api/v1/credits/forgot"): "public",
        ("GET", "/api/v1/credits/remembered"): "user",
    }


def test_dev_token_is_not_routed_in_production() -> None:
    assert ("POST", "/app/dev-token") not in routes(app_for("production"))


def concrete(path: str) -> str:
    """A path template with every parameter filled by a harmless value."""
    return re.sub(r"\{(\w+):\w+\}", lambda m: "00000000-0000-0000-0000-000000000000", path)


GUARDED = sorted(
    (key, guard)
    for key, handler in routes(app_for("production")).items()
    if (guard := guard_of(key, handler)) in ("user", "admin", "service")
)


TAKES_BODY = {
    key
    for key, handler in routes(app_for("production")).items()
    if "data" in handler.parsed_fn_signature.parameters
}


def refused(response: httpx.Response, status: int, code: str, key: tuple[str, str]) -> None:
    # Litestar validates a body before it resolves dependencies, so the empty body may be refused first.
    if response.status_code == 400 and key in TAKES_BODY:
        assert response.json()["code"] == "validation_error"
        return
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


@pytest.mark.parametrize(("key", "guard"), GUARDED, ids=[f"{m} {p}" for (m, p), _ in GUARDED])
async def test_guarded_route_refuses_the_wrong_caller(
    client: httpx.AsyncClient, api: Api, key: tuple[str, str], guard: str
) -> None:
    method, url = key[0], concrete(key[1])
    refused(await client.request(method, url, json={}), 401, "unauthorized", key)
    if guard == "service":
        user_token = await client.request(method, url, json={}, headers=api.actor().headers)
        refused(user_token, 401, "unauthorized", key)
        wrong_key = await client.request(method, url, json={}, headers=service_headers(key="x" * 40))
        refused(wrong_key, 401, "unauthorized", key)
    else:
        service_key = await client.request(method, url, json={}, headers=service_headers())
        refused(service_key, 401, "unauthorized", key)
    if guard == "admin":
        plain_user = await client.request(method, url, json={}, headers=api.actor().headers)
        refused(plain_user, 403, "forbidden", key)
