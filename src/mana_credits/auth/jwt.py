"""JWT verification against mana-auth's JWKS (EdDSA first; RS256/ES256 too; never `none` or HS*).

Keys are cached; a token with an unknown `kid` triggers one refetch, at most every few seconds, so a key
rotation is picked up without restart and a flood of bad kids cannot hammer mana-auth. Verified tokens
are cached until their `exp`, which removes the signature check from repeat requests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any

import httpx
import jwt
from jwt import PyJWK

from mana_credits.auth.models import AuthUser
from mana_credits.kit.errors import Unauthorized
from mana_credits.kit.validation import MAX_USER_ID

log = logging.getLogger("mana_credits.auth")

# The algorithm each key type may be used with; anything else (none, HS*) is refused.
ALGORITHMS_BY_KTY: dict[str, tuple[str, ...]] = {"OKP": ("EdDSA",), "RSA": ("RS256",), "EC": ("ES256",)}
ALLOWED_ALGORITHMS = {alg for algs in ALGORITHMS_BY_KTY.values() for alg in algs}
REFETCH_MIN_SECONDS = 5.0
TOKEN_CACHE_SIZE = 10_000


class JwtVerifier:
    def __init__(
        self,
        jwks_url: str,
        *,
        issuers: list[str],
        audience: str,
        http: httpx.AsyncClient,
        extra_keys: list[PyJWK] | None = None,
    ) -> None:
        self.jwks_url = jwks_url
        self.issuers = issuers
        self.audience = audience
        self.http = http
        self._static_keys = {key.key_id or f"static-{i}": key for i, key in enumerate(extra_keys or [])}
        self._keys: dict[str, PyJWK] = dict(self._static_keys)
        self._fetched_at = float("-inf")
        self._fetch_lock = asyncio.Lock()
        self._verified: OrderedDict[str, tuple[AuthUser, float]] = OrderedDict()

    async def verify(self, token: str) -> AuthUser:
        cached = self._verified.get(token)
        if cached is not None and cached[1] > time.time():
            return cached[0]
        claims = await self._decode(token)
        user = _user_from(claims)
        self._remember(token, user, float(claims["exp"]))
        return user

    def _remember(self, token: str, user: AuthUser, exp: float) -> None:
        self._verified[token] = (user, exp)
        if len(self._verified) > TOKEN_CACHE_SIZE:
            self._verified.popitem(last=False)

    async def _decode(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("Invalid token") from exc
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
            raise Unauthorized("Invalid token algorithm")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Unauthorized("Invalid token key id")
        key = await self._key_for(kid, alg)
        if key is None:
            raise Unauthorized("Unknown signing key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=list(ALGORITHMS_BY_KTY.get(key.key_type or "", ())),
                audience=self.audience,
                issuer=self.issuers,
                options={"require": ["exp", "sub"]},
                leeway=10,
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("Token expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"Invalid token: {exc}") from exc
        if not isinstance(claims.get("sub"), str) or not 0 < len(claims["sub"]) <= MAX_USER_ID:
            raise Unauthorized("Invalid token subject")
        return claims

    async def _key_for(self, kid: str | None, alg: str) -> PyJWK | None:
        key = self._pick(kid, alg)
        if key is None:
            await self._refresh()
            key = self._pick(kid, alg)
        return key

    def _pick(self, kid: str | None, alg: str) -> PyJWK | None:
        if kid is not None:
            return self._keys.get(kid)
        candidates = [k for k in self._keys.values() if alg in ALGORITHMS_BY_KTY.get(k.key_type or "", ())]
        return candidates[0] if len(candidates) == 1 else None

    async def _refresh(self) -> None:
        async with self._fetch_lock:
            if time.monotonic() - self._fetched_at < REFETCH_MIN_SECONDS:
                return
            self._fetched_at = time.monotonic()
            try:
                response = await self.http.get(self.jwks_url, timeout=5.0)
                response.raise_for_status()
                fetched = _parse_jwks(response.json())
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("could not fetch JWKS from %s: %s", self.jwks_url, exc)
                return
            self._keys = {**fetched, **self._static_keys}


def _parse_jwks(data: Any) -> dict[str, PyJWK]:
    keys: dict[str, PyJWK] = {}
    for i, item in enumerate(data.get("keys", []) if isinstance(data, dict) else []):
        if item.get("kty") not in ALGORITHMS_BY_KTY:
            continue
        try:
            key = PyJWK.from_dict(item)
        except jwt.PyJWTError as exc:
            log.warning("skipping unusable JWKS key %s: %s", item.get("kid"), exc)
            continue
        keys[key.key_id or f"jwks-{i}"] = key
    return keys


def _user_from(claims: dict[str, Any]) -> AuthUser:
    role = claims.get("role")
    return AuthUser(
        id=claims["sub"],
        # An address the token says is unverified proves nothing (personalized gifts go by it).
        email=claims.get("email")
        if isinstance(claims.get("email"), str) and claims.get("email_verified") is not False
        else None,
        name=claims.get("name") if isinstance(claims.get("name"), str) else None,
        role=role if role in ("user", "admin", "service") else "user",
    )
