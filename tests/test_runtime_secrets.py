import logging
import sys

import pytest

import masuka_nb
from masuka_nb import runtime
from masuka_nb.errors import InvalidRequestError, SecretMissingError
from masuka_nb.log import get_logger


def test_colab_detection(monkeypatch):
    assert not runtime.in_colab()
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab_20260819")
    assert runtime.in_colab()


def test_profiles_know_real_bf16():
    assert not runtime.PROFILES["t4"].bf16  # torch says yes on a T4; the hardware says no
    assert runtime.PROFILES["a100-40"].bf16 and runtime.PROFILES["h100"].bf16 and runtime.PROFILES["l4"].bf16
    assert runtime.PROFILES["t4"].ram_gb == pytest.approx(12.7)
    with pytest.raises(InvalidRequestError) as info:
        runtime.profile("tpu-v5")
    assert info.value.argument == "gpu"


def test_detect_on_this_machine_reports_cpu():
    info = runtime.detect()
    assert info.ram_gb > 0
    assert info.python == ".".join(map(str, sys.version_info[:3]))
    if not info.has_gpu:
        assert info.as_profile().name == "cpu"
        assert not info.bf16


def test_doctor_prints_a_table_with_meaning(capsys):
    info = masuka_nb.doctor()
    out = capsys.readouterr().out
    assert "MASUKA doctor" in out and "bf16 (hardware)" in out and "MASUKA home" in out
    if not info.has_gpu:
        assert "tiny models" in out


def test_missing_secret_says_where_to_add_it(monkeypatch):
    monkeypatch.delenv("COMETAPI_KEY", raising=False)
    with pytest.raises(SecretMissingError) as info:
        masuka_nb.get_secret("COMETAPI_KEY", purpose="Sora 2 videos")
    err = info.value
    assert err.code == "SECRET_MISSING" and err.value == "COMETAPI_KEY"
    assert "Secrets" in err.hint and "export COMETAPI_KEY" in err.hint
    assert masuka_nb.get_secret("COMETAPI_KEY", required=False) is None


def test_secrets_are_redacted_from_logs(monkeypatch, caplog):
    monkeypatch.setenv("RUNWAY_KEY", "key_canary_abcdef123456")
    key = masuka_nb.get_secret("RUNWAY_KEY")
    log = get_logger("test")
    with caplog.at_level(logging.INFO, logger="masuka_nb"):
        log.info("provider.call", url=f"https://x/?key={key}", note="with key " + key)
    assert caplog.records, "the record was not emitted"
    assert "key_canary_abcdef123456" not in caplog.text
    assert "provider.call" in caplog.text and "***" in caplog.text


def test_doctor_labels_binary_sizes_as_gib(capsys):
    from masuka_nb.checkup import doctor

    doctor()
    out = capsys.readouterr().out
    ram = next(line for line in out.splitlines() if line.startswith("RAM"))
    disk = next(line for line in out.splitlines() if line.startswith("free disk"))
    assert ram.endswith("GiB") and disk.endswith("GiB")
