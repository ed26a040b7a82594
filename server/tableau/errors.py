"""The errors the access layer raises, and the ONE place TSC/requests exceptions become them.

Every error is a `TableauError` subclass whose message a person and an LLM can act on: what
failed, on which site, and what to do next. Messages never contain secrets or session tokens
(the request headers that carry them never reach an exception message).

    NotFound            404: the item does not exist (or is not visible to the signed-in user)
    Forbidden           403: the signed-in user may not do this
    Conflict            409: the request conflicts with the item's state
    InvalidRequest      400 (and client-side checks): the request itself is wrong
    RateLimited         429 beyond the retry deadline; `.retry_after` seconds when known
    TableauUnavailable  5xx, connection resets, unreadable answers
    TimedOut            no answer within the request timeout
    BadConfiguration    bad credentials, connection refused, TLS failure, unsupported API version

`translate()` maps exceptions raised by TSC 0.42 or requests; the transport raises RateLimited and
TableauUnavailable itself when retries run out, because only it knows Retry-After and the attempts.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from xml.etree.ElementTree import ParseError

import anyio
import requests
import urllib3.exceptions
from tableauserverclient.server.endpoint.exceptions import (
    FailedSignInError,
    InternalServerError,
    NonXMLResponseError,
    NotSignedInError,
    RedirectError,
    ServerResponseError,
)
from tableauserverclient.server.exceptions import EndpointUnavailableError

try:  # defusedxml (used by TSC) raises its own ParseError subclass in some versions
    from defusedxml.ElementTree import ParseError as DefusedParseError
except ImportError:  # pragma: no cover
    DefusedParseError = ParseError  # type: ignore[misc,assignment]


class TableauError(Exception):
    """Base class: something Tableau (or the way to it) refused or failed. `str()` is the actionable message."""

    category = "tableau_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status  # HTTP status, when there was one
        self.code = code  # Tableau's error code (e.g. "404006"), when there was one
        self.retry_after = retry_after  # seconds, for RateLimited / TableauUnavailable when known

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class NotFound(TableauError):
    category = "not_found"


class Forbidden(TableauError):
    category = "forbidden"


class Conflict(TableauError):
    category = "conflict"


class InvalidRequest(TableauError):
    category = "invalid_request"


class RateLimited(TableauError):
    category = "rate_limited"


class TableauUnavailable(TableauError):
    category = "unavailable"


class TimedOut(TableauError):
    category = "timed_out"


class BadConfiguration(TableauError):
    category = "bad_configuration"


@dataclass(frozen=True)
class Context:
    """What the failing call was about, so messages can name it.

    `what` is a phrase such as "workbook 9f1c…" or "the job list"; `hint` is the next step to
    suggest when the item is not found.
    """

    what: str
    site: str  # the site's content URL ("" = Default)
    server_url: str
    hint: str | None = None

    @property
    def site_label(self) -> str:
        return f"site '{self.site}'" if self.site else "the Default site"


def short_id(item_id: str) -> str:
    """The first 8 characters of an id, for messages (the full id is in the call's arguments)."""
    return item_id if len(item_id) <= 12 else item_id[:8] + "…"


def _detail(exc: ServerResponseError | FailedSignInError) -> str:
    parts = [p.strip() for p in (getattr(exc, "summary", None), getattr(exc, "detail", None)) if p]
    text = ": ".join(dict.fromkeys(p for p in parts if p))
    text = re.sub(r"\s+", " ", text)
    return text[:300]


def _is_connect_failure(exc: BaseException) -> bool:
    """True when no connection could be made at all (refused, unknown host): retrying will not help."""
    seen: set[int] = set()
    stack: list[BaseException | object] = [exc]
    while stack:
        current = stack.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, (urllib3.exceptions.NewConnectionError, ConnectionRefusedError, socket.gaierror)):
            return True
        if isinstance(current, urllib3.exceptions.NameResolutionError):
            return True
        stack.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            stack.append(reason)
        if current.__cause__ is not None:
            stack.append(current.__cause__)
        if current.__context__ is not None:
            stack.append(current.__context__)
    return False


def translate(exc: BaseException, ctx: Context) -> TableauError | None:
    """Map an exception raised by TSC or requests to a TableauError; None if it is not one of theirs.

    This is the single mapping point: every call into TSC goes through `TableauClient._call`, which
    calls this. Programming errors (TypeError, KeyError, …) are not translated and propagate.
    """
    if isinstance(exc, TableauError):
        return exc
    what, site = ctx.what, ctx.site_label

    # -- transport ---------------------------------------------------------------------------
    if isinstance(exc, requests.exceptions.SSLError):
        return BadConfiguration(
            f"TLS verification failed for {ctx.server_url}. If the server uses a private certificate "
            "authority, set STEWARD_CA_BUNDLE to its PEM bundle (or STEWARD_TLS_VERIFY=false on a test "
            "server only)."
        )
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return TimedOut(
            f"Could not connect to Tableau at {ctx.server_url} within the request timeout while working on "
            f"{what}. Check TABLEAU_SERVER_URL and the network, then try again."
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return TimedOut(
            f"Tableau at {ctx.server_url} did not answer within the request timeout while working on {what}. "
            "The server may be overloaded; try again later, or raise STEWARD_REQUEST_TIMEOUT."
        )
    if isinstance(exc, requests.exceptions.ConnectionError):
        if _is_connect_failure(exc):
            return BadConfiguration(
                f"Cannot connect to Tableau at {ctx.server_url}: the connection was refused or the host is "
                "unknown. Check TABLEAU_SERVER_URL and that the server is running and reachable."
            )
        return TableauUnavailable(
            f"The connection to Tableau at {ctx.server_url} was lost while working on {what}. "
            "Try again in a moment."
        )
    if isinstance(exc, requests.exceptions.RequestException):
        return TableauUnavailable(f"The request to Tableau at {ctx.server_url} for {what} failed: {type(exc).__name__}.")
    if isinstance(exc, RedirectError):
        return BadConfiguration(f"Tableau at {ctx.server_url} answered with an unusable redirect: {exc}")

    # -- TSC ---------------------------------------------------------------------------------
    if isinstance(exc, FailedSignInError):
        code = getattr(exc, "code", None)
        url = str(getattr(exc, "url", "") or "")
        if url.endswith("/auth/signin"):
            return BadConfiguration(
                f"Tableau at {ctx.server_url} refused the sign-in to {site} ({_detail(exc) or code}). Check the "
                "credential variables and TABLEAU_SITE_ID (the site's content URL, empty for Default); a PAT "
                "may have expired or been revoked.",
                status=401,
                code=code,
            )
        return BadConfiguration(
            f"Tableau rejected the session for {what} on {site} even after signing in again "
            f"({_detail(exc) or code}). Another process may be using the same personal access token "
            "(Tableau allows one session per PAT); give this server its own token.",
            status=401,
            code=code,
        )
    if isinstance(exc, NotSignedInError):
        return BadConfiguration(f"Not signed in to Tableau at {ctx.server_url}; the client is closed or never connected.")
    if isinstance(exc, InternalServerError):
        status = exc.code if isinstance(exc.code, int) else None
        return TableauUnavailable(
            f"Tableau at {ctx.server_url} failed with HTTP {status or '5xx'} while working on {what} on {site}. "
            "This is a server-side problem; try again later.",
            status=status,
        )
    if isinstance(exc, EndpointUnavailableError):
        return BadConfiguration(
            f"{what} is not available with this server's REST API version ({exc}). "
            "The server is too old for this operation, or STEWARD_API_VERSION pins a version that is too low."
        )
    if isinstance(exc, ServerResponseError):
        return _from_response_error(exc, ctx)
    if isinstance(exc, NonXMLResponseError):
        return TableauUnavailable(
            f"Tableau at {ctx.server_url} answered {what} with an error that is not a Tableau REST response "
            "(perhaps a proxy or gateway page). Check TABLEAU_SERVER_URL, then try again later."
        )
    if isinstance(exc, (ParseError, DefusedParseError)):
        return TableauUnavailable(
            f"Tableau at {ctx.server_url} sent an unreadable answer for {what}. Check that TABLEAU_SERVER_URL "
            "points at Tableau Server or Tableau Cloud, then try again."
        )
    return None


def _from_response_error(exc: ServerResponseError, ctx: Context) -> TableauError:
    code = str(getattr(exc, "code", "") or "")
    detail = _detail(exc)
    what, site = ctx.what, ctx.site_label
    status = int(code[:3]) if code[:3].isdigit() else None
    if code.startswith("404"):
        hint = f"; {ctx.hint}" if ctx.hint else ""
        return NotFound(f"{what} not found on {site}{hint}.", status=404, code=code)
    if code == "403014":
        return InvalidRequest(f"Tableau rejected the page size for {what}: {detail}.", status=403, code=code)
    if code == "403157":
        return Forbidden(
            f"Tableau refused {what} on {site}: the feature is disabled ({detail}). A site administrator "
            "can enable it, or run it themselves.",
            status=403,
            code=code,
        )
    if code.startswith("403"):
        return Forbidden(
            f"The signed-in user may not perform {what} on {site} ({detail}). Ask a site administrator or "
            "the content owner.",
            status=403,
            code=code,
        )
    if code.startswith("409"):
        return Conflict(f"Tableau refused {what} on {site} because of a conflict: {detail}.", status=409, code=code)
    if code.startswith("429"):
        seconds = retry_hint_seconds(detail)
        when = f"retry in about {int(seconds)} s" if seconds else "retry in a minute"
        return RateLimited(
            f"Tableau is rate limiting requests on {site} ({detail}); {when}.",
            status=429,
            code=code,
            retry_after=seconds,
        )
    if code.startswith("400"):
        return InvalidRequest(f"Tableau rejected the request for {what} on {site}: {detail}.", status=400, code=code)
    if code.startswith("405"):
        return InvalidRequest(f"Tableau does not support {what} on {site} ({detail}).", status=405, code=code)
    return TableauError(
        f"Tableau refused {what} on {site} (code {code or 'unknown'}): {detail or 'no details given'}.",
        status=status,
        code=code or None,
    )


_HINT = re.compile(r"retry\s+after\s+(\d+(?:\.\d+)?)\s*(second|sec|s|minute|min|m|hour|h)\w*", re.IGNORECASE)


def retry_hint_seconds(text: str | None) -> float | None:
    """Seconds from Tableau Cloud's "Please retry after 29 minutes" body text, if present."""
    if not text:
        return None
    found = _HINT.search(text)
    if not found:
        return None
    amount, unit = float(found.group(1)), found.group(2).lower()
    if unit.startswith("h"):
        return amount * 3600
    if unit.startswith("m"):
        return amount * 60
    return amount


def first_error(group: BaseExceptionGroup) -> BaseException:
    """The most useful exception in a task group's ExceptionGroup: a TableauError if there is one,
    else the first that is not a sibling's cancellation."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    for exc in leaves:
        if isinstance(exc, TableauError):
            return exc
    for exc in leaves:
        if not isinstance(exc, anyio.get_cancelled_exc_class()):
            return exc
    return leaves[0] if leaves else group
