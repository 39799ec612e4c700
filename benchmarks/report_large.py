"""How the report copes with a full GSM8K run: 1,319 problems x 4 samples of real model text.

The four samples of each problem are the four GPT-3 solutions in
../shared/data/model-outputs (6B/175B, fine-tuned/verifier-selected), graded by the shared
verifier through `evaluate_attempts`. Prints the report's build time and size and, when
Debian's Chromium and chromedriver are installed, how fast the page gets ready and how
long filtering, paging and searching take in it.

    OMP_NUM_THREADS=2 flock /tmp/rl-heavy.lock .venv/bin/python benchmarks/report_large.py
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from reasonloop.evaluate.runner import evaluate_attempts
from reasonloop.records import Attempt
from reasonloop.report import build_report
from reasonloop.sources.datasets import load_problems

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MODELS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000")


def make_run(out_dir: Path) -> Path:
    problems = load_problems(DATA / "gsm8k/test.jsonl", preset="gsm8k").records
    lines = (DATA / "model-outputs/gsm8k_gpt3_solutions.jsonl").read_text().splitlines()
    attempts = []
    for problem, line in zip(problems, lines):
        output = json.loads(line)
        for index, model in enumerate(MODELS):
            text = output[model]["solution"]
            attempts.append(Attempt(problem_id=problem.id, prompt=problem.question, completion=text,
                                    model="gpt3", sample_index=index, tokens=len(text.split())))
    evaluate_attempts(attempts, "gsm8k", out_dir, data=str(DATA / "gsm8k/test.jsonl"), strategy="sample",
                      progress=False)
    return out_dir


def browser_timings(report: Path, workdir: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (*FLAGS, f"--user-data-dir={workdir / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path="/usr/bin/chromedriver"))
    try:
        start = time.perf_counter()
        driver.get(report.as_uri())  # returns after the load event: the viewer has drawn its first page
        ready = time.perf_counter() - start
        rows = driver.execute_script("return document.querySelectorAll('#trace-table tbody tr').length")
        # the action, then a forced layout, so the time includes the browser laying out the new rows
        timed = """const t = performance.now(); %s; document.body.getBoundingClientRect(); return performance.now() - t;"""
        filter_ms = driver.execute_script(timed % "document.querySelector('#status-filters [data-status=incorrect]').click()")
        page_ms = driver.execute_script(timed % "document.getElementById('next-page').click()")
        all_ms = driver.execute_script(timed % "document.querySelector('#status-filters [data-status=all]').click()")
        detail_ms = driver.execute_script(timed % "document.querySelector('#trace-table tbody tr').click()")
        print(f"chromium: page ready in {ready:.2f} s ({rows} rows drawn); filter by verdict {filter_ms:.0f} ms, "
              f"next page {page_ms:.0f} ms, back to all {all_ms:.0f} ms, open a trace {detail_ms:.0f} ms")
    finally:
        driver.quit()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        start = time.perf_counter()
        run_dir = make_run(workdir / "gpt3-gsm8k")
        graded = time.perf_counter() - start
        start = time.perf_counter()
        built = build_report([run_dir], workdir / "report.html")
        seconds = time.perf_counter() - start
        size = (workdir / "report.html").stat().st_size
        rows = sum(len(trace.attempts) for trace in built.runs[0].traces)
        print(f"run of {len(built.runs[0].traces)} problems x 4 samples graded in {graded:.1f} s")
        print(f"report: {rows} samples, built in {seconds:.2f} s, {size / 1e6:.1f} MB "
              f"({size / rows / 1e3:.2f} kB per sample)")
        if Path("/usr/bin/chromium").exists() and Path("/usr/bin/chromedriver").exists():
            browser_timings(workdir / "report.html", workdir)
        else:
            print("chromium: not installed (scripts/install-test-deps.sh), browser timings skipped")


if __name__ == "__main__":
    main()
