"""A Colab rehearsal: run a notebook (or any code) as if inside Google Colab, on this machine.

    from masuka_nb.testing.colab import ColabRehearsal

    colab = ColabRehearsal(tmp_path, secrets={"COMETAPI_KEY": "sk-..."}, uploads={"a.png": png_bytes})
    colab.prepare(checkout=repo_root)          # stand-in google.colab, /content-like folder, kernel venv
    env = colab.env()                          # give it to the kernel (or `with colab.active():` in-process)
    papermill.execute_notebook(nb, out, cwd=colab.content, kernel_name=colab.kernel_name, ...)

What it stands in for, as Colab documents it (https://colab.research.google.com/notebooks/io.ipynb,
https://colab.research.google.com/notebooks/snippets/secrets.ipynb):

- `google.colab.drive.mount(mountpoint)`: asks for consent (`drive_consent=False` refuses, as a user
  closing the dialog does: ``ValueError: mount failed``), then the folder ``<content>/drive/MyDrive``
  exists, under a temp dir. Like Drive, it refuses symlinks (`os.symlink` into it raises).
- `google.colab.userdata.get(name)`: secrets from a dict; a missing one raises
  `userdata.SecretNotFoundError`, one without notebook access (`no_access`) `userdata.NotebookAccessError`.
- `google.colab.files.upload()`: writes each of `uploads` into the cwd and returns ``{name: bytes}``;
  `files.download(path)` records the path (``FileNotFoundError`` when it does not exist).
- `google.colab.output.no_vertical_scroll()` (recorded), and `enable_custom_widget_manager()` (recorded:
  MASUKA must never call it; `calls()` lets a test check).
- ``COLAB_RELEASE_TAG`` set, a ``/content``-like working folder, and a kernel in a throwaway venv that
  sees this interpreter's packages, so setup's Colab branch can really install (into the venv only).

Not reproduced: Colab's Python (3.13) and ipywidgets 7.7.1 are whatever this interpreter has (CI reruns
the app's tests under 7.7.1 separately); no GPU; the Drive mount is a plain folder, not a FUSE mount.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["RELEASE_TAG", "ColabRehearsal", "see_packages_of_this_interpreter"]

RELEASE_TAG = "release-colab_rehearsal-masuka"
CONFIG_ENV = "COLAB_STANDIN_CONFIG"
_STANDIN = "masuka_nb.testing.colab_standin"

# google/colab/<module>.py → the names it re-exports from the stand-in implementation.
_MODULES = {
    "__init__": "",
    "drive": "mount, flush_and_unmount",
    "userdata": "get, SecretNotFoundError, NotebookAccessError, TimeoutException",
    "files": "upload, download",
    "output": "no_vertical_scroll, enable_custom_widget_manager, clear, eval_js",
}


def see_packages_of_this_interpreter(venv: Path) -> None:
    """Make the venv at `venv` see this interpreter's packages, wherever they are.

    ``venv --system-site-packages`` only reaches the *base* interpreter's site-packages: made from inside
    a venv it would miss that venv's torch. A `.pth` calling `site.addsitedir` on each of our site folders
    adds them after the child's own (its installs win) and processes their `.pth` files (editable installs).
    """
    import site
    import sysconfig

    paths = sysconfig.get_paths()
    ours = [p for p in dict.fromkeys([*site.getsitepackages(), paths["purelib"], paths["platlib"]])
            if Path(p).is_dir()]
    python = venv / "bin" / "python"
    child = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           capture_output=True, text=True, check=True).stdout.strip()
    lines = [f"import site; site.addsitedir({p!r})" for p in ours]
    (Path(child) / "_parent_interpreter.pth").write_text("\n".join(lines) + "\n", encoding="utf-8")


@dataclass
class ColabRehearsal:
    """A stand-in Colab under `root`. `prepare()` writes it; `env()` / `active()` switch it on."""

    root: Path
    secrets: dict[str, str] = field(default_factory=dict)
    no_access: set[str] = field(default_factory=set)
    uploads: dict[str, bytes] = field(default_factory=dict)
    drive_consent: bool = True
    kernel_name: str = "colab-rehearsal"

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    @property
    def content(self) -> Path:
        """The `/content` of this rehearsal: the notebook's working folder."""
        return self.root / "content"

    @property
    def drive_root(self) -> Path:
        return self.content / "drive" / "MyDrive"

    @property
    def _site(self) -> Path:
        return self.root / "site"

    @property
    def _config(self) -> Path:
        return self.root / "colab.json"

    @property
    def _calls(self) -> Path:
        return self.root / "calls.jsonl"

    # ---- building it ----

    def prepare(self, *, checkout: Path | None = None, kernel: bool = True) -> ColabRehearsal:
        """Write the stand-in package and its settings; copy `checkout` to ``content/masuka-src`` (where
        the notebooks' setup cell clones the repo on Colab); with `kernel`, make the venv kernel."""
        self.content.mkdir(parents=True, exist_ok=True)
        pkg = self._site / "google" / "colab"
        pkg.mkdir(parents=True, exist_ok=True)
        # `google` stays a namespace package (no __init__): protobuf and friends live there too.
        for module, names in _MODULES.items():
            body = f'"""Stand-in for Colab\'s google.colab{"." + module if module != "__init__" else ""} '
            body += '(masuka_nb.testing.colab)."""\n'
            if names:
                body += f"from {_STANDIN} import {names}  # noqa: F401\n"
            else:
                body += "from google.colab import drive, files, output, userdata  # noqa: F401\n"
            (pkg / f"{module}.py").write_text(body, encoding="utf-8")
        self._config.write_text(json.dumps({
            "content": str(self.content), "calls": str(self._calls), "secrets": self.secrets,
            "no_access": sorted(self.no_access), "drive_consent": self.drive_consent,
            "uploads": {name: data.hex() for name, data in self.uploads.items()},
        }), encoding="utf-8")
        if checkout is not None:
            _copy_checkout(Path(checkout), self.content / "masuka-src")
        if kernel:
            self._make_kernel()
        return self

    def _make_kernel(self) -> None:
        venv = self.root / "kernel-venv"
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
                           check=True)
            if sys.prefix != sys.base_prefix:
                see_packages_of_this_interpreter(venv)
        spec = self.root / "jupyter" / "kernels" / self.kernel_name
        spec.mkdir(parents=True, exist_ok=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [str(venv / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (Colab rehearsal)", "language": "python",
        }), encoding="utf-8")

    # ---- switching it on ----

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The environment a Colab kernel of this rehearsal runs with."""
        env = dict(os.environ if base is None else base)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(self._site), env.get("PYTHONPATH", "")) if p)
        env["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(self.root / "jupyter"), env.get("JUPYTER_PATH", "")) if p)
        env["COLAB_RELEASE_TAG"] = RELEASE_TAG
        env[CONFIG_ENV] = str(self._config)
        env["MASUKA_DRIVE_ROOT"] = str(self.drive_root)
        return env

    @contextlib.contextmanager
    def active(self) -> Iterator[ColabRehearsal]:
        """This process as a Colab kernel for the block (env, `sys.path`, a fresh `google.colab`)."""
        saved = dict(os.environ)
        path = list(sys.path)
        try:
            os.environ.clear()
            os.environ.update(self.env(saved))
            sys.path.insert(0, str(self._site))
            _forget_google()
            yield self
        finally:
            os.environ.clear()
            os.environ.update(saved)
            sys.path[:] = path
            _forget_google()

    def calls(self) -> list[dict]:
        """What the notebook asked of Colab, in order: ``{"api": "drive.mount", ...}``."""
        if not self._calls.is_file():
            return []
        return [json.loads(line) for line in self._calls.read_text(encoding="utf-8").splitlines() if line]


def _forget_google() -> None:
    for name in [m for m in sys.modules if m == "google.colab" or m.startswith("google.colab.")]:
        del sys.modules[name]


def _copy_checkout(src: Path, dest: Path) -> None:
    """What a shallow clone of the repo holds, as far as setup and the notebooks need."""
    if dest.exists():
        return
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "setup_colab.py", "README.md", "LICENSE"):
        if (src / name).exists():
            shutil.copy2(src / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    shutil.copytree(src / "masuka_nb", dest / "masuka_nb", ignore=ignore)
    if (src / "notebooks").is_dir():
        shutil.copytree(src / "notebooks", dest / "notebooks", ignore=ignore)
