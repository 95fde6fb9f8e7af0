"""Every JSON route answers a msgspec Struct (or a list of them), so its OpenAPI response schema is real and
the camelCase comes from `rename`, not from hand-built dicts. Routes that answer something else are listed."""

from __future__ import annotations

from typing import Any, get_args, get_origin

import msgspec
from litestar import Response

from tests.test_route_guards import app_for, routes

# Not JSON: HTML pages, redirects, static files, the metrics text, the API reference and its document.
NOT_A_STRUCT = {
    ("GET", "/openapi.json"): "the OpenAPI document (a JSON Schema, not a Struct)",
    ("GET", "/app"): "HTML",
    ("GET", "/app/purchase/{purchase_id:str}"): "HTML",
    ("GET", "/app/sync"): "HTML",
    ("GET", "/app/gifts"): "HTML",
    ("GET", "/g/{code:str}"): "HTML",
    ("GET", "/app/sign-in"): "HTML",
    ("GET", "/app/lang/{lang:str}"): "redirect",
    ("GET", "/settings/sync"): "redirect",
    ("GET", "/"): "redirect",
    ("GET", "/app/static/{file_path:path}"): "static file",
    ("HEAD", "/app/static/{file_path:path}"): "static file",
    ("GET", "/metrics"): "Prometheus text",
    ("GET", "/docs"): "HTML",
    ("GET", "/docs/openapi.json"): "the OpenAPI document",
    ("GET", "/docs/{path:str}"): "API reference page assets",
}


def answers_a_struct(annotation: Any) -> bool:
    """Struct, list[Struct], or Response[...] of either."""
    if get_origin(annotation) in (Response, list):
        (inner,) = get_args(annotation)
        return answers_a_struct(inner)
    return isinstance(annotation, type) and issubclass(annotation, msgspec.Struct)


def test_every_json_route_answers_a_struct() -> None:
    app_routes = routes(app_for("development"))
    assert set(NOT_A_STRUCT) - set(app_routes) == set(), "listed routes that no longer exist"
    answers = {
        key: handler.parsed_fn_signature.return_type.annotation
        for key, handler in app_routes.items()
        if key not in NOT_A_STRUCT
    }
    assert {key: answer for key, answer in answers.items() if not answers_a_struct(answer)} == {}


def test_the_check_tells_an_untyped_answer() -> None:
    class Answer(msgspec.Struct):
        ok: bool

    assert answers_a_struct(Answer) and answers_a_struct(Response[list[Answer]])
    assert not answers_a_struct(Response[Any]) and not answers_a_struct(dict[str, bool])
