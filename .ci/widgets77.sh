#!/usr/bin/env bash
# Run the app's tests under ipywidgets 7.7.1 (what Colab ships) in a venv that sees every other
# system package, so only the widget version differs from the main test run.
# Usage: .ci/widgets77.sh [extra pytest args]   (VENV=/path reuses a venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-${TMPDIR:-/tmp}/masuka-widgets77}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv --system-site-packages "$VENV"
fi
if ! "$VENV/bin/python" -c 'import ipywidgets, sys; sys.exit(ipywidgets.__version__ != "7.7.1")' 2>/dev/null; then
  "$VENV/bin/python" -m pip install -q "ipywidgets==7.7.1"
fi
"$VENV/bin/python" -c 'import ipywidgets; print("ipywidgets", ipywidgets.__version__)'
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/ui "$@"
