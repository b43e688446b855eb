"""Committed results and bundles carry no machine-specific absolute paths (README standards):
temporary paths are written `<tmp>/NAME`, everything else relative to the checkout."""

from __future__ import annotations

import re
import subprocess

from core_helpers import REPO

#: an absolute path into a machine's own folders (home, temp, this workplace, a user's checkout)
MACHINE_PATH = re.compile(r"(?<![\w<.])/(?:tmp|home|root|work|Users|var/folders)/")


def _committed(*patterns: str) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", *patterns], cwd=REPO, capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def test_committed_json_and_bundle_manifests_hold_no_machine_paths() -> None:
    files = _committed("results/*.json", "results/**/*.json", "rkdsc_core/bundles/**")
    files = [f for f in files if f.endswith((".json", ".yaml"))]
    assert len(files) > 10, "the results and bundle files were not found"
    bad = []
    for f in files:
        for i, line in enumerate((REPO / f).read_text().splitlines(), 1):
            if MACHINE_PATH.search(line):
                bad.append(f"{f}:{i}: {line.strip()[:120]}")
    assert not bad, "machine paths in committed files:\n" + "\n".join(bad)


def test_the_pattern_finds_machine_paths_and_spares_placeholders() -> None:
    assert MACHINE_PATH.search("out_dir=/tmp/e40")
    assert MACHINE_PATH.search('"--bundle /work/main/rkdsc_core"')
    assert not MACHINE_PATH.search("out_dir=<tmp>/e40")
    assert not MACHINE_PATH.search("results/baselines/x.json")
