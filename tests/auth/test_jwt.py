"""JWT verification against a JWKS served over real HTTP (mana-auth's EdDSA keys)."""

from __future__ import annotations

import base64
import json
import time
import uuid

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.support import AUDIENCE, JwksServer

BALANCE = "/api/v1/credits/balance"


def _claims(jwks: JwksServer, **overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": f"u-{uuid.uuid4()}", "iss": jwks.url, "aud": AUDIENCE, "iat": now, "exp": now + 600,
    }  # fmt: skip
    claims.update(overrides)
    return claims


async def _status(client: httpx.AsyncClient, token: str) -> int:
    return (await client.get(BALANCE, headers={"Authorization": f"Bearer {token}"})).status_code


async def test_valid_eddsa_token_is_accepted(client: httpx.AsyncClient, jwks: JwksServer) -> None:
    assert await _status(client, jwks.mint({"sub": f"u-{uuid.uuid4()}"})) == 200


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unsigned(claims: dict[str, object], kid: str) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


def _hs256_with_public_key(jwks: JwksServer, claims: dict[str, object]) -> str:
    public = jwks.keys[jwks.current_kid].public_key()
    secret = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    header = {"alg": "HS256", "typ": "JWT", "kid": jwks.current_kid}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    import hashlib
    import hmac

    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _signed(jwks: JwksServer, claims: dict[str, object]) -> str:
    """Signed by the trusted key with exactly these claims (no defaults added)."""
    key = jwks.keys[jwks.current_kid]
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": jwks.current_kid})


def _tampered(jwks: JwksServer) -> str:
    token = jwks.mint({"sub": "victim"})
    header, _, signature = token.split(".")
    payload = _b64(json.dumps(_claims(jwks, sub="attacker")).encode())
    return f"{header}.{payload}.{signature}"


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda j: _unsigned(_claims(j), j.current_kid), id="alg-none"),
        pytest.param(lambda j: _hs256_with_public_key(j, _claims(j)), id="hs256-with-public-key"),
        pytest.param(lambda j: j.mint(_claims(j, exp=int(time.time()) - 120)), id="expired"),
        pytest.param(lambda j: j.mint(_claims(j, iss="https://evil.example")), id="wrong-issuer"),
        pytest.param(lambda j: j.mint(_claims(j, aud="other-audience")), id="wrong-audience"),
        pytest.param(lambda j: _signed(j, {k: v for k, v in _claims(j).items() if k != "exp"}), id="no-exp"),
        pytest.param(lambda j: _signed(j, {k: v for k, v in _claims(j).items() if k != "sub"}), id="no-sub"),
        pytest.param(_tampered, id="tampered-payload"),
        pytest.param(lambda j: "not.a.jwt", id="garbage"),
    ],
)
async def test_bad_tokens_are_401(client: httpx.AsyncClient, jwks: JwksServer, make: object) -> None:
    token = make(jwks)  # type: ignore[operator]
    response = await client.get(BALANCE, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


async def test_unknown_kid_is_401_and_refetches_at_most_once(
    client: httpx.AsyncClient, jwks: JwksServer
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    stranger = Ed25519PrivateKey.generate()
    before = jwks.requests
    for _ in range(5):
        token = jwt.encode(_claims(jwks), stranger, algorithm="EdDSA", headers={"kid": "unknown-kid"})
        assert await _status(client, token) == 401
    assert jwks.requests - before <= 1  # rate-limited refetch, not one per request


async def test_rotated_key_is_accepted_without_restart(
    client: httpx.AsyncClient, jwks: JwksServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mana_credits.auth import jwt as jwt_module

    monkeypatch.setattr(jwt_module, "REFETCH_MIN_SECONDS", 0.0)
    new_kid = jwks.rotate()
    assert await _status(client, jwks.mint({"sub": f"u-{uuid.uuid4()}"}, kid=new_kid)) == 200


async def test_rs256_and_es256_keys_from_the_jwks(
    client: httpx.AsyncClient, jwks: JwksServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mana_credits.auth import jwt as jwt_module

    monkeypatch.setattr(jwt_module, "REFETCH_MIN_SECONDS", 0.0)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_jwk = {**json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key())), "kid": "rsa-1", "alg": "RS256"}
    ec_jwk = {**json.loads(ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "ec-1", "alg": "ES256"}
    jwks.extra_jwks[:] = [rsa_jwk, ec_jwk]
    try:
        rs = jwt.encode(_claims(jwks), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
        es = jwt.encode(_claims(jwks), ec_key, algorithm="ES256", headers={"kid": "ec-1"})
        assert await _status(client, rs) == 200
        assert await _status(client, es) == 200
        # An RSA key may not verify a token that claims another algorithm.
        ps = jwt.encode(_claims(jwks), rsa_key, algorithm="PS256", headers={"kid": "rsa-1"})
        assert await _status(client, ps) == 401
    finally:
        jwks.extra_jwks.clear()
