import pytest

from golden.formats import DQTValueError
from reports.energy_model import HOROWITZ_45NM, add_pj, mac_model, mult_pj, per_op_model


def test_anchors_are_reproduced():
    # The model must pass through every published 45 nm integer anchor it cites.
    assert add_pj(8) == pytest.approx(HOROWITZ_45NM["add8"])
    assert add_pj(32) == pytest.approx(HOROWITZ_45NM["add32"])
    assert mult_pj(8) == pytest.approx(HOROWITZ_45NM["mult8"])
    assert mult_pj(32) == pytest.approx(HOROWITZ_45NM["mult32"])


def test_monotone_in_width_and_precision():
    assert add_pj(4) < add_pj(8) < add_pj(16)
    assert mult_pj(4) < mult_pj(8) < mult_pj(16)
    for fam in ("int_mac", "nested_mac", "bitserial_mac"):
        e = [mac_model(fam, 8, b) for b in (2, 4, 6, 8)]
        assert e == sorted(e) and e[0] < e[-1]
    # round mode adds two adders per MAC
    assert per_op_model("nested_mac", 8, 4, {"mode": "round"}) > per_op_model("nested_mac", 8, 4)
    # the float baseline costs more per element than a nested shift
    assert per_op_model("fp32_requant", 8, 8) > per_op_model("nested_shift", 8, 4, {"mode": "round"})


def test_bad_widths_raise():
    with pytest.raises(DQTValueError, match="width"):
        add_pj(0)
    with pytest.raises(DQTValueError, match="no MAC model"):
        mac_model("nope", 8, 8)
