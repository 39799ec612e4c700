"""The report in a real browser: Debian's Chromium, headless, driven by Selenium through
chromedriver (both from apt: scripts/install-test-deps.sh installs them).

Selenium rather than raw DevTools calls: it is the standard WebDriver client, gives the
browser console log, clicks and waits in a few readable lines, and needs no extra event
loop or websocket code here.
"""

import contextlib
import json
import os
from pathlib import Path

import pytest

from report_rundir import HOSTILE, QUICKSTART_EVALS, QUICKSTART_SETS, add_train_log, make_quickstart_runs, make_run, verdict_counts

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# RECIPES.md: without the networking flags Chromium tries to reach hosts this machine cannot.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,1000")

# Starting Chromium and clicking through every filter takes ~20 s on a busy 2-core machine:
# run with the slow tests (CI runs them too).
pytestmark = pytest.mark.slow

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is a test dependency: pip install -e '.[test]'")
if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip("Chromium not installed: run scripts/install-test-deps.sh (apt-get install chromium chromium-driver)",
                allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

from reasonloop.report import build_report  # noqa: E402

TREE = {"text": "root", "visits": 8, "children": [
    {"text": "step A <b>bold?</b>", "value": 0.75, "children": [{"text": "answer 18", "value": 1.0}]},
    {"text": "step B", "value": 0.25, "children": []}]}


@pytest.fixture(scope="module")
def runs(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-runs")
    base = make_run(shared_data, root / "base", problems=60, samples=4, seed=0)
    add_train_log(base)
    first = json.loads((base / "problems.jsonl").read_text().splitlines()[0])["id"]
    (base / "trees.jsonl").write_text(json.dumps({"problem_id": first, "tree": TREE}) + "\n")
    tuned = make_run(shared_data, root / "tuned", problems=60, samples=4, start=20, seed=1)
    return base, tuned


@pytest.fixture(scope="module")
def report_file(runs, tmp_path_factory) -> Path:
    report = tmp_path_factory.mktemp("report") / "report.html"
    build_report(runs, report)
    return report


@pytest.fixture(scope="module")
def page(report_file, tmp_path_factory):
    """A headless Chromium showing the report of both runs."""
    with chromium_showing(report_file, tmp_path_factory.mktemp("browser")) as driver:
        yield driver


@contextlib.contextmanager
def chromium_showing(report_file: Path, workdir: Path):
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={workdir / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager look for drivers online
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.implicitly_wait(0)
    try:
        driver.get(report_file.as_uri())
        yield driver
    finally:
        driver.quit()


def console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def click_filter(driver, status: str):
    driver.find_element(By.CSS_SELECTOR, f'#status-filters button[data-status="{status}"]').click()


def shown_statuses(driver) -> list[str]:
    """Statuses of every row the viewer shows for the current filter, page by page."""
    statuses = []
    while True:
        rows = driver.execute_script(
            "return [...document.querySelectorAll('#trace-table tbody tr')].map((row) => row.dataset.status)")
        assert len(rows) <= 50  # paginated, never the whole run at once
        statuses += rows
        next_page = driver.find_element(By.ID, "next-page")
        if not next_page.is_enabled():
            return statuses
        next_page.click()


def test_page_renders_without_console_errors(page):
    assert page.title.startswith("reasonloop report")
    assert console_errors(page) == []


def test_plots_and_trace_viewer_are_present(page):
    plots = page.find_elements(By.CSS_SELECTOR, "#plots figure.plot svg, #training figure.plot svg")
    assert len(plots) == 6
    assert all(plot.size["width"] > 300 and plot.size["height"] > 100 for plot in plots)
    assert len(page.find_elements(By.CSS_SELECTOR, "#trace-table tbody tr")) == 50
    assert page.find_element(By.ID, "match-count").get_attribute("data-count") == str(60 * 4)
    assert "tuned and base share 40 graded problem(s) (graded: 60 and 60)" in page.find_element(By.ID, "comparison").text


@pytest.mark.parametrize("run_index", [0, 1])
def test_filtering_by_verdict_shows_exactly_that_verdicts_rows(page, runs, run_index):
    Select(page.find_element(By.ID, "run-select")).select_by_index(run_index)
    expected = verdict_counts(runs[run_index])
    assert len(expected) == 5  # the fixture exercises every status
    for status, count in expected.items():
        click_filter(page, status)
        assert page.find_element(By.ID, "match-count").get_attribute("data-count") == str(count)
        assert shown_statuses(page) == [status] * count
    click_filter(page, "all")
    assert len(shown_statuses(page)) == sum(expected.values())
    assert console_errors(page) == []


def test_trace_detail_shows_model_text_as_text(page):
    Select(page.find_element(By.ID, "run-select")).select_by_index(0)
    click_filter(page, "incorrect")
    first = page.find_element(By.CSS_SELECTOR, "#trace-table tbody tr")
    first.click()
    detail = page.find_element(By.ID, "trace-detail")
    assert detail.is_displayed() and "[object" not in detail.text
    selected = detail.find_element(By.CSS_SELECTOR, ".sample.selected")
    assert selected.get_attribute("data-status") == "incorrect"
    completion = selected.find_element(By.CSS_SELECTOR, "pre.completion").get_attribute("textContent")
    assert HOSTILE in completion  # shown literally...
    assert page.execute_script("return window.__pwned === undefined")  # ...and never run
    assert detail.find_elements(By.CSS_SELECTOR, "img") == []
    assert len(detail.find_elements(By.CSS_SELECTOR, ".sample")) == 4  # every sample of that problem


def test_search_tree_is_drawn_for_its_problem(page):
    Select(page.find_element(By.ID, "run-select")).select_by_index(0)
    click_filter(page, "all")
    page.find_element(By.CSS_SELECTOR, '#trace-table tbody tr[data-row="0"]').click()
    labels = [node.get_attribute("textContent") for node in page.find_elements(By.CSS_SELECTOR, "#trace-detail .tree .node-label")]
    assert len(labels) == 4 and labels[1] == "text=step A <b>bold?</b>  value=0.75"
    page.find_element(By.CSS_SELECTOR, '#trace-table tbody tr[data-row="4"]').click()  # the next problem: no tree
    assert page.find_elements(By.CSS_SELECTOR, "#trace-detail .tree") == []


def test_trace_detail_shows_how_other_runs_did_on_the_problem(page, runs):
    Select(page.find_element(By.ID, "run-select")).select_by_index(0)
    click_filter(page, "all")
    shared = json.loads((runs[0] / "problems.jsonl").read_text().splitlines()[30])["id"]  # tuned has it too
    only_base = json.loads((runs[0] / "problems.jsonl").read_text().splitlines()[0])["id"]
    tuned = [json.loads(line) for line in (runs[1] / "verdicts.jsonl").read_text().splitlines()]
    correct = sum(v["problem_id"] == shared and v["status"] == "correct" for v in tuned)
    for _ in range(2):
        page.find_element(By.ID, "next-page").click()  # problem 30's samples are rows 120-123: page 3
    page.find_element(By.CSS_SELECTOR, '#trace-table tbody tr[data-row="120"]').click()
    item = page.find_element(By.CSS_SELECTOR, "#trace-detail .other-runs li")
    assert (item.get_attribute("data-run"), item.get_attribute("data-correct"), item.get_attribute("data-samples")) == (
        "tuned", str(correct), "4")
    assert page.find_element(By.CSS_SELECTOR, "#trace-detail h3").text == f"Problem {shared}"
    click_filter(page, "all")
    page.find_element(By.CSS_SELECTOR, '#trace-table tbody tr[data-row="0"]').click()
    assert page.find_element(By.CSS_SELECTOR, "#trace-detail h3").text == f"Problem {only_base}"
    assert page.find_elements(By.CSS_SELECTOR, "#trace-detail .other-runs") == []


def test_search_narrows_rows_to_one_problem(page, runs):
    Select(page.find_element(By.ID, "run-select")).select_by_index(0)
    click_filter(page, "all")
    problem = json.loads((runs[0] / "problems.jsonl").read_text().splitlines()[7])
    box = page.find_element(By.ID, "search")
    box.clear()
    box.send_keys(problem["id"])
    WebDriverWait(page, 5).until(lambda d: d.find_element(By.ID, "match-count").get_attribute("data-count") == "4")
    cells = page.find_elements(By.CSS_SELECTOR, "#trace-table tbody tr td:nth-child(2)")
    assert {cell.get_attribute("title") for cell in cells} == {problem["id"]}
    box.clear()
    box.send_keys(" ")
    WebDriverWait(page, 5).until(lambda d: d.find_element(By.ID, "match-count").get_attribute("data-count") == "240")


def test_screenshot(page, tmp_path):
    """Saved for a person to look at (REASONLOOP_TEST_ARTIFACTS=DIR keeps it)."""
    height = page.execute_script("window.scrollTo(0, 0); return document.documentElement.scrollHeight")
    page.set_window_size(1400, min(height + 100, 6000))
    target = Path(os.environ.get("REASONLOOP_TEST_ARTIFACTS", tmp_path)) / "report.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    assert page.save_screenshot(str(target))
    assert target.stat().st_size > 50_000
    assert console_errors(page) == []


def scores(run_dir: Path) -> dict[str, float]:
    """Per-problem fraction of correct verdicts, read straight from verdicts.jsonl."""
    outcomes: dict[str, list[bool]] = {}
    for line in (run_dir / "verdicts.jsonl").read_text().splitlines():
        verdict = json.loads(line)
        outcomes.setdefault(verdict["problem_id"], []).append(verdict["status"] == "correct")
    return {problem: sum(right) / len(right) for problem, right in outcomes.items()}


def expected_change(before: Path, after: Path) -> dict[str, str]:
    """The comparison's cells as the run files give them; p from scipy's binomial test."""
    from scipy.stats import binomtest

    old, new = scores(before), scores(after)
    shared = old.keys() & new.keys()
    better, worse = sum(new[p] > old[p] for p in shared), sum(new[p] < old[p] for p in shared)
    p = binomtest(better, better + worse, 0.5).pvalue
    return {"shared": str(len(shared)), "before": f"{100 * sum(old[p] for p in shared) / len(shared):.1f}%",
            "after": f"{100 * sum(new[p] for p in shared) / len(shared):.1f}%",
            "points": f"{100 * sum(new[p] - old[p] for p in shared) / len(shared):+.1f}",
            "better": str(better), "worse": str(worse), "same": str(len(shared) - better - worse),
            "p": "p < 0.001" if p < 0.001 else f"p = {p:.2g}"}


def test_comparison_shows_the_numbers_of_the_run_files(page, report_file, shared_data, tmp_path):
    """On a quickstart-shaped run directory: every headline and every cell the browser shows
    equals what the verdict files give, pair by pair and problem set by problem set."""
    dirs = make_quickstart_runs(shared_data, tmp_path / "quickstart", problems=60)
    quickstart = tmp_path / "quickstart.html"
    build_report(dirs, quickstart)
    by_name = {d.name: d for d in dirs}
    page.get(quickstart.as_uri())
    try:
        shown_headlines = [item.text for item in page.find_elements(By.CSS_SELECTOR, "#comparison ul.headlines li")]
        expected_headlines = []
        for name in QUICKSTART_SETS:
            rows = page.find_elements(By.CSS_SELECTOR, f'#comparison table.comparison[data-suite="{name}"] tbody tr')
            assert len(rows) == len(QUICKSTART_EVALS) - 1
            for row, ((before, before_model), (after, after_model)) in zip(rows, zip(QUICKSTART_EVALS, QUICKSTART_EVALS[1:])):
                cells = {cell.get_attribute("class"): cell.text for cell in row.find_elements(By.TAG_NAME, "td")}
                expected = expected_change(by_name[f"{before}.{name}"], by_name[f"{after}.{name}"])
                assert (cells["run"], cells["vs"]) == (f"{after}.{name}", f"{before}.{name}")
                assert {key: cells[key] for key in expected} == expected
                expected_headlines.append(f"{after_model} vs {before_model} on {name}: {expected['points']} points, "
                                          f"{expected['better']} better, {expected['worse']} worse, {expected['p']}")
        assert shown_headlines == expected_headlines
        training = page.find_element(By.ID, "training").text
        assert "sft/model" in training and "grpo/model" in training and "no metrics file" not in page.page_source
        assert page.find_elements(By.ID, "notices") == []
        assert console_errors(page) == []
    finally:
        page.get(report_file.as_uri())


def test_synthesized_problems_show_their_provenance(tmp_path):
    """A synthesize stage's directory (kept problems, no samples): one row per problem, and the
    detail names the method, the writer and each filter's verdict."""
    from reasonloop.records import Problem, write_records
    from reasonloop.rundir import SYNTHESIZE_KIND, make_manifest, write_manifest

    synth = {"method": "qft", "generator": "sha256:writer", "filters": {"format": "pass", "solvability": "agreed"}}
    kept = [Problem(question=f"Ann has {n} pens and buys 3 more. How many pens?", answer=str(n + 3),
                    meta={"synth": synth}) for n in (4, 5)]
    run_dir = tmp_path / "synthesize"
    write_records(run_dir / "problems.jsonl", kept)
    write_manifest(run_dir, make_manifest(kind=SYNTHESIZE_KIND, model="qft-writer"))
    build_report([run_dir], tmp_path / "report.html")
    with chromium_showing(tmp_path / "report.html", tmp_path / "browser") as driver:
        assert driver.find_element(By.ID, "match-count").get_attribute("data-count") == "2"
        driver.find_element(By.CSS_SELECTOR, '#trace-table tbody tr[data-row="1"]').click()
        detail = driver.find_element(By.ID, "trace-detail").text
        assert "Ann has 5 pens" in detail
        assert "Provenance: method qft · generator sha256:writer · filters: format pass, solvability agreed" in detail
        assert console_errors(driver) == []
