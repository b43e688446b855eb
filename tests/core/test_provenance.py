"""Provenance: the commit (also on a copy of the tree run elsewhere) and the accelerator."""

from __future__ import annotations

import subprocess

from rkdsc_core import provenance as prov


def test_provenance_names_the_accelerator_and_the_commit():
    out = prov.provenance({"a": 1}, seed=3)
    assert out["accelerator"] == prov.accelerator()
    assert out["accelerator"] == "cpu" or out["accelerator"].startswith("cuda:")
    assert out["seed"] == 3 and out["config"] == {"a": 1}
    assert out["git_sha"] != "unknown"  # the tests run inside the checkout


def test_git_sha_outside_a_checkout_is_unknown(monkeypatch, tmp_path):
    monkeypatch.setattr(prov, "_REPO", tmp_path)  # no .git here: rev-parse prints nothing
    monkeypatch.delenv("RKDSC_GIT_SHA", raising=False)
    assert prov.git_sha() == "unknown"


def test_git_sha_from_the_environment_wins_over_git(monkeypatch):
    monkeypatch.delenv("RKDSC_GIT_SHA", raising=False)
    assert prov.git_sha() != "0123abc"
    monkeypatch.setenv("RKDSC_GIT_SHA", "0123abc")  # a stale copy's own .git must not win
    assert prov.git_sha() == "0123abc"


def test_git_sha_without_git_installed_is_unknown(monkeypatch):
    def no_git(*a, **k):
        raise FileNotFoundError("git")

    monkeypatch.setattr(subprocess, "run", no_git)
    monkeypatch.delenv("RKDSC_GIT_SHA", raising=False)
    assert prov.git_sha() == "unknown"


def test_write_report_closes_a_script_report_with_seconds_and_provenance(tmp_path):
    import argparse
    import json
    import time

    args = argparse.Namespace(seed=5, n=10)
    rep = {"rows": [1, 2]}
    path = prov.write_report(tmp_path / "sub" / "r.json", rep, args, time.time() - 2.0)
    out = json.loads(path.read_text())
    assert out["rows"] == [1, 2] and 1.9 <= out["seconds"] <= 30.0
    assert out["provenance"]["seed"] == 5 and out["provenance"]["config"] == {"seed": 5, "n": 10}
    assert rep == {"rows": [1, 2]}  # the caller's dict is left as it was
