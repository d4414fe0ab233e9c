"""slang (through pyslang), a second SystemVerilog front end, parses and elaborates every
file ``dqt rtl generate`` writes, the default engine included, without errors."""
import json

import pytest

pytest.importorskip("pyslang")

from rtl.generate import generate  # noqa: E402
from rtl.lint import slang_check  # noqa: E402


@pytest.fixture(scope="module")
def default_rtl(tmp_path_factory):
    out = tmp_path_factory.mktemp("slang") / "v"
    generate(out, progress=False)
    return out, json.loads((out / "manifest.json").read_text())


def test_every_generated_file_elaborates(default_rtl):
    out, man = default_rtl
    assert len(man["modules"]) >= len({m["component"] for m in man["modules"]}) > 5
    bad = {}
    for m in man["modules"]:
        ok, text = slang_check(out / m["file"], m["top"])
        if not ok:
            bad[m["file"]] = text[-2000:]
    assert not bad, bad


def test_slang_reports_an_elaboration_error(default_rtl, tmp_path):
    """A file that parses but does not elaborate (an undeclared signal) fails the check, and
    so does a top module that is not in the file."""
    out, man = default_rtl
    m = man["modules"][0]
    text = (out / m["file"]).read_text()
    broken = tmp_path / m["file"]
    broken.write_text(text.replace("endmodule", "  wire [3:0] reads_undeclared = undeclared_wire_x;\nendmodule", 1))
    ok, diag = slang_check(broken, m["top"])
    assert not ok and "undeclared_wire_x" in diag
    ok, diag = slang_check(out / m["file"], "no_such_top")
    assert not ok and "no_such_top" in diag
