#!/usr/bin/env bash
# Idempotent set-up: Debian packages (when root with apt), a venv that sees GNU Radio, the project.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
# gnuradio is installed without its recommends; GNU Radio Companion's GTK front end needs these
# three besides (without them: "Failed to initialize GTK ... Namespace Gtk not available").
DEB_PKGS=(gnuradio dataset-fashion-mnist python3-gi python3-gi-cairo gir1.2-gtk-3.0)

missing=()
if command -v dpkg >/dev/null 2>&1; then
  for p in "${DEB_PKGS[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing ${missing[*]}: install them with 'sudo apt-get install" \
         "${missing[*]}' (Debian/Ubuntu; GNU Radio also from radioconda); continuing without them"
  fi
fi

# The interpreter that imports gnuradio (Debian's), else the best available one.
PYBASE=""
for cand in /usr/bin/python3 python3; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c "import gnuradio" >/dev/null 2>&1; then
    PYBASE=$(command -v "$cand"); break
  fi
done
if [ -z "$PYBASE" ]; then
  PYBASE=$(command -v /usr/bin/python3 || command -v python3)
  echo "setup: no Python imports gnuradio; using $PYBASE (GNU Radio blocks and tests will be skipped)"
fi

if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.base" 2>/dev/null)" != "$PYBASE" ]; then
  echo "setup: $VENV was made from another Python; recreating it"
  rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PYBASE" -m venv --system-site-packages "$VENV"
  echo "$PYBASE" > "$VENV/.base"
fi

stamp="$VENV/.installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing the project into $VENV (first time: torch wheels, a few minutes)"
  "$VENV/bin/python" -m pip install -q --upgrade "pip>=23" "setuptools>=64" wheel
  # numpy<2 for GNU Radio 3.10's bindings; keep any site-wide pip cap (e.g. local torch wheels).
  printf 'numpy<2\n' > "$VENV/constraints.txt"
  site_cap=$("$VENV/bin/python" -m pip config get global.constraint 2>/dev/null || true)
  [ -n "$site_cap" ] && [ -f "$site_cap" ] && cat "$site_cap" >> "$VENV/constraints.txt"
  "$VENV/bin/python" -m pip install -q -c "$VENV/constraints.txt" -e '.[dev]' 2>&1 \
    | grep -v "^WARNING: Location" || true
  "$VENV/bin/python" -c "import torch, numpy" >/dev/null || { echo "setup: install failed"; exit 1; }
  touch "$stamp"
fi
echo "setup: ready ($("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])'), $VENV)"
