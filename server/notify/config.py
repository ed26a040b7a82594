"""The `notifications:` section of policies.yaml: where events go, in which format, for which events.

    notifications:
      console_url: https://steward.example.com/console/    # optional: links in messages
      max_attempts: 6                                       # per delivery, then a recorded give-up
      queue_size: 1000                                      # per target; beyond it an event is dropped, and recorded
      targets:
        - name: ops-webhook
          format: webhook                 # webhook | slack | teams
          url_env: STEWARD_OPS_WEBHOOK_URL
          secret_env: STEWARD_OPS_WEBHOOK_SECRET   # webhook only: the HMAC key; or secret_file: PATH
          events: [created, approved, denied, executed, failed, expired]   # default: all
        - name: approvers-slack
          format: slack
          url_file: /run/secrets/slack_webhook_url                      # or url_env: NAME
          events: [created, executed, failed]
      slack_interactions:                 # optional: the Approve/Deny buttons (server/integrations/slack.py)
        signing_secret_env: STEWARD_SLACK_SIGNING_SECRET     # or signing_secret_file: PATH
        team_id: T0123ABCD                # optional: only this workspace
        users: {U0123ABCD: site-admin}    # Slack member id -> approver principal

Secrets never live in the policy file: a `secret:` or `signing_secret:` key is refused, and so is a literal `url:` for Slack
or Teams (their URL is the credential) or one carrying a token (a query string, user:password@, or
a long opaque path segment). A plain receiver URL (`url: https://hooks.internal/steward`) is allowed
for `webhook`, whose deliveries are authenticated by the signature.

`parse_notifications(raw)` validates the section alone; `resolve_targets(spec)` reads the URLs and
secrets from the environment or files when the server starts, reporting every problem at once and
never echoing a value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from server.notify.events import EVENT_KINDS

__all__ = [
    "DeliveryTarget",
    "NotificationTargetSpec",
    "NotificationsError",
    "NotificationsSpec",
    "looks_like_token",
    "parse_notifications",
    "redact_url",
    "resolve_targets",
]

Format = Literal["webhook", "slack", "teams"]
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TARGET_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# Hosts whose webhook URL path is itself the credential (Slack, Teams connectors and Workflows).
SECRET_PATH_HOSTS = (
    "hooks.slack.com",
    "webhook.office.com",
    "outlook.office.com",
    "logic.azure.com",
    "api.powerplatform.com",
)
REDACTED = "[REDACTED]"
_TOKEN_SEGMENT = re.compile(r"^[A-Za-z0-9_~=+%.-]{16,}$")
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
USE_ENV_OR_FILE = "put it in an environment variable ({key}_env: NAME) or a file ({key}_file: PATH)"


class NotificationsError(ValueError):
    """The notifications section, or a secret it points to, is unusable. `problems` has one line per issue.

    (Not PolicyError: server.governance.policy will embed NotificationsSpec, so this module must not import it.)
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


def looks_like_token(segment: str) -> bool:
    """A URL path segment that is probably a credential: long, opaque, mixing letters and digits."""
    return (
        bool(_TOKEN_SEGMENT.match(segment))
        and any(c.isdigit() for c in segment)
        and any(c.isalpha() for c in segment)
    )


def _secret_host(host: str) -> bool:
    return any(host == h or host.endswith("." + h) for h in SECRET_PATH_HOSTS)


def redact_url(url: str) -> str:
    """`url` safe to record: no user:password@, no query, and no path where the path is the credential
    (hooks.slack.com, Teams) or a segment that looks like a token. 'https://hooks.slack.com/[REDACTED]'."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return REDACTED
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    path = parts.path
    if _secret_host(host.lower()) and path.strip("/"):
        path = "/" + REDACTED
    else:
        path = "/".join(REDACTED if looks_like_token(s) else s for s in path.split("/"))
    return f"{parts.scheme}://{netloc}{path}" + (f"?{REDACTED}" if parts.query else "")


def _literal_url_problem(fmt: Any, url: Any) -> str | None:
    if not isinstance(url, str):
        return "url must be a string"
    if fmt in ("slack", "teams"):
        return (
            f"a {fmt} webhook URL is its own credential: never write it in the policy file; "
            + USE_ENV_OR_FILE.format(key="url")
        )
    try:
        parts = urlsplit(url)
    except ValueError:
        return "url is not a valid URL"
    if (
        parts.query
        or parts.username
        or parts.password
        or any(looks_like_token(s) for s in parts.path.split("/"))
        or _secret_host((parts.hostname or "").lower())
    ):
        return (
            "this url carries a token (a query string, user:password@ or an opaque path segment); "
            + USE_ENV_OR_FILE.format(key="url")
        )
    return None


def _str_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _refuse_literal(data: Any, key: str) -> None:
    if isinstance(data, Mapping) and key in data:
        raise ValueError(
            f"a literal '{key}:' is not allowed in the policy file; " + USE_ENV_OR_FILE.format(key=key)
        )


def _check_env_names(model: BaseModel, *keys: str) -> None:
    for key in keys:
        value = getattr(model, key)
        if value and not ENV_NAME.match(value):
            raise ValueError(f"{key} must name an environment variable (letters, digits, '_')")


def _matching(pattern: str, hint: str) -> AfterValidator:
    """A string check whose error is `hint` (a plain sentence), not the regex."""
    regex = re.compile(pattern)

    def check(value: str) -> str:
        if not regex.match(value):
            raise ValueError(hint)
        return value

    return AfterValidator(check)


TargetName = Annotated[
    str, _matching(TARGET_NAME, "a target name uses letters, digits, '_', '.' and '-' (at most 64)")
]
SlackTeamId = Annotated[
    str,
    _matching(r"^[TE][A-Z0-9]{2,31}$", "a Slack team id looks like T0123ABCD (or E... for Enterprise Grid)"),
]
SlackUserId = Annotated[
    str,
    _matching(
        r"^[UW][A-Z0-9]{2,31}$",
        "a Slack user id looks like U0123ABCD (in Slack: the user's profile, 'Copy member ID')",
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NotificationTargetSpec(_Strict):
    name: TargetName
    format: Format
    url: str | None = None
    url_env: str | None = None
    url_file: str | None = None
    secret_env: str | None = None
    secret_file: str | None = None
    events: Annotated[list[str], BeforeValidator(_str_list)] = list(EVENT_KINDS)
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _no_secrets_in_the_file(cls, data: Any) -> Any:
        # Runs on the raw mapping, so the error's input is the mapping and no value is ever echoed.
        _refuse_literal(data, "secret")
        if isinstance(data, Mapping) and data.get("url") is not None:
            problem = _literal_url_problem(data.get("format"), data["url"])
            if problem:
                raise ValueError(problem)
        return data

    @model_validator(mode="after")
    def _consistent(self) -> NotificationTargetSpec:
        sources = [k for k in ("url", "url_env", "url_file") if getattr(self, k)]
        if len(sources) != 1:
            raise ValueError(
                f"target '{self.name}' needs exactly one of url_env, url_file or url "
                f"(has {', '.join(sources) or 'none'})"
            )
        secrets_given = [k for k in ("secret_env", "secret_file") if getattr(self, k)]
        if self.format == "webhook" and len(secrets_given) != 1:
            raise ValueError(
                f"webhook target '{self.name}' needs exactly one of secret_env or secret_file "
                "(deliveries are signed with it)"
            )
        if self.format != "webhook" and secrets_given:
            raise ValueError(
                f"{self.format} target '{self.name}' takes no secret: {self.format} incoming "
                "webhooks are not signed (the URL is the credential)"
            )
        _check_env_names(self, "url_env", "secret_env")
        unknown = [e for e in self.events if e not in EVENT_KINDS]
        if unknown or not self.events:
            raise ValueError(
                f"target '{self.name}': unknown events {unknown or '(none listed)'}; "
                f"choose from {', '.join(EVENT_KINDS)}"
            )
        return self


class SlackInteractionsSpec(_Strict):
    """Approve/Deny buttons in Slack: the app's signing secret and which Slack users are which approvers.

    `users` maps Slack user ids (U.../W...) to approver principals of the policy; the policy loader checks
    that each principal exists and may approve."""

    signing_secret_env: str | None = None
    signing_secret_file: str | None = None
    team_id: SlackTeamId | None = None
    users: dict[SlackUserId, Annotated[str, Field(min_length=1)]]

    @model_validator(mode="before")
    @classmethod
    def _no_secret_in_the_file(cls, data: Any) -> Any:
        _refuse_literal(data, "signing_secret")
        return data

    @model_validator(mode="after")
    def _one_secret_source(self) -> SlackInteractionsSpec:
        if bool(self.signing_secret_env) == bool(self.signing_secret_file):
            raise ValueError(
                "slack_interactions needs exactly one of signing_secret_env or signing_secret_file"
            )
        _check_env_names(self, "signing_secret_env")
        if not self.users:
            raise ValueError("slack_interactions.users maps no Slack user to an approver")
        return self


class NotificationsSpec(_Strict):
    console_url: str | None = None
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 6
    queue_size: Annotated[int, Field(ge=1, le=100_000)] = 1000
    targets: list[NotificationTargetSpec] = []
    slack_interactions: SlackInteractionsSpec | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> NotificationsSpec:
        names = [t.name for t in self.targets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate target names: {', '.join(dupes)}")
        if self.console_url is not None and urlsplit(self.console_url).scheme not in ("http", "https"):
            raise ValueError("console_url must be an http(s) URL")
        return self


def _where(loc: tuple[Any, ...]) -> str:
    return "notifications" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)


def parse_notifications(raw: Mapping[str, Any] | None) -> NotificationsSpec:
    """Validate a `notifications:` mapping; NotificationsError with one plain line per problem (values never shown)."""
    try:
        return NotificationsSpec.model_validate({} if raw is None else raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
            if err["type"] == "extra_forbidden":
                message = f"unknown key '{loc[-1]}'"
                loc = loc[:-1]
            elif err["type"] == "missing":
                message = f"missing required key '{loc[-1]}'"
                loc = loc[:-1]
            else:
                message = err["msg"].removeprefix("Value error, ")
            problems.append(f"{_where(loc)}: {message}")
        raise NotificationsError(problems) from None


# -- resolving the secrets at start-up -------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryTarget:
    """A target ready to deliver to: the URL and secret read from the environment or a file."""

    name: str
    format: Format
    url: SecretStr
    events: frozenset[str]
    secret: SecretStr | None = None

    @property
    def endpoint(self) -> str:
        """The URL as it may be recorded (see `redact_url`)."""
        return redact_url(self.url.get_secret_value())


def read_secret(
    kind: str,
    env: str | None,
    file: str | None,
    environ: Mapping[str, str],
    base: Path,
    problems: list[str],
    where: str,
) -> str | None:
    """The value of environment variable `env`, or the stripped text of `file` (relative to `base`).
    None, with a line in `problems` that names `where` and the variable or file but never a value."""
    if env:
        value = environ.get(env, "").strip()
        if not value:
            problems.append(f"{where}: environment variable {env} ({kind}) is not set or empty")
        return value or None
    assert file is not None
    path = Path(file).expanduser()
    path = path if path.is_absolute() else base / path
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        problems.append(f"{where}: cannot read {kind} file '{file}' ({exc.__class__.__name__})")
        return None
    if not value:
        problems.append(f"{where}: {kind} file '{file}' is empty")
    return value or None


def _check_url(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return "is not a valid URL"
    if parts.scheme == "https" and host:
        return None
    if parts.scheme == "http" and host in LOOPBACK_HOSTS:
        return None  # a receiver on this machine: nothing crosses the network in clear
    return "must be an https:// URL (http:// only for a receiver on this machine)"


def resolve_targets(
    spec: NotificationsSpec, *, base_dir: Path | None = None, environ: Mapping[str, str] | None = None
) -> tuple[DeliveryTarget, ...]:
    """Read every target's URL and secret. NotificationsError listing every problem; no value is ever shown.

    Relative files are read from `base_dir` (the policy file's folder) or the current directory."""
    env = os.environ if environ is None else environ
    base = base_dir or Path.cwd()
    problems: list[str] = []
    out = []
    for t in spec.targets:
        where = f"target '{t.name}'"
        url = t.url or read_secret("url", t.url_env, t.url_file, env, base, problems, where)
        secret = None
        if t.format == "webhook":
            secret = read_secret("secret", t.secret_env, t.secret_file, env, base, problems, where)
        if url is not None:
            bad = _check_url(url)
            if bad:
                problems.append(f"target '{t.name}': its url {bad}")
        out.append(
            DeliveryTarget(
                name=t.name,
                format=t.format,
                url=SecretStr(url or ""),
                events=frozenset(t.events),
                secret=SecretStr(secret) if secret is not None else None,
            )
        )
    if problems:
        raise NotificationsError(problems)
    return tuple(out)
