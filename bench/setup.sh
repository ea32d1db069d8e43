#!/usr/bin/env bash
# Installs LiteLLM proxy (PyPI `litellm[proxy]==1.100.5`, see the design notes, shared/DESIGN.md) into the
# project venv for the side-by-side benchmark. Idempotent; exits 0 if it is already installed.
# Exit status != 0 means LiteLLM is unavailable (the benchmark still runs cells a and b).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
LITELLM_VERSION="${LITELLM_VERSION:-1.100.5}"
[ -x "$VENV/bin/python3" ] || python3 -m venv "$VENV"
if "$VENV/bin/python3" -c "import importlib.metadata as m, sys; sys.exit(0 if m.version('litellm') == '$LITELLM_VERSION' else 1)" 2>/dev/null \
   && [ -x "$VENV/bin/litellm" ]; then
  echo "litellm $LITELLM_VERSION already installed in $VENV"
  exit 0
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check "litellm[proxy]==$LITELLM_VERSION"
"$VENV/bin/litellm" --version >/dev/null 2>&1 || true
echo "litellm $LITELLM_VERSION installed in $VENV"
