"""``dqt flow`` stage cache keys cover every source a stage imports."""
from __future__ import annotations

import shutil

from dqt.flow import PACKAGES, ROOT, STAGE_ENTRIES, stage_digests, stage_sources


def _tree(tmp_path):
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return tmp_path


def _changed(root, rel):
    before = stage_digests(root)
    with open(root / rel, "a") as f:
        f.write("\n# edited\n")
    after = stage_digests(root)
    return {s for s in before if before[s] != after[s]}


def test_a_golden_only_change_reruns_sim_and_report(tmp_path):
    root = _tree(tmp_path)
    assert {"sim", "report", "rtl"} <= _changed(root, "golden/ops.py")


def test_a_component_named_only_in_the_catalog_is_covered(tmp_path):
    # rtl/nested_mac.py is imported by name ("rtl.nested_mac:NestedMac"), not by a statement
    root = _tree(tmp_path)
    assert {"rtl", "sim", "report"} <= _changed(root, "rtl/nested_mac.py")
    assert _changed(root, "reports/render.py") == {"report"}


def test_sources_are_project_files():
    for entries in STAGE_ENTRIES.values():
        files = stage_sources(entries)
        assert files and all(f.is_relative_to(ROOT) and f.suffix == ".py" for f in files)
