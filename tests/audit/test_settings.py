"""Settings: BIASAUDIT_* parsing, embedded-mode defaults, caching, default-secret refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from audit.settings import DEFAULT_SECRET_KEY, Settings, get_settings


def test_defaults_give_embedded_mode(clean_settings: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_settings.setenv("HOME", str(tmp_path))
    settings = get_settings()
    assert settings.environment == "development"
    assert settings.artifact_dir == tmp_path / ".local/share/biasaudit"
    assert settings.data_dir == settings.artifact_dir / "data"
    assert settings.database_url == f"sqlite:///{settings.artifact_dir / 'biasaudit.db'}"
    assert settings.broker_url is None and settings.embedded
    assert settings.result_backend_url is None
    assert settings.allow_hub_models is False
    assert settings.min_group_size == 30
    assert settings.max_attempts == 3
    assert settings.lease_seconds > 0 and settings.chunk_rows > 0
    assert settings.max_upload_bytes > 0 and settings.max_upload_rows > 0


def test_environment_variables_are_parsed(
    clean_settings: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_settings.setenv("HOME", str(tmp_path))
    clean_settings.setenv("BIASAUDIT_DATABASE_URL", "postgresql://u@db:5432/audits")
    clean_settings.setenv("BIASAUDIT_BROKER_URL", "redis://localhost:6379/0")
    clean_settings.setenv("BIASAUDIT_ARTIFACT_DIR", "~/artifacts")
    clean_settings.setenv("BIASAUDIT_DATA_DIR", str(tmp_path / "uploads"))
    clean_settings.setenv("BIASAUDIT_ALLOW_HUB_MODELS", "true")
    clean_settings.setenv("BIASAUDIT_MAX_UPLOAD_BYTES", "1000")
    clean_settings.setenv("BIASAUDIT_MAX_UPLOAD_ROWS", "50")
    clean_settings.setenv("BIASAUDIT_MIN_GROUP_SIZE", "5")
    clean_settings.setenv("BIASAUDIT_CHUNK_ROWS", "128")
    clean_settings.setenv("BIASAUDIT_LEASE_SECONDS", "7")
    clean_settings.setenv("BIASAUDIT_MAX_ATTEMPTS", "1")
    settings = get_settings()
    assert settings.database_url == "postgresql://u@db:5432/audits"
    assert settings.broker_url == "redis://localhost:6379/0" and not settings.embedded
    assert settings.artifact_dir == tmp_path / "artifacts"  # "~" expanded
    assert settings.data_dir == tmp_path / "uploads"
    assert settings.allow_hub_models is True
    assert (settings.max_upload_bytes, settings.max_upload_rows) == (1000, 50)
    assert (settings.min_group_size, settings.chunk_rows) == (5, 128)
    assert (settings.lease_seconds, settings.max_attempts) == (7, 1)


def test_empty_broker_variable_means_embedded(clean_settings: pytest.MonkeyPatch) -> None:
    clean_settings.setenv("BIASAUDIT_BROKER_URL", "")
    assert get_settings().broker_url is None
    assert get_settings().embedded


def test_get_settings_is_cached_until_cleared(clean_settings: pytest.MonkeyPatch) -> None:
    clean_settings.setenv("BIASAUDIT_MIN_GROUP_SIZE", "11")
    first = get_settings()
    clean_settings.setenv("BIASAUDIT_MIN_GROUP_SIZE", "12")
    assert get_settings() is first and first.min_group_size == 11
    get_settings.cache_clear()
    assert get_settings().min_group_size == 12


@pytest.mark.parametrize("environment", ["production", "test"])
@pytest.mark.parametrize("secret", [None, "", "   ", DEFAULT_SECRET_KEY])
def test_default_or_empty_secret_refused_outside_development(
    clean_settings: pytest.MonkeyPatch, environment: str, secret: str | None
) -> None:
    clean_settings.setenv("BIASAUDIT_ENVIRONMENT", environment)
    if secret is not None:
        clean_settings.setenv("BIASAUDIT_SECRET_KEY", secret)
    with pytest.raises(ValidationError) as info:
        get_settings()
    message = str(info.value)
    assert "BIASAUDIT_SECRET_KEY" in message
    assert f"BIASAUDIT_ENVIRONMENT={environment}" in message


def test_real_secret_accepted_in_production_and_hidden(
    clean_settings: pytest.MonkeyPatch,
) -> None:
    clean_settings.setenv("BIASAUDIT_ENVIRONMENT", "production")
    clean_settings.setenv("BIASAUDIT_SECRET_KEY", "s3cr3t-value-for-tests-0123456789")
    settings = get_settings()
    assert settings.environment == "production"
    assert settings.secret_key.get_secret_value() == "s3cr3t-value-for-tests-0123456789"
    assert "s3cr3t" not in repr(settings) and "s3cr3t" not in str(settings.model_dump())


def test_development_allows_default_secret(clean_settings: pytest.MonkeyPatch) -> None:
    assert get_settings().secret_key.get_secret_value() == DEFAULT_SECRET_KEY


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("BIASAUDIT_ENVIRONMENT", "staging", "environment"),
        ("BIASAUDIT_MAX_ATTEMPTS", "0", "max_attempts"),
        ("BIASAUDIT_MIN_GROUP_SIZE", "many", "min_group_size"),
    ],
)
def test_invalid_values_name_the_field(
    clean_settings: pytest.MonkeyPatch, variable: str, value: str, field: str
) -> None:
    clean_settings.setenv(variable, value)
    with pytest.raises(ValidationError) as info:
        get_settings()
    assert field in str(info.value)


def test_keyword_construction_overrides_environment(clean_settings: pytest.MonkeyPatch) -> None:
    clean_settings.setenv("BIASAUDIT_MAX_ATTEMPTS", "9")
    assert Settings(max_attempts=2).max_attempts == 2
