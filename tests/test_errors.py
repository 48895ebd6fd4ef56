import pickle

import pytest

from masuka_nb import errors
from masuka_nb._redact import register_secret


def test_every_error_has_a_unique_stable_code():
    classes = errors._all_error_classes()
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes)), codes
    assert all(code.isupper() for code in codes)


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (errors.ConfigError, ValueError),
        (errors.ModelNotFoundError, LookupError),
        (errors.GatedModelError, PermissionError),
        (errors.ModelFilesMissingError, FileNotFoundError),
        (errors.PlanDoesNotFitError, MemoryError),
        (errors.ProviderTimeoutError, TimeoutError),
        (errors.ProviderAuthError, ConnectionError),
        (errors.JobNotFoundError, LookupError),
    ],
)
def test_errors_subclass_the_builtin_they_resemble(cls, builtin):
    err = cls("boom", argument="x", value=1, hint="do y")
    assert isinstance(err, builtin)
    assert isinstance(err, errors.MasukaError)


def test_message_names_argument_value_and_hint():
    err = errors.InvalidRequestError("`steps` must be 1–150.", argument="steps", value=999, hint="Use 28.")
    text = str(err)
    assert text.startswith("[INVALID_REQUEST] ")
    assert "`steps` = 999" in text
    assert "Hint: Use 28." in text
    assert err.to_dict()["code"] == "INVALID_REQUEST"


def test_errors_survive_pickling_with_their_fields():
    err = errors.ProviderRateLimitedError("slow down", argument="model", value="sora-2", hint="wait", provider="x")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is errors.ProviderRateLimitedError
    assert (back.code, back.argument, back.value, back.hint, back.details) == (
        err.code, err.argument, err.value, err.hint, err.details)


def test_known_secrets_are_redacted_from_messages():
    register_secret("sk-canary-0123456789")
    err = errors.ProviderAuthError("bad key sk-canary-0123456789", argument="key", value="sk-canary-0123456789")
    assert "sk-canary-0123456789" not in str(err)
    assert "sk-canary-0123456789" not in repr(err.to_dict())


def test_error_for_code_finds_the_class():
    assert errors.error_for_code("JOB_EXPIRED") is errors.JobExpiredError
    assert errors.error_for_code("NOPE") is errors.MasukaError
