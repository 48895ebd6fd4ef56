"""Property test: generated invalid requests through `generate` each end in a MasukaError with a code."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import masuka_nb as mk
from masuka_nb.errors import MasukaError

VALID = dict(model="tiny-flux", width=32, height=32, steps=1, save=False)

junk = st.one_of(st.none(), st.booleans(), st.text(max_size=5), st.lists(st.integers(), max_size=2),
                 st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
bad_size = st.one_of(st.integers(-10_000, 31), st.integers(513, 100_000),
                     st.integers(33, 511).filter(lambda v: v % 16),
                     st.floats(allow_nan=True).filter(lambda v: not (isinstance(v, float) and v.is_integer())),
                     st.text(max_size=4), st.booleans())
bad_steps = st.one_of(st.integers(max_value=0), st.integers(min_value=151), st.just(2.5), st.text(max_size=3))
bad_guidance = st.one_of(st.floats(max_value=-1e-9, allow_infinity=False, allow_nan=False),
                         st.just(math.nan), st.just(math.inf), st.floats(min_value=100.01, allow_nan=False),
                         st.text(max_size=3), st.booleans())
bad_seed = st.one_of(st.integers(max_value=-1), st.integers(min_value=2**32), st.text(min_size=1, max_size=4),
                     st.just(1.5))
bad_count = st.one_of(st.integers(max_value=0), st.integers(min_value=17), st.just("2"), st.just(2.5))
bad_prompt = st.one_of(st.just(""), st.text(alphabet=" \t\n", max_size=6), st.integers(), st.none(),
                       st.lists(st.text(max_size=3), max_size=2), st.just("x" * 20_001))

invalid_change = st.one_of(
    bad_size.map(lambda v: {"width": v}),
    bad_size.map(lambda v: {"height": v}),
    bad_steps.map(lambda v: {"steps": v}),
    bad_guidance.map(lambda v: {"guidance": v}),
    bad_seed.map(lambda v: {"seed": v}),
    bad_count.map(lambda v: {"num_images": v}),
    bad_prompt.map(lambda v: {"prompt": v}),
    st.text(min_size=1, max_size=20).map(lambda v: {"negative_prompt": v}).filter(
        lambda d: d["negative_prompt"].strip()),
    st.floats(0.1, 1.0).map(lambda v: {"strength": v}),
    st.one_of(st.text(min_size=1, max_size=8), st.integers()).map(lambda v: {"model": f"nope-{v}"}),
    st.one_of(junk, st.just([("style", "loud")]), st.just([("/no/such/file.safetensors", 1.0)])).filter(
        lambda v: v not in (None, [], {}, ())).map(lambda v: {"loras": v}),
    st.one_of(st.integers(), st.just(0), st.just(""), st.text(min_size=1, max_size=4), st.just({"speed": "max"}),
              st.just({"offload": "sideways"})).map(lambda v: {"plan": v}),
    st.one_of(st.integers(), st.text(min_size=1, max_size=4).map(lambda s: f"/nonexistent/{s}.png")).map(
        lambda v: {"image": v}),
    junk.filter(lambda v: not isinstance(v, bool)).map(lambda v: {"save": v}),
)


@settings(max_examples=220, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(changes=st.lists(invalid_change, min_size=1, max_size=3))
def test_invalid_requests_end_in_a_masuka_error_with_a_code(changes):
    kwargs = dict(VALID)
    prompt = "a lighthouse"
    for change in changes:
        change = dict(change)
        prompt = change.pop("prompt", prompt)
        kwargs.update(change)
    try:
        mk.generate(prompt, **kwargs)
    except MasukaError as err:
        assert err.code and err.code != "MASUKA_ERROR" and err.code != "GENERATION_FAILED", str(err)
        return
    pytest.fail(f"accepted an invalid request: {prompt!r} {kwargs!r}")
