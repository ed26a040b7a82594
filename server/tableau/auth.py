"""Turn configured credentials into TSC sign-in objects; mint connected-app JWTs.

A connected-app JWT is minted fresh for every sign-in (including re-sign-ins after a 401), so it
is always short-lived: HS256, header `kid` = secret id and `iss` = client id; claims `iss`, `sub`,
`aud`="tableau", `exp` (≤ 10 minutes), `jti`, `iat` and `scp`.
"""

from __future__ import annotations

import time
import uuid

import jwt
import tableauserverclient as TSC
from tableauserverclient.models.tableau_auth import Credentials as TSCCredentials

from server.config import ConnectedAppCredentials, Credentials, PasswordCredentials, PatCredentials


def mint_connected_app_jwt(creds: ConnectedAppCredentials, now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    claims = {
        "iss": creds.client_id,
        "sub": creds.username,
        "aud": "tableau",
        "iat": issued,
        "exp": issued + min(creds.token_lifetime_seconds, 600),
        "jti": str(uuid.uuid4()),
        "scp": list(creds.scopes),
    }
    headers = {"kid": creds.secret_id, "iss": creds.client_id}
    return jwt.encode(claims, creds.secret_value.get_secret_value(), algorithm="HS256", headers=headers)


def tsc_credentials(creds: Credentials, site_id: str) -> TSCCredentials:
    """A TSC credentials object for one sign-in. Never log it: TSC's repr shows part of a PAT secret."""
    if isinstance(creds, PatCredentials):
        return TSC.PersonalAccessTokenAuth(creds.name, creds.secret.get_secret_value(), site_id=site_id)
    if isinstance(creds, PasswordCredentials):
        return TSC.TableauAuth(creds.username, creds.password.get_secret_value(), site_id=site_id)
    if isinstance(creds, ConnectedAppCredentials):
        return TSC.JWTAuth(mint_connected_app_jwt(creds), site_id=site_id)
    raise TypeError(f"unknown credential kind {type(creds).__name__}")
