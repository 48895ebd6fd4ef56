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


LAZY_PACKAGES = ["masuka_nb", "masuka_nb.image", "masuka_nb.video", "masuka_nb.lora", "masuka_nb.ui"]


def test_no_submodule_shadows_a_public_name():
    """Importing `pkg.x` binds the module `x` on `pkg`: a submodule named like a public function would
    replace that function for everyone once anything imports it."""
    import importlib

    from masuka_nb._lazy import resolve

    for package in LAZY_PACKAGES:
        pkg = importlib.import_module(package)
        folder = Path(pkg.__file__).parent
        for name, target in pkg._LAZY.items():
            _, attr = resolve(target, name)
            if attr is None:  # the export *is* the module
                continue
            assert not (folder / f"{name}.py").exists() and not (folder / name / "__init__.py").exists(), (
                f"{package}.{name} is both a public name and a submodule")


def test_public_names_survive_importing_every_submodule():
    code = (
        "import importlib, pkgutil, types, masuka_nb\n"
        "for m in pkgutil.walk_packages(masuka_nb.__path__, 'masuka_nb.'):\n"
        "    if '.testing.fakes.__main__' in m.name or m.name.endswith('__main__'): continue\n"
        "    importlib.import_module(m.name)\n"
        "for pkg in %r:\n"
        "    p = importlib.import_module(pkg)\n"
        "    for n, t in p._LAZY.items():\n"
        "        v = getattr(p, n)\n"
        "        assert isinstance(v, types.ModuleType) == (not isinstance(t, str) and t[1] is None), (pkg, n)\n"
    ).replace("%r", repr(LAZY_PACKAGES))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
