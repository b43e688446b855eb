#!/usr/bin/env bash
# Runs pytest; exit code 5 ("no tests collected") is a failure here, said plainly.
set -uo pipefail
py=$1; shift
HF_HUB_OFFLINE=1 "$py" -m pytest "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "run_pytest: pytest collected no tests (exit 5): treating as failure" >&2
  exit 1
fi
exit $rc
