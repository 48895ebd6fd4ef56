import subprocess
import sys
import types
from pathlib import Path

import masuka_nb

ROOT = Path(__file__).resolve().parents[1]


def test_import_loads_no_heavy_library():
    code = (
        "import masuka_nb, sys; heavy = {'torch','diffusers','transformers','ipywidgets','httpx','pydantic'}"
        " & set(sys.modules); assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_all_is_sorted_and_equals_the_public_names():
    assert masuka_nb.__all__ == sorted(masuka_nb.__all__)
    assert set(masuka_nb.__all__) == {*masuka_nb._LAZY, "__version__"}
    public = {n for n in dir(masuka_nb) if not n.startswith("_")} | {"__version__"}
    # Importing a submodule anywhere binds it on the package; those are reachable, not public API.
    public -= {n for n in public - set(masuka_nb.__all__)
               if isinstance(getattr(masuka_nb, n), types.ModuleType)}
    assert set(masuka_nb.__all__) == public


def test_every_public_name_resolves():
    for name in masuka_nb.__all__:
        assert getattr(masuka_nb, name) is not None, name


def test_unknown_attribute_is_an_attribute_error():
    try:
        masuka_nb.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
