"""Settings for the Tableau connection, read from the environment once at start-up.

Connection variables use Tableau's own names:

    TABLEAU_SERVER_URL     https://tableau.example.com (or https://10ax.online.tableau.com)
    TABLEAU_SITE_ID        the site's content URL ("" or unset = the Default site)

and exactly one kind of credential:

    personal access token  TABLEAU_PAT_NAME + TABLEAU_PAT_SECRET
    user name + password   TABLEAU_USERNAME + TABLEAU_PASSWORD
    connected app (JWT)    TABLEAU_JWT_CLIENT_ID + TABLEAU_JWT_SECRET_ID + TABLEAU_JWT_SECRET_VALUE
                           + TABLEAU_JWT_USERNAME (optional TABLEAU_JWT_SCOPES, comma-separated)

For `identity: per_user` in the policy (each caller signs in as their own Tableau user), the connected
app that mints those users' JWTs:

    TABLEAU_CONNECTED_APP_CLIENT_ID + TABLEAU_CONNECTED_APP_SECRET_ID + TABLEAU_CONNECTED_APP_SECRET_VALUE
                           (optional TABLEAU_CONNECTED_APP_SCOPES, comma-separated)

or, when the service credential above is itself a connected app, that same app.

Tunables (all optional; defaults are safe for Tableau Cloud's 40,000 calls/user/site/hour):

    STEWARD_REQUEST_TIMEOUT   seconds per HTTP request                     (30)
    STEWARD_RATE_LIMIT_PER_HOUR  calls in any sliding hour, client-side; 0 = off (40000,
                              Tableau Cloud's budget per user per site; Tableau Server has none)
    STEWARD_RATE_LIMIT        requests per second, client-side; 0 = off     (0)
    STEWARD_CONCURRENCY       HTTP requests in flight at once               (4)
    STEWARD_PAGE_SIZE         items per list page, 1..1000                  (1000)
    STEWARD_RETRY_DEADLINE    seconds a request may spend being retried     (60)
    STEWARD_CACHE_TTL         seconds projects/users/groups stay cached     (60)
    STEWARD_TLS_VERIFY        true/false: verify the server's certificate  (true)
    STEWARD_CA_BUNDLE         path to a PEM CA bundle to verify against     (system store)
    STEWARD_API_VERSION       pin the REST API version instead of negotiating (unset)

Every problem is collected and reported in ONE `ConfigError` naming the variables involved.
Secrets are `SecretStr`: they never appear in a repr, a log line or an error message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

DEFAULT_JWT_SCOPES: tuple[str, ...] = (
    "tableau:content:read",
    "tableau:users:read",
    "tableau:groups:read",
    "tableau:groups:update",
    "tableau:jobs:read",
    "tableau:jobs:update",
    "tableau:tasks:run",
    "tableau:workbooks:update",
    "tableau:datasources:update",
)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """The environment does not describe a usable Tableau connection; the message says what to set."""


class PatCredentials(BaseModel):
    """A personal access token. Tableau allows one session per PAT: don't share it with another process."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["pat"] = "pat"
    name: str = Field(min_length=1)
    secret: SecretStr

    def describe(self) -> str:
        return f"personal access token '{self.name}'"


class PasswordCredentials(BaseModel):
    model_config = ConfigDict(frozen=True)
    kind: Literal["password"] = "password"
    username: str = Field(min_length=1)
    password: SecretStr

    def describe(self) -> str:
        return f"user '{self.username}' (password sign-in)"


class ConnectedAppCredentials(BaseModel):
    """A connected app (direct trust): a fresh short-lived HS256 JWT is minted for every sign-in."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["connected_app"] = "connected_app"
    client_id: str = Field(min_length=1)
    secret_id: str = Field(min_length=1)
    secret_value: SecretStr
    username: str = Field(min_length=1)
    scopes: tuple[str, ...] = DEFAULT_JWT_SCOPES
    token_lifetime_seconds: int = Field(300, ge=30, le=600)  # Tableau accepts at most 10 minutes

    def describe(self) -> str:
        return f"connected app '{self.client_id}' as user '{self.username}'"


Credentials = PatCredentials | PasswordCredentials | ConnectedAppCredentials


class ConnectedApp(BaseModel):
    """A connected app (direct trust) that signs in as any user named at call time (`identity: per_user`)."""

    model_config = ConfigDict(frozen=True)
    client_id: str = Field(min_length=1)
    secret_id: str = Field(min_length=1)
    secret_value: SecretStr
    scopes: tuple[str, ...] = DEFAULT_JWT_SCOPES

    def for_user(self, username: str) -> ConnectedAppCredentials:
        return ConnectedAppCredentials(
            client_id=self.client_id, secret_id=self.secret_id, secret_value=self.secret_value,
            username=username, scopes=self.scopes,
        )


class Settings(BaseModel):
    """Everything the Tableau access layer needs. Build it with `from_env()`, or directly in tests and demos."""

    model_config = ConfigDict(frozen=True)

    server_url: str
    site_id: str = ""  # the site's content URL; "" is the Default site
    credentials: Credentials = Field(discriminator="kind")

    request_timeout: float = Field(30.0, gt=0, le=600)
    # Tableau Cloud allows 40,000 REST calls per user per site per hour: a sliding hour of that many calls
    # lets bursts of any size below it run at full concurrency. 0 turns the hourly budget off.
    rate_limit_per_hour: int = Field(40_000, ge=0)
    rate_limit: float = Field(0.0, ge=0)  # an optional extra cap in requests per second; 0 = off
    concurrency: int = Field(4, ge=1, le=32)
    page_size: int = Field(1000, ge=1, le=1000)
    retry_deadline: float = Field(60.0, ge=0, le=3600)
    retry_base_delay: float = Field(0.5, gt=0, le=60)  # first backoff step (full jitter)
    retry_max_delay: float = Field(30.0, gt=0, le=600)  # cap of one backoff step
    cache_ttl: float = Field(60.0, ge=0)
    verify_tls: bool = True
    ca_bundle: Path | None = None
    api_version: str | None = None  # None: negotiate with serverInfo, as TSC's use_server_version does
    # The connected app per-user sessions sign in with (None: the service credential's app, if it is one).
    connected_app: ConnectedApp | None = None

    @field_validator("server_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(
                f"'{value}' is not a server URL; use the form https://tableau.example.com "
                "(http:// only for a local emulator)"
            )
        return value

    @field_validator("site_id")
    @classmethod
    def _check_site(cls, value: str) -> str:
        return value.strip()

    @field_validator("api_version")
    @classmethod
    def _check_version(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\d+\.\d+", value.strip()):
            raise ValueError(f"'{value}' is not a REST API version such as 3.24")
        return value.strip() if value is not None else None

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def for_pat(cls, server_url: str, site_id: str, name: str, secret: str, **tunables: object) -> Settings:
        """Settings for a personal access token (the demo and tests use this)."""
        return cls(
            server_url=server_url,
            site_id=site_id,
            credentials=PatCredentials(name=name, secret=SecretStr(secret)),
            **tunables,  # type: ignore[arg-type]
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from `env` (default `os.environ`); raise one ConfigError listing every problem."""
        env = os.environ if env is None else env
        problems: list[str] = []

        def get(name: str) -> str | None:
            value = env.get(name)
            if value is None:
                return None
            value = value.strip()
            return value or None

        server_url = get("TABLEAU_SERVER_URL")
        if server_url is None:
            problems.append("TABLEAU_SERVER_URL is not set (e.g. https://tableau.example.com)")
        site_id = (env.get("TABLEAU_SITE_ID") or "").strip()

        credentials = _credentials_from_env(get, problems)
        tunables = _tunables_from_env(get, problems)
        app = _connected_app_from_env(get, problems)
        if app is not None:
            tunables["connected_app"] = app

        if problems:
            raise ConfigError(_message(problems))
        try:
            return cls(server_url=server_url, site_id=site_id, credentials=credentials, **tunables)
        except ValidationError as exc:
            raise ConfigError(_message([_explain(error) for error in exc.errors()])) from None

    # -- derived -----------------------------------------------------------------------------

    def user_app(self) -> ConnectedApp | None:
        """The connected app that signs in as individual users, or None when none is configured."""
        if self.connected_app is not None:
            return self.connected_app
        creds = self.credentials
        if isinstance(creds, ConnectedAppCredentials):
            return ConnectedApp(client_id=creds.client_id, secret_id=creds.secret_id,
                                secret_value=creds.secret_value, scopes=creds.scopes)
        return None

    def as_user(self, username: str) -> Settings:
        """These settings signing in as Tableau user `username` through the connected app."""
        app = self.user_app()
        if app is None:
            raise ConfigError(
                "Tableau configuration error: `identity: per_user` needs a connected app; set "
                "TABLEAU_CONNECTED_APP_CLIENT_ID, TABLEAU_CONNECTED_APP_SECRET_ID and TABLEAU_CONNECTED_APP_SECRET_VALUE."
            )
        return self.model_copy(update={"credentials": app.for_user(username)})

    @property
    def verify(self) -> bool | str:
        """The `verify` argument for requests: a CA bundle path, or True/False."""
        if not self.verify_tls:
            return False
        return str(self.ca_bundle) if self.ca_bundle else True

    def describe(self) -> str:
        """A one-line description without secrets, for logs and error messages."""
        site = f"site '{self.site_id}'" if self.site_id else "the Default site"
        return f"{self.server_url}, {site}, {self.credentials.describe()}"


# Environment variables → Settings field and parser. Documented in the module docstring.
_TUNABLES: dict[str, tuple[str, str]] = {
    "STEWARD_REQUEST_TIMEOUT": ("request_timeout", "float"),
    "STEWARD_RATE_LIMIT_PER_HOUR": ("rate_limit_per_hour", "int"),
    "STEWARD_RATE_LIMIT": ("rate_limit", "float"),
    "STEWARD_CONCURRENCY": ("concurrency", "int"),
    "STEWARD_PAGE_SIZE": ("page_size", "int"),
    "STEWARD_RETRY_DEADLINE": ("retry_deadline", "float"),
    "STEWARD_CACHE_TTL": ("cache_ttl", "float"),
    "STEWARD_TLS_VERIFY": ("verify_tls", "bool"),
    "STEWARD_CA_BUNDLE": ("ca_bundle", "path"),
    "STEWARD_API_VERSION": ("api_version", "str"),
}
_FIELD_TO_ENV = {field: name for name, (field, _) in _TUNABLES.items()} | {
    "server_url": "TABLEAU_SERVER_URL",
    "site_id": "TABLEAU_SITE_ID",
}

_CREDENTIAL_KINDS: dict[str, tuple[str, ...]] = {
    "personal access token": ("TABLEAU_PAT_NAME", "TABLEAU_PAT_SECRET"),
    "user name and password": ("TABLEAU_USERNAME", "TABLEAU_PASSWORD"),
    "connected app": (
        "TABLEAU_JWT_CLIENT_ID",
        "TABLEAU_JWT_SECRET_ID",
        "TABLEAU_JWT_SECRET_VALUE",
        "TABLEAU_JWT_USERNAME",
    ),
}


def _credentials_from_env(get, problems: list[str]) -> Credentials | None:
    present = {kind: [n for n in names if get(n) is not None] for kind, names in _CREDENTIAL_KINDS.items()}
    started = [kind for kind, names in present.items() if names]
    if not started:
        problems.append(
            "no Tableau credentials are set; set exactly one of: TABLEAU_PAT_NAME + TABLEAU_PAT_SECRET "
            "(personal access token), TABLEAU_USERNAME + TABLEAU_PASSWORD, or TABLEAU_JWT_CLIENT_ID + "
            "TABLEAU_JWT_SECRET_ID + TABLEAU_JWT_SECRET_VALUE + TABLEAU_JWT_USERNAME (connected app)"
        )
        return None
    if len(started) > 1:
        found = "; ".join(f"{kind} ({', '.join(present[kind])})" for kind in started)
        problems.append(
            f"more than one kind of Tableau credential is set: {found}. Keep exactly one kind and unset the others"
        )
        return None
    kind = started[0]
    missing = [n for n in _CREDENTIAL_KINDS[kind] if get(n) is None]
    if missing:
        problems.append(f"the {kind} credential is incomplete: {', '.join(missing)} not set")
        return None
    if kind == "personal access token":
        return PatCredentials(name=get("TABLEAU_PAT_NAME"), secret=SecretStr(get("TABLEAU_PAT_SECRET")))
    if kind == "user name and password":
        return PasswordCredentials(username=get("TABLEAU_USERNAME"), password=SecretStr(get("TABLEAU_PASSWORD")))
    scopes = _scopes(get("TABLEAU_JWT_SCOPES"))
    if not scopes:
        problems.append("TABLEAU_JWT_SCOPES is set but names no scope (use a comma-separated list)")
        return None
    return ConnectedAppCredentials(
        client_id=get("TABLEAU_JWT_CLIENT_ID"),
        secret_id=get("TABLEAU_JWT_SECRET_ID"),
        secret_value=SecretStr(get("TABLEAU_JWT_SECRET_VALUE")),
        username=get("TABLEAU_JWT_USERNAME"),
        scopes=scopes,
    )


_CONNECTED_APP_VARS = (
    "TABLEAU_CONNECTED_APP_CLIENT_ID",
    "TABLEAU_CONNECTED_APP_SECRET_ID",
    "TABLEAU_CONNECTED_APP_SECRET_VALUE",
)


def _connected_app_from_env(get, problems: list[str]) -> ConnectedApp | None:
    present = [name for name in _CONNECTED_APP_VARS if get(name) is not None]
    if not present:
        return None
    missing = [name for name in _CONNECTED_APP_VARS if get(name) is None]
    if missing:
        problems.append(f"the per-user connected app is incomplete: {', '.join(missing)} not set")
        return None
    scopes = _scopes(get("TABLEAU_CONNECTED_APP_SCOPES"))
    if not scopes:
        problems.append("TABLEAU_CONNECTED_APP_SCOPES is set but names no scope (use a comma-separated list)")
        return None
    client_id, secret_id, secret_value = (get(name) for name in _CONNECTED_APP_VARS)
    return ConnectedApp(client_id=client_id, secret_id=secret_id, secret_value=SecretStr(secret_value), scopes=scopes)


def _scopes(raw: str | None) -> tuple[str, ...]:
    return tuple(s.strip() for s in raw.split(",") if s.strip()) if raw else DEFAULT_JWT_SCOPES


def _tunables_from_env(get, problems: list[str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for name, (field, kind) in _TUNABLES.items():
        raw = get(name)
        if raw is None:
            continue
        try:
            if kind == "float":
                values[field] = float(raw)
            elif kind == "int":
                values[field] = int(raw)
            elif kind == "bool":
                lowered = raw.lower()
                if lowered not in _TRUE | _FALSE:
                    raise ValueError
                values[field] = lowered in _TRUE
            elif kind == "path":
                path = Path(raw).expanduser()
                if not path.is_file():
                    problems.append(f"{name} names '{raw}', which is not a readable file")
                    continue
                values[field] = path
            else:
                values[field] = raw
        except ValueError:
            expected = {"float": "a number", "int": "a whole number", "bool": "true or false"}.get(kind, "a value")
            problems.append(f"{name} must be {expected}, not '{raw}'")
    return values


def _explain(error: dict) -> str:
    loc = [str(part) for part in error.get("loc", ())]
    field = loc[0] if loc else "?"
    env_name = _FIELD_TO_ENV.get(field)
    if field == "credentials":
        env_name = "the credential variables"
    message = error.get("msg", "is invalid")
    message = message.removeprefix("Value error, ")
    return f"{env_name or field}: {message}"


def _message(problems: list[str]) -> str:
    if len(problems) == 1:
        return f"Tableau configuration error: {problems[0]}."
    return "Tableau configuration errors: " + "; ".join(f"({i}) {p}" for i, p in enumerate(problems, 1)) + "."
