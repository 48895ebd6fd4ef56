#!/usr/bin/env bash
# CI's second leg: the whole suite on Colab's stack. Builds a Python 3.13 venv holding the part of Colab's
# image that MASUKA and its tests use, at Colab's versions (tests/data/colab/pip-freeze.gpu.txt as
# constraints; .ci/colab_stack.py says and prints which lines cannot apply off Colab and are dropped), runs
# setup_colab.py the way the notebooks' setup cell does, checks that it moved nothing, adds the test tools
# Colab lacks without moving anything either, then runs the README's test command there, notebooks included.
#   Usage: .ci/colab-stack.sh [extra pytest args]
#   COLAB_STACK_VENV=/path places (or reuses) the venv; COLAB_PYTHON=/path/to/python3.13 picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
unset PYTHONPATH PIP_CONSTRAINT
start=$(date +%s)

find_python313() {
  if [ -n "${COLAB_PYTHON:-}" ]; then echo "$COLAB_PYTHON"; return; fi
  local candidate
  for candidate in "$(command -v python3.13 || true)" \
      $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3.13 2>/dev/null | sort -rV); do
    if [ -n "$candidate" ] && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then
      echo "$candidate"; return
    fi
  done
  return 1
}
PY313=$(find_python313) || { echo "no Python 3.13 (Colab's): set COLAB_PYTHON, or pyenv install 3.13"; exit 1; }

WORK=$(mktemp -d)
VENV="${COLAB_STACK_VENV:-$WORK/venv}"
echo "== Colab stack: venv $VENV from $("$PY313" --version) ($PY313)"
[ -x "$VENV/bin/python" ] || "$PY313" -m venv "$VENV"
PY="$VENV/bin/python"
# pip, minus the lines this machine's extra local indexes print for every package they do not hold
pip_() { "$PY" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
"$PY" .ci/colab_stack.py constraints "$WORK/colab-constraints.txt"

# 1. Colab's image, the part MASUKA and its tests use, each at the freeze's version (and Colab's pip, which
#    setup drives). torch 2.11.0 comes from PyPI with its own CUDA 13 runtime wheels: `import torch` needs
#    them even on a CPU.
mapfile -t IMAGE < <("$PY" .ci/colab_stack.py image-packages)
echo "== Colab's packages at Colab's versions: pip ${IMAGE[*]}"
pip_ install -q --constraint "$WORK/colab-constraints.txt" pip
pip_ install -q --constraint "$WORK/colab-constraints.txt" "${IMAGE[@]}"
"$PY" .ci/colab_stack.py verify

# 2. setup_colab.py as the notebooks' setup cell runs it: setup_colab.main([...]) in Python, on "Colab"
#    (so extras=colab), --yes. MASUKA's home goes to a temp folder, not /content. On Colab every package of
#    the image is installed, so setup pins it; the ones this venv lacks are pinned through PIP_CONSTRAINT,
#    so what setup brings in (scipy for imagehash...) comes at Colab's version, as it is there already.
echo "== setup_colab.py, the notebooks' way"
PIP_CONSTRAINT="$WORK/colab-constraints.txt" COLAB_RELEASE_TAG=ci-colab-stack MASUKA_HOME="$WORK/masuka-home" \
  "$PY" -c 'import sys; import setup_colab; sys.exit(setup_colab.main(["--from", ".", "--yes"]))'
"$PY" .ci/colab_stack.py verify  # setup changed the version of nothing Colab has

# 3. The test tools Colab lacks (the dev extra), every installed package held where it is.
mapfile -t DEV < <("$PY" .ci/colab_stack.py missing-dev)
if [ "${#DEV[@]}" -gt 0 ]; then
  echo "== test tools Colab lacks: ${DEV[*]}"
  "$PY" .ci/colab_stack.py pins "$WORK/pins.txt"
  # (pip notes each aiobotocore 3.x it looks at, which no longer has the boto3 extra: noise)
  if ! pip_ install -q --constraint "$WORK/pins.txt" "${DEV[@]}" >"$WORK/dev.log" 2>&1; then
    cat "$WORK/dev.log"; echo "installing the test tools failed"; exit 1
  fi
  grep -v "does not provide the extra" "$WORK/dev.log" || true
fi
"$PY" .ci/colab_stack.py verify --test-tools-installed
"$PY" -m pip check || echo "(pip check: problems among the installed packages, listed above)"
"$PY" -c 'import torch, diffusers, transformers, huggingface_hub, ipywidgets, PIL, torchvision, sys
print("stack: Python", sys.version.split()[0], "torch", torch.__version__, "diffusers", diffusers.__version__,
      "transformers", transformers.__version__, "hub", huggingface_hub.__version__, "ipywidgets",
      ipywidgets.__version__, "Pillow", PIL.__version__, "torchvision", torchvision.__version__)'
echo "== Colab stack ready in $(( $(date +%s) - start )) s"

# 4. The README's test command on that stack (its python3 first on PATH, as the venv's own would be).
echo "== tests on Colab's stack"
export VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH"
status=0
python3 -m pytest "$@" || status=$?
echo "== Colab stack leg took $(( $(date +%s) - start )) s"
[ -z "${COLAB_STACK_VENV:-}" ] && rm -rf "$WORK"
exit "$status"
