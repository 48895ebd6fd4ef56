from pathlib import Path

import pytest

import masuka_nb
from masuka_nb.errors import ConfigError, ModelNotFoundError


def test_settings_resolve_at_call_time(monkeypatch, tmp_path):
    first = masuka_nb.settings().home
    monkeypatch.setenv("MASUKA_HOME", str(tmp_path / "elsewhere"))
    second = masuka_nb.settings()
    assert second.home != first
    assert second.outputs_dir == second.home / "outputs"
    assert second.history_dir.parent == second.home


def test_configure_beats_environment_and_none_drops_it(monkeypatch, tmp_path):
    monkeypatch.setenv("MASUKA_RESULT_CACHE", "1")
    assert masuka_nb.configure(result_cache=False).result_cache is False
    assert masuka_nb.configure(result_cache=None).result_cache is True


def test_each_folder_can_be_set_on_its_own(tmp_path):
    s = masuka_nb.configure(loras_dir=tmp_path / "my-loras")
    assert s.loras_dir == (tmp_path / "my-loras").resolve()
    assert s.outputs_dir == s.home / "outputs"


def test_drive_becomes_home_when_mounted(monkeypatch, tmp_path):
    drive = tmp_path / "MyDrive"
    drive.mkdir()
    monkeypatch.delenv("MASUKA_HOME")
    monkeypatch.setenv("MASUKA_DRIVE_ROOT", str(drive))
    assert masuka_nb.settings().home == drive / "MASUKA"
    # the local cache never goes to Drive
    assert not str(masuka_nb.settings().cache_dir).startswith(str(drive))


def test_unknown_key_names_the_closest_valid_one():
    with pytest.raises(ConfigError) as info:
        masuka_nb.configure(outputs_dri="/tmp/x")
    err = info.value
    assert err.code == "INVALID_SETTING"
    assert err.argument == "outputs_dri"
    assert "outputs_dir" in str(err)
    assert "Valid settings" in err.hint


@pytest.mark.parametrize(
    ("key", "value", "expect"),
    [
        ("log_level", "LOUD", "'DEBUG'"),
        ("result_cache", "maybe", "true/false"),
        ("budget_usd", "-3", "≥ 0"),
        ("device", "tpu", "'cuda'"),
        ("home", "", "folder path"),
    ],
)
def test_bad_values_name_key_value_and_choices(key, value, expect):
    with pytest.raises(ConfigError) as info:
        masuka_nb.configure(**{key: value})
    assert info.value.argument == key
    assert info.value.value == value
    assert expect in str(info.value)


def test_a_bad_call_changes_nothing():
    before = masuka_nb.settings()
    with pytest.raises(ConfigError):
        masuka_nb.configure(result_cache=False, log_level="LOUD")
    assert masuka_nb.settings() == before


def test_bad_environment_value_is_reported_with_the_variable(monkeypatch):
    monkeypatch.setenv("MASUKA_OFFLINE", "perhaps")
    with pytest.raises(ConfigError) as info:
        masuka_nb.settings()
    assert "MASUKA_OFFLINE" in info.value.hint


def test_default_model_is_checked_against_the_registry_where_it_is_used():
    """Settings sit below the registry (they never import it): the id is resolved when a model is picked."""
    from masuka_nb.image.generation import resolve_model

    masuka_nb.configure(default_model="flux-schnell")
    assert resolve_model(None) == ("flux1-schnell", None)
    masuka_nb.configure(default_model="flux3")
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(None)
    assert err.value.argument == "default_model" and "flux3" in str(err.value)
    with pytest.raises(masuka_nb.errors.ConfigError):
        masuka_nb.configure(default_model="  ")


def test_describe_lists_every_setting():
    text = masuka_nb.settings().describe()
    for key in ("home", "cache_dir", "budget_usd"):
        assert key in text
    assert isinstance(masuka_nb.settings().home, Path)


def test_configure_log_level_applies_at_once():
    import logging

    masuka_nb.configure(log_level="debug")
    assert logging.getLogger("masuka_nb").level == logging.DEBUG
    masuka_nb.configure(log_level=None)
    assert logging.getLogger("masuka_nb").level == logging.WARNING


# ---- one settings table: every MASUKA_* variable the package reads is a setting ----

PACKAGE = Path(__file__).resolve().parents[1] / "masuka_nb"


def _variables_in_the_package() -> set[str]:
    import re

    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        names |= set(re.findall(r"\bMASUKA_[A-Z][A-Z0-9_]*\b", path.read_text(encoding="utf-8")))
    # error codes and f-string stems are not variables
    return {n for n in names if n not in ("MASUKA_ERROR",) and not n.endswith("_")}


def test_every_masuka_variable_is_a_described_configurable_setting():
    from masuka_nb.config import KEYS

    described = masuka_nb.settings().describe()
    variables = _variables_in_the_package()
    # the ones once read outside config.py, each with its own failure mode (issue 10)
    variables |= {"MASUKA_HTTP_TIMEOUT", "MASUKA_HTTP_RETRIES", "MASUKA_HTTP_BACKOFF", "MASUKA_HTTP_BACKOFF_MAX",
                  "MASUKA_POLL_INTERVAL", "MASUKA_JOB_NOT_FOUND_GRACE", "MASUKA_BREAKER_THRESHOLD",
                  "MASUKA_BREAKER_COOLDOWN", "MASUKA_DRIVE_ROOT", "MASUKA_COMETAPI_BASE_URL", "MASUKA_RUNWAY_BASE_URL",
                  "MASUKA_KLING_BASE_URL", "MASUKA_FAL_BASE_URL", "MASUKA_FAL_STORAGE_BASE_URL",
                  "MASUKA_REPLICATE_BASE_URL"}
    for var in variables:
        key = var.removeprefix("MASUKA_").lower()
        assert key in KEYS, f"{var} is read somewhere but is not a setting"
    for key in KEYS:
        assert f"MASUKA_{key.upper()}" in described and key in described


@pytest.mark.parametrize(("key", "good", "expect"), [
    ("http_timeout", 60, 60.0), ("http_retries", "3", 3), ("http_backoff", 0.25, 0.25), ("http_backoff_max", 5, 5.0),
    ("poll_interval", "0.5", 0.5), ("poll_interval", "auto", None), ("job_not_found_grace", 2, 2.0),
    ("breaker_threshold", 7, 7), ("breaker_cooldown", 1.5, 1.5), ("runway_base_url", "http://127.0.0.1:9/", "http://127.0.0.1:9"),
])
def test_hosted_settings_are_set_with_configure(key, good, expect):
    assert getattr(masuka_nb.configure(**{key: good}), key) == expect


@pytest.mark.parametrize(("key", "bad"), [
    ("http_timeout", "soon"), ("http_timeout", 0), ("http_retries", 2.5), ("http_retries", 0), ("http_backoff", -1),
    ("poll_interval", "fast"), ("breaker_threshold", True), ("runway_base_url", "api.dev.runwayml.com"),
    ("drive_root", ""), ("job_not_found_grace", "nan"),
])
def test_malformed_hosted_settings_are_invalid_setting_errors_naming_them(key, bad, monkeypatch):
    with pytest.raises(ConfigError) as info:
        masuka_nb.configure(**{key: bad})
    assert info.value.code == "INVALID_SETTING" and info.value.argument == key
    monkeypatch.setenv(f"MASUKA_{key.upper()}", str(bad))
    with pytest.raises(ConfigError) as info:
        masuka_nb.settings()
    assert f"MASUKA_{key.upper()}" in info.value.hint


def test_http_timing_is_one_value_object_the_clients_run_on():
    from masuka_nb.config import HttpTiming
    from masuka_nb.hosted.http import ProviderClient, RetryPolicy

    s = masuka_nb.configure(http_timeout=4, http_retries=2, http_backoff=0.1, http_backoff_max=1)
    assert s.http == HttpTiming(timeout=4, retries=2, backoff=0.1, backoff_max=1)
    assert s.http.connect == 4  # never longer than the read timeout
    assert ProviderClient("fal", "https://fal.example").timing == s.http  # what a client runs on, by default
    assert masuka_nb.configure(http=HttpTiming(timeout=9, retries=1)).http == HttpTiming(timeout=9, retries=1)
    with pytest.raises(ConfigError):
        masuka_nb.configure(http={"timeout": 9})
    with pytest.warns(DeprecationWarning, match="HttpTiming"):
        old = RetryPolicy(max_attempts=3, base_delay=0.2)
    assert isinstance(old, HttpTiming) and (old.retries, old.backoff) == (3, 0.2)


def test_runtime_is_a_probe_that_reads_no_settings(tmp_path):
    from masuka_nb import runtime

    assert runtime.drive_root(tmp_path) == tmp_path
    assert runtime.drive_root(tmp_path / "absent") is None
    source = (PACKAGE / "runtime.py").read_text(encoding="utf-8")
    assert "MASUKA_" not in source and "def doctor" not in source
