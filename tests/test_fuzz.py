"""Fuzzing: hypothesis-generated corruptions of a valid artifact (bytes of both files, JSON
values, array shapes, dtypes, values, hashes) and of command lines. Every outcome is a
correct result (checked against an independent reference run) or exit 2 with one line and
no output left behind; never a traceback. bench/fuzz_artifacts.py runs thousands."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from dqt import fuzz

#: examples per family in the normal suite (bench/fuzz_artifacts.py runs 2000+ in all)
EXAMPLES = 30


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return fuzz.make_base(tmp_path_factory.mktemp("fuzz"))


@pytest.mark.parametrize("family", fuzz.FAMILIES)
def test_every_corruption_is_a_result_or_a_one_line_refusal(family, base, tmp_path):
    outcomes = {}

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=fuzz.strategy(base, family))
    def check(case):
        outcome, problem = fuzz.run_case(base, case, tmp_path / "w")
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        assert problem is None, f"{case.what}: {outcome}: {problem}"

    check()
    print(family, outcomes)
    assert sum(outcomes.values()) >= EXAMPLES // 2
