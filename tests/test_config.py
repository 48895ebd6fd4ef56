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


def test_default_model_is_checked_against_the_registry():
    assert masuka_nb.configure(default_model="flux-schnell").default_model == "flux1-schnell"
    with pytest.raises(ModelNotFoundError):
        masuka_nb.configure(default_model="flux3")


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
