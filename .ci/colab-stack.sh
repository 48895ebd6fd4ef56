#!/usr/bin/env bash
# CI's second leg: the whole suite on Colab's stack. Builds a Python 3.13 venv that holds the part of Colab's
# image MASUKA and its tests use, at Colab's versions (tests/data/colab/pip-freeze.gpu.txt as constraints; the
# few lines that cannot apply off Colab are dropped as .ci/colab_stack.py says and prints), runs setup_colab.py
# the way the notebooks do (in-process, Colab branch), checks setup moved nothing, adds the test tools Colab
# lacks without moving anything either, then runs the README's test command there.
#   Usage: .ci/colab-stack.sh [extra pytest args]
#   COLAB_STACK_VENV=/path reuses (or places) the venv; COLAB_PYTHON=/path/to/python3.13 picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
unset PYTHONPATH
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
PY313=$(find_python313) || { echo "no Python 3.13 (Colab's): set COLAB_PYTHON or install one (pyenv install 3.13)"; exit 1; }

WORK=$(mktemp -d)
VENV="${COLAB_STACK_VENV:-$WORK/venv}"
echo "== Colab stack: venv $VENV from $("$PY313" --version) ($PY313)"
[ -x "$VENV/bin/python" ] || "$PY313" -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" .ci/colab_stack.py constraints "$WORK/colab-constraints.txt"

# 1. Colab's image, the part MASUKA and its tests use: each at the freeze's version (torch 2.11.0 from PyPI,
#    which pulls its own CUDA 13 runtime wheels: `import torch` needs them even on a CPU).
mapfile -t IMAGE < <("$PY" .ci/colab_stack.py image-packages)
echo "== Colab's packages at Colab's versions: ${IMAGE[*]}"
"$PY" -m pip install -q --constraint "$WORK/colab-constraints.txt" "${IMAGE[@]}"
"$PY" .ci/colab_stack.py verify

# 2. setup_colab.py as the notebooks' setup cell runs it: in-process, on "Colab" (so extras=colab), --yes.
#    MASUKA's home goes to a temp folder, not /content.
echo "== setup_colab.py, the notebooks' way"
COLAB_RELEASE_TAG=ci-colab-stack MASUKA_HOME="$WORK/masuka-home" \
  "$PY" -c 'import sys; import setup_colab; sys.exit(setup_colab.main(["--from", ".", "--yes"]))'
"$PY" .ci/colab_stack.py verify  # setup changed the version of nothing Colab has

# 3. The test tools Colab lacks (dev extra), with every installed package held where it is.
mapfile -t DEV < <("$PY" .ci/colab_stack.py missing-dev)
"$PY" .ci/colab_stack.py pins "$WORK/pins.txt"
if [ "${#DEV[@]}" -gt 0 ]; then
  echo "== test tools Colab lacks: ${DEV[*]}"
  "$PY" -m pip install -q --constraint "$WORK/pins.txt" "${DEV[@]}"
fi
"$PY" .ci/colab_stack.py verify
"$PY" -m pip check || echo "(pip check above: problems between Colab's own pins, as on Colab)"
echo "== Colab stack ready in $(( $(date +%s) - start )) s"

# 4. The README's test command, on that stack.
echo "== tests on Colab's stack"
PATH="$VENV/bin:$PATH" "$PY" -m pytest "$@"
echo "== Colab stack leg took $(( $(date +%s) - start )) s"
