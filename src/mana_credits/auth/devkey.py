"""The development signing key: `mana-credits token` signs with it; only development mode trusts it."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt import PyJWK
from jwt.algorithms import OKPAlgorithm

DEV_KID = "mana-credits-dev"


def load_or_create(path: Path) -> Ed25519PrivateKey:
    """The key at `path`, created once: processes racing here (server workers, `mana-credits token`)
    all end up with the same key, since the file appears complete and only if it was absent."""
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".dev-key-", delete=False) as tmp:
            tmp.write(pem)  # NamedTemporaryFile is created 0600
        try:
            os.link(tmp.name, path)  # atomic, and never replaces a key another process made first
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp.name)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def public_jwk(key: Ed25519PrivateKey) -> PyJWK:
    data = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
    data.update(kid=DEV_KID, alg="EdDSA", use="sig")
    return PyJWK.from_dict(data)


def mint(
    key: Ed25519PrivateKey,
    *,
    user_id: str,
    issuer: str,
    audience: str,
    email: str | None = None,
    name: str | None = None,
    role: str = "user",
    ttl_seconds: int = 3600,
) -> str:
    now = int(time.time())
    claims = {
        "sub": user_id,
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + ttl_seconds,
        "role": role,
    }
    if email:
        claims["email"] = email
    if name:
        claims["name"] = name
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": DEV_KID})
