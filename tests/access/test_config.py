"""Settings from the environment: one clear error for missing or contradictory settings; secrets hidden."""

from __future__ import annotations

import jwt
import pytest

from server.config import ConfigError, ConnectedAppCredentials, PatCredentials, Settings
from server.tableau.auth import mint_connected_app_jwt

PAT_ENV = {
    "TABLEAU_SERVER_URL": "https://tableau.example.com/",
    "TABLEAU_SITE_ID": "sales",
    "TABLEAU_PAT_NAME": "steward",
    "TABLEAU_PAT_SECRET": "pat-secret-value-123",
}


def test_pat_settings_with_defaults():
    settings = Settings.from_env(PAT_ENV)
    assert settings.server_url == "https://tableau.example.com"
    assert settings.site_id == "sales"
    assert isinstance(settings.credentials, PatCredentials)
    assert settings.credentials.name == "steward"
    assert settings.credentials.secret.get_secret_value() == "pat-secret-value-123"
    assert (settings.request_timeout, settings.rate_limit, settings.concurrency, settings.page_size) == (30, 0, 4, 1000)
    assert settings.rate_limit_per_hour == 40_000  # Tableau Cloud's budget per user per site per hour
    assert settings.retry_deadline == 60 and settings.verify is True and settings.api_version is None


def test_secrets_never_appear_in_repr_or_description():
    settings = Settings.from_env(PAT_ENV)
    for text in (repr(settings), str(settings), settings.describe(), settings.model_dump_json()):
        assert "pat-secret-value-123" not in text
    assert "steward" in settings.describe()


def test_default_site_when_site_id_is_empty():
    settings = Settings.from_env({**PAT_ENV, "TABLEAU_SITE_ID": ""})
    assert settings.site_id == ""
    assert "Default site" in settings.describe()


def test_nothing_set_names_every_missing_variable_in_one_error():
    with pytest.raises(ConfigError) as info:
        Settings.from_env({})
    message = str(info.value)
    assert "TABLEAU_SERVER_URL" in message
    for name in ("TABLEAU_PAT_NAME", "TABLEAU_USERNAME", "TABLEAU_JWT_CLIENT_ID"):
        assert name in message


def test_two_credential_kinds_are_contradictory():
    env = {**PAT_ENV, "TABLEAU_USERNAME": "alice", "TABLEAU_PASSWORD": "pw-secret-456"}
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    message = str(info.value)
    assert "more than one kind" in message
    assert "TABLEAU_PAT_NAME" in message and "TABLEAU_USERNAME" in message
    assert "pw-secret-456" not in message and "pat-secret-value-123" not in message


def test_incomplete_credential_names_the_missing_variable():
    env = {"TABLEAU_SERVER_URL": "https://t.example.com", "TABLEAU_PAT_NAME": "x"}
    with pytest.raises(ConfigError, match="TABLEAU_PAT_SECRET"):
        Settings.from_env(env)
    env = {"TABLEAU_SERVER_URL": "https://t.example.com", "TABLEAU_JWT_CLIENT_ID": "c", "TABLEAU_JWT_SECRET_ID": "s"}
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert "TABLEAU_JWT_SECRET_VALUE" in str(info.value) and "TABLEAU_JWT_USERNAME" in str(info.value)


def test_bad_tunables_and_url_are_reported_together():
    env = {
        **PAT_ENV,
        "TABLEAU_SERVER_URL": "tableau.example.com",
        "STEWARD_CONCURRENCY": "many",
        "STEWARD_TLS_VERIFY": "maybe",
    }
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    message = str(info.value)
    assert "STEWARD_CONCURRENCY" in message and "STEWARD_TLS_VERIFY" in message
    env = {**PAT_ENV, "TABLEAU_SERVER_URL": "tableau.example.com"}
    with pytest.raises(ConfigError, match="TABLEAU_SERVER_URL"):
        Settings.from_env(env)
    with pytest.raises(ConfigError, match="STEWARD_PAGE_SIZE"):
        Settings.from_env({**PAT_ENV, "STEWARD_PAGE_SIZE": "5000"})
    with pytest.raises(ConfigError, match="STEWARD_CA_BUNDLE"):
        Settings.from_env({**PAT_ENV, "STEWARD_CA_BUNDLE": "/nonexistent/ca.pem"})


def test_tunable_overrides(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    env = {
        **PAT_ENV,
        "STEWARD_REQUEST_TIMEOUT": "12.5",
        "STEWARD_RATE_LIMIT": "0",
        "STEWARD_CONCURRENCY": "8",
        "STEWARD_RATE_LIMIT_PER_HOUR": "0",
        "STEWARD_PAGE_SIZE": "500",
        "STEWARD_RETRY_DEADLINE": "5",
        "STEWARD_CACHE_TTL": "0",
        "STEWARD_CA_BUNDLE": str(bundle),
        "STEWARD_API_VERSION": "3.21",
    }
    settings = Settings.from_env(env)
    assert settings.request_timeout == 12.5 and settings.rate_limit == 0 and settings.concurrency == 8
    assert settings.page_size == 500 and settings.retry_deadline == 5 and settings.cache_ttl == 0
    assert settings.rate_limit_per_hour == 0  # off, e.g. for a Tableau Server without a budget
    assert settings.verify == str(bundle) and settings.api_version == "3.21"
    assert Settings.from_env({**PAT_ENV, "STEWARD_TLS_VERIFY": "false"}).verify is False


def test_password_and_connected_app_credentials():
    env = {"TABLEAU_SERVER_URL": "https://t.example.com", "TABLEAU_USERNAME": "alice", "TABLEAU_PASSWORD": "pw"}
    assert Settings.from_env(env).credentials.kind == "password"
    env = {
        "TABLEAU_SERVER_URL": "https://t.example.com",
        "TABLEAU_JWT_CLIENT_ID": "client-1",
        "TABLEAU_JWT_SECRET_ID": "secret-id-1",
        "TABLEAU_JWT_SECRET_VALUE": "a-long-connected-app-secret-value",
        "TABLEAU_JWT_USERNAME": "alice@example.com",
        "TABLEAU_JWT_SCOPES": "tableau:content:read, tableau:users:read",
    }
    settings = Settings.from_env(env)
    creds = settings.credentials
    assert isinstance(creds, ConnectedAppCredentials)
    assert creds.scopes == ("tableau:content:read", "tableau:users:read")
    assert "a-long-connected-app-secret-value" not in repr(settings)


def test_connected_app_jwt_claims():
    creds = ConnectedAppCredentials(
        client_id="client-1", secret_id="secret-id-1", secret_value="a-long-connected-app-secret-value",
        username="alice@example.com",
    )
    token = mint_connected_app_jwt(creds, now=1_700_000_000)
    header = jwt.get_unverified_header(token)
    assert header["kid"] == "secret-id-1" and header["iss"] == "client-1" and header["alg"] == "HS256"
    claims = jwt.decode(token, "a-long-connected-app-secret-value", algorithms=["HS256"], audience="tableau",
                        options={"verify_exp": False})
    assert claims["iss"] == "client-1" and claims["sub"] == "alice@example.com" and claims["aud"] == "tableau"
    assert 0 < claims["exp"] - 1_700_000_000 <= 600
    assert claims["jti"] and "tableau:content:read" in claims["scp"]
    assert mint_connected_app_jwt(creds) != mint_connected_app_jwt(creds)  # a fresh jti every sign-in
