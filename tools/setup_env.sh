#!/usr/bin/env bash
# Set-up step of both README commands; safe to run any number of times.
# Sourced: leaves the set-up Python in $CENTERNET_PY. Run: sets up and prints that Python.
# Uses the active virtual environment if there is one, else creates .venv in the repository.
_cn_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -n "${VIRTUAL_ENV:-}" ]; then
  CENTERNET_PY="$VIRTUAL_ENV/bin/python"
else
  if [ ! -x "$_cn_root/.venv/bin/python" ]; then
    echo "[setup] creating $_cn_root/.venv"
    python3 -m venv "$_cn_root/.venv" || { echo "[setup] python3 -m venv failed" >&2; exit 1; }
  fi
  CENTERNET_PY="$_cn_root/.venv/bin/python"
fi
export CENTERNET_PY
if [ "${BASH_SOURCE[0]}" = "$0" ]; then  # run: arguments are set-up options (--force)
  "$CENTERNET_PY" "$_cn_root/tools/setup_env.py" "$@" || exit 1
  echo "$CENTERNET_PY"
else  # sourced: the caller's arguments are not ours
  "$CENTERNET_PY" "$_cn_root/tools/setup_env.py" || return 1
fi
