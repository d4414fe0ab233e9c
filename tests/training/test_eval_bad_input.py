"""``dqt eval`` on a damaged artifact: the fake-quantized state and the metadata it reads are
checked like the rest of the artifact (one line, exit 2, never a traceback)."""
from __future__ import annotations

import json
import shutil

import pytest

from dqt.cli import main
from training.train import STATE_FILE, train_digits

TINY = dict(width=4, hidden=16, fp32_epochs=1, qat_epochs=1, batch_size=128, calib_batches=1,
            threads=1)


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "digits"
    train_digits(out, progress=False, **TINY)
    return out


def _damaged(art, tmp_path, fn):
    d = tmp_path / "a"
    shutil.copytree(art, d)
    fn(d)
    return d


def _truncate_state(d):
    p = d / STATE_FILE
    p.write_bytes(p.read_bytes()[:500])


def _state_not_a_zip(d):
    (d / STATE_FILE).write_bytes(b"\x80\x04K\x01.")   # a pickle


def _split_seed(d):
    m = json.loads((d / "manifest.json").read_text())
    m["metadata"]["dataset"]["split_seed"] = "seven"
    (d / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize("damage, words", [(_truncate_state, [STATE_FILE, "damaged"]),
                                           (_state_not_a_zip, [STATE_FILE, "not a zip"]),
                                           (_split_seed, ["split_seed"])])
def test_eval_of_a_damaged_artifact_is_one_line(art, tmp_path, capsys, damage, words):
    d = _damaged(art, tmp_path, damage)
    rc = main(["eval", str(d)])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err
