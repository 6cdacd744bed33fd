#!/usr/bin/env bash
# One entry point for learners, instructors and CI.
#   bash course.sh lab    set up .venv (first time only) and open the course in JupyterLab
#   bash course.sh test   set up .venv (first time only) and run every test
#   bash course.sh setup  only set up .venv
# Environment: PYTHON (interpreter to build .venv from, default python3),
#              TORCH_SPEC (pip requirement for torch, default "torch>=2.2,<3";
#              CI pins a CPU build with TORCH_SPEC=torch==2.13.0).
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv
PY="$VENV/bin/python"

setup() {
  if [ ! -x "$PY" ]; then
    "${PYTHON:-python3}" -m venv "$VENV"
  fi
  "$PY" -m pip install -q --upgrade pip >/dev/null
  # torch first and on its own, so that a pinned build (CI) is the one kept.
  if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    "$PY" -m pip install -q "${TORCH_SPEC:-torch>=2.2,<3}"
  fi
  "$PY" -m pip install -q -e ".[dev]"
}

case "${1:-}" in
  setup) setup ;;
  lab)
    setup
    shift
    exec "$VENV/bin/jupyter" lab --notebook-dir=. "notebooks/00_welcome.ipynb" "$@"
    ;;
  test)
    setup
    shift
    export COURSEKIT_FAST=1 MPLBACKEND=Agg
    exec "$VENV/bin/python" -m pytest tests notebooks solutions \
      --nbval-lax --nbval-current-env --nbval-cell-timeout=300 -p no:cacheprovider "$@"
    ;;
  *)
    echo "usage: bash course.sh lab|test|setup" >&2
    exit 2
    ;;
esac
