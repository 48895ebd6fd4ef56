#!/usr/bin/env bash
# Run the app's tests under ipywidgets 7.7.1 (what Colab ships) in a venv that sees every other
# package of the calling interpreter (a venv or the system one), so only the widget version differs from the main test run.
# Usage: .ci/widgets77.sh [extra pytest args]   (VENV=/path reuses a venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-${TMPDIR:-/tmp}/masuka-widgets77}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv --system-site-packages "$VENV"
  # From inside a venv (as .ci/run is), --system-site-packages reaches only the base interpreter:
  # make the child see this interpreter's packages too (its own installs still come first).
  python3 -c 'import sys; from pathlib import Path; from masuka_nb.testing.colab import see_packages_of_this_interpreter as see; see(Path(sys.argv[1]))' "$VENV"
fi
if ! "$VENV/bin/python" -c 'import ipywidgets, sys; sys.exit(ipywidgets.__version__ != "7.7.1")' 2>/dev/null; then
  "$VENV/bin/python" -m pip install -q "ipywidgets==7.7.1"
fi
"$VENV/bin/python" -c 'import ipywidgets; print("ipywidgets", ipywidgets.__version__)'
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/ui "$@"
