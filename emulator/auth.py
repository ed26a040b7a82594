"""Sign-in (PAT, user name + password, connected-app JWT) and the session table.

Tokens are random and never logged. A session ends when it has been idle longer than
`idle_seconds`, on sign-out, when `expire_all()` is called, or when the same PAT signs in again
(Tableau allows one session per PAT).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from xml.etree.ElementTree import Element

import jwt

from . import model as m
from .errors import ApiError

# A connected-app JWT may be valid for at most 10 minutes (Tableau connected-app rules).
MAX_JWT_LIFETIME_SECONDS = 600


def unauthorized(code: str, detail: str, summary: str = "Signin Error") -> ApiError:
    return ApiError(401, code, summary, detail)


def bad_credentials(detail: str = "Error signing in to Tableau Server") -> ApiError:
    return unauthorized("401001", detail)


@dataclass
class Session:
    user_id: str
    last_use: float  # time.monotonic()
    pat_name: str | None = None


class Sessions:
    def __init__(self, idle_seconds: float = 14400) -> None:
        self.idle_seconds = idle_seconds
        self._by_token: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, user_id: str, pat_name: str | None = None) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            if pat_name is not None:
                # One session per PAT: signing in again ends the earlier session.
                for old in [t for t, s in self._by_token.items() if s.pat_name == pat_name]:
                    del self._by_token[old]
            self._by_token[token] = Session(user_id, time.monotonic(), pat_name)
        return token

    def touch(self, token: str | None) -> Session:
        if not token:
            raise unauthorized(
                "401000", "The request has no X-Tableau-Auth header.", "Missing Authentication"
            )
        now = time.monotonic()
        with self._lock:
            session = self._by_token.get(token)
            if session is not None and now - session.last_use > self.idle_seconds:
                del self._by_token[token]
                session = None
            if session is None:
                raise unauthorized(
                    "401002", "Invalid authentication credentials were provided.", "Unauthorized Access"
                )
            session.last_use = now
            return session

    def close(self, token: str | None) -> None:
        with self._lock:
            self._by_token.pop(token or "", None)

    def expire_all(self) -> int:
        with self._lock:
            count = len(self._by_token)
            self._by_token.clear()
            return count

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_token)


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and hmac.compare_digest(a.encode(), b.encode())


def authenticate(state: m.SiteState, credentials: Element) -> tuple[m.User, str | None]:
    """Check a `<credentials>` element; returns the user and the PAT name (for one-session-per-PAT)."""
    site = credentials.find("site")
    content_url = site.get("contentUrl", "") if site is not None else ""
    if content_url.lower() != state.content_url.lower():
        raise bad_credentials(f"Site '{content_url}' could not be found or you do not have access to it.")

    pat_name = credentials.get("personalAccessTokenName")
    if pat_name is not None:
        pat = state.pats.get(pat_name)
        if pat is None or not _same(pat.secret, credentials.get("personalAccessTokenSecret")):
            raise bad_credentials("The personal access token name or secret is not valid.")
        user = state.users.get(pat.user_id)
        if user is None:
            raise bad_credentials("The personal access token's user no longer exists.")
        return _active(user), pat_name

    token = credentials.get("jwt")
    if token is not None:
        return _active(_user_from_jwt(state, token)), None

    name = credentials.get("name")
    if name is not None:
        user = state.user_by_name(name)
        if user is None or user.password is None or not _same(user.password, credentials.get("password")):
            raise bad_credentials("The user name or password is not valid.")
        return _active(user), None

    raise bad_credentials("The request has no credentials.")


def _active(user: m.User) -> m.User:
    if user.site_role == "Unlicensed":
        raise bad_credentials("The user is unlicensed on this site.")
    return user


def _user_from_jwt(state: m.SiteState, token: str) -> m.User:
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise bad_credentials("The JSON web token is malformed.") from None
    app = state.connected_apps.get(str(unverified.get("iss", "")))
    if app is None or not app.enabled:
        raise bad_credentials("The connected app named by 'iss' is unknown or disabled.")
    if header.get("kid") != app.secret_id:
        raise bad_credentials("The JWT 'kid' header does not name the connected app's secret.")
    try:
        claims = jwt.decode(
            token,
            app.secret_value,
            algorithms=["HS256"],
            audience="tableau",
            issuer=app.client_id,
            options={"require": ["exp", "sub", "aud", "iss"]},
        )
    except jwt.PyJWTError as exc:
        raise bad_credentials(f"The JSON web token is not valid: {type(exc).__name__}.") from None
    if claims["exp"] - time.time() > MAX_JWT_LIFETIME_SECONDS + 30:  # 30 s of clock-skew grace
        raise bad_credentials("The JWT 'exp' claim is more than 10 minutes in the future.")
    user = state.user_by_name(str(claims["sub"]))
    if user is None:
        raise bad_credentials("The JWT 'sub' claim does not name a user on this site.")
    return user
