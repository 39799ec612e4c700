"""PAL plumbing: programs built from GSM8K's `<<expr=value>>` steps run in the sandbox and print the values."""

from __future__ import annotations

import json
import time

import pytest

from reasonloop.verify.programs import REL_TOL, annotation_program, check_printed
from reasonloop.verify.sandbox import run_many


def test_each_step_is_assigned_and_printed():
    program = annotation_program("Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\nShe makes 9 * 2 = $<<9*2=18>>18.\n#### 18")
    assert program.source == "step_1 = 16 - 3 - 4\nprint(step_1)\nstep_2 = 9 * 2\nprint(step_2)\n"
    assert (program.expected, program.skipped) == (("9", "18"), ())


def test_only_calculator_arithmetic_gets_into_a_program():
    program = annotation_program("<<__import__('os').system('id')=0>> <<(2+3)*4=20>> <<2**99999=1>> <<x*2=4>>")
    assert program.source == "step_1 = (2 + 3) * 4\nprint(step_1)\n"
    assert program.skipped == (
        "step 1: \"__import__('os').system('id')\" is no arithmetic the calculator reads",
        "step 3: '2**99999' is no arithmetic the calculator reads",
        "step 4: 'x*2' is no arithmetic the calculator reads",
    )
    assert annotation_program("no steps here\n#### 4") == annotation_program("")


def test_printed_values_are_compared_within_the_tolerance():
    assert check_printed("0.30000000000000004\n0.75\n1250\n", ("0.3", "3/4", "1,250")) == []
    assert REL_TOL == 1e-6
    assert check_printed("100.001\n", ("100",)) == ["step 1: printed 100.001, recorded 100"]
    assert check_printed("1\n", ("1", "2")) == ["printed 1 lines for 2 steps"]
    assert check_printed("nan\n", ("2",)) == ["step 1: cannot compare 'nan' with '2'"]


def gsm8k_programs(shared_data, limit=None):
    rows = [json.loads(line) for line in (shared_data / "gsm8k" / "test.jsonl").read_text().splitlines()[:limit]]
    return [annotation_program(row["answer"]) for row in rows]


def run_and_check(programs):
    start = time.perf_counter()
    results = run_many([program.source for program in programs], timeout_s=5, memory_mb=256)
    seconds = time.perf_counter() - start
    failures = [(index, result.reason, check_printed(result.stdout, program.expected))
                for index, (program, result) in enumerate(zip(programs, results))
                if result.status != "ok" or check_printed(result.stdout, program.expected)]
    return failures, seconds


def test_the_first_gsm8k_test_programs_print_their_recorded_values(shared_data):
    programs = gsm8k_programs(shared_data, limit=40)
    assert sum(len(program.expected) for program in programs) == 129
    assert run_and_check(programs)[0] == []


@pytest.mark.slow
def test_every_gsm8k_test_program_prints_its_recorded_values(shared_data):
    programs = gsm8k_programs(shared_data)
    steps = sum(len(program.expected) for program in programs)
    assert (len(programs), steps, sum(len(p.skipped) for p in programs)) == (1319, 4282, 0)
    failures, seconds = run_and_check(programs)
    print(f"\nPAL plumbing: {len(programs)} programs, {steps} steps, {seconds:.1f} s wall "
          f"({len(programs) / seconds:.0f} programs/s), {len(failures)} failures")
    assert failures == []
