"use strict";
// Trace viewer: filters and pages the rows embedded as JSON; model text only ever goes
// through textContent (never innerHTML), so it shows as text whatever it contains.
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  if (!data.runs.length) return; // training runs only: no traces, no viewer on the page
  const COL = Object.fromEntries(data.columns.map((name, index) => [name, index]));
  const PAGE_SIZE = 50;
  const TREE_NODE_LIMIT = 2000;
  const state = { run: 0, status: "all", query: "", page: 0, matches: [], selected: null, haystack: null };

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    Object.entries(props || {}).forEach(([key, value]) => {
      if (key === "dataset") Object.assign(node.dataset, value);
      else node[key] = value;
    });
    children.flat().forEach((child) => {
      if (child === null || child === undefined) return;
      node.append(child instanceof Node ? child : String(child));
    });
    return node;
  }

  function badge(status) {
    return el("span", { className: "badge " + status, textContent: status });
  }

  function run() {
    return data.runs[state.run];
  }

  function statusCounts() {
    const counts = Object.fromEntries(data.statuses.map((status) => [status, 0]));
    run().rows.forEach((row) => { counts[row[COL.status]] += 1; });
    return counts;
  }

  function searchText(row) {
    const problem = run().problems[row[COL.problem]];
    return [problem[0], problem[1], problem[2], row[COL.completion], row[COL.extracted] || ""].join("\n").toLowerCase();
  }

  function computeMatches() {
    const rows = run().rows;
    const query = state.query.trim().toLowerCase();
    if (query && !state.haystack) state.haystack = rows.map(searchText);
    state.matches = [];
    rows.forEach((row, index) => {
      if (state.status !== "all" && row[COL.status] !== state.status) return;
      if (query && !state.haystack[index].includes(query)) return;
      state.matches.push(index);
    });
  }

  function renderFilters() {
    const counts = statusCounts();
    const box = document.getElementById("status-filters");
    box.replaceChildren();
    const options = [["all", run().rows.length]].concat(
      data.statuses.filter((status) => status !== "unverified" || counts[status] > 0).map((s) => [s, counts[s]]));
    options.forEach(([status, count]) => {
      const button = el("button", { type: "button", className: status === state.status ? "active" : "",
        dataset: { status: status, count: String(count) } }, status.replace("_", " ") + " (" + count + ")");
      button.addEventListener("click", () => { state.status = status; state.page = 0; update(); });
      box.append(button);
    });
  }

  function renderTable() {
    const body = document.querySelector("#trace-table tbody");
    const pages = Math.max(1, Math.ceil(state.matches.length / PAGE_SIZE));
    state.page = Math.min(state.page, pages - 1);
    const start = state.page * PAGE_SIZE;
    const slice = state.matches.slice(start, start + PAGE_SIZE);
    body.replaceChildren(...slice.map((rowIndex, offset) => tableRow(rowIndex, start + offset + 1)));
    const count = document.getElementById("match-count");
    count.dataset.count = String(state.matches.length);
    count.textContent = state.matches.length + " of " + run().rows.length + " samples match" +
      (state.matches.length ? " · showing " + (start + 1) + "–" + (start + slice.length) : "");
    document.getElementById("page-info").textContent = "Page " + (state.page + 1) + " of " + pages;
    document.getElementById("prev-page").disabled = state.page === 0;
    document.getElementById("next-page").disabled = state.page >= pages - 1;
  }

  function tableRow(rowIndex, number) {
    const row = run().rows[rowIndex];
    const problem = run().problems[row[COL.problem]];
    const tr = el("tr", { tabIndex: 0, className: rowIndex === state.selected ? "selected" : "",
      dataset: { row: String(rowIndex), status: row[COL.status] } },
      el("td", {}, number),
      el("td", { title: problem[0] }, problem[0].slice(0, 10)),
      el("td", {}, row[COL.sample]),
      el("td", {}, badge(row[COL.status])),
      el("td", { className: "answer", title: row[COL.extracted] || "" }, row[COL.extracted] === null ? "—" : row[COL.extracted]),
      el("td", { className: "answer", title: row[COL.reference] || "" }, row[COL.reference]),
      el("td", {}, row[COL.tokens] === null ? "—" : row[COL.tokens]),
      el("td", { className: "question", title: problem[1].slice(0, 300) }, problem[1]));
    const open = () => showDetail(rowIndex);
    tr.addEventListener("click", open);
    tr.addEventListener("keydown", (event) => { if (event.key === "Enter") open(); });
    return tr;
  }

  function field(label, value) {
    if (value === null || value === undefined || value === "") return null;
    return el("div", {}, el("b", {}, label + ": "), value);
  }

  function showDetail(rowIndex) {
    state.selected = rowIndex;
    document.querySelectorAll("#trace-table tbody tr").forEach((tr) => {
      tr.classList.toggle("selected", tr.dataset.row === String(rowIndex));
    });
    const current = run();
    const problemIndex = current.rows[rowIndex][COL.problem];
    const problem = current.problems[problemIndex];
    const panel = document.getElementById("trace-detail");
    const samples = current.rows.map((row, index) => [row, index]).filter(([row]) => row[COL.problem] === problemIndex);
    panel.replaceChildren(...[
      el("h3", {}, "Problem " + problem[0]),
      field("Source", problem[4]),
      field("Provenance", problem[5]),
      el("pre", { className: "question" }, problem[1]),
      field("Reference answer", problem[2]),
      problem[3] ? el("details", {}, el("summary", {}, "Reference solution"), el("pre", {}, problem[3])) : null,
      otherRunsView(problem[0]),
      current.trees[String(problemIndex)] ? treeView(current.trees[String(problemIndex)]) : null,
      el("h3", {}, samples.length + " sample(s)"),
      ...samples.map(([row, index]) => sampleView(row, index === rowIndex))].filter((node) => node !== null));
    panel.hidden = false;
  }

  function otherRunsView(problemId) {
    const items = data.runs.filter((entry, index) => index !== state.run).map((entry) => {
      const rows = entry.rows.filter((row) => entry.problems[row[COL.problem]][0] === problemId);
      if (!rows.length) return null;
      const correct = rows.filter((row) => row[COL.status] === "correct").length;
      return el("li", { dataset: { run: entry.name, correct: String(correct), samples: String(rows.length) } },
        entry.name + ": " + correct + " of " + rows.length + " sample(s) correct");
    }).filter((item) => item !== null);
    return items.length ? el("div", { className: "other-runs" }, el("b", {}, "Same problem in other runs:"), el("ul", {}, items)) : null;
  }

  function sampleView(row, selected) {
    const prompt = row[COL.prompt] >= 0 ? run().prompts[row[COL.prompt]] : null;
    return el("div", { className: "sample" + (selected ? " selected" : ""), dataset: { status: row[COL.status] } },
      el("div", {}, el("b", {}, "Sample " + row[COL.sample] + " "), badge(row[COL.status]),
        " extracted: ", el("code", {}, row[COL.extracted] === null ? "—" : row[COL.extracted]),
        " · reference: ", el("code", {}, row[COL.reference]),
        row[COL.tokens] === null ? null : " · " + row[COL.tokens] + " tokens",
        row[COL.finish_reason] ? " · finish: " + row[COL.finish_reason] : null),
      field("Verdict", row[COL.reason]),
      field("Verifier", row[COL.verifier]),
      field("Error", row[COL.error]),
      prompt === null ? null : el("details", {}, el("summary", {}, "Prompt"), el("pre", { className: "prompt" }, prompt)),
      el("pre", { className: "completion" }, row[COL.completion]),
      toolCallsView(row[COL.tool_calls]));
  }

  function toolCallsView(calls) {
    if (!calls || !calls.length) return null;
    return el("details", { className: "tool-calls" }, el("summary", {}, calls.length + " program(s) run"),
      el("ol", {}, calls.map(([code, output, status, reason, seconds]) => el("li", {},
        el("div", {}, badge(status), " " + reason + " · " + seconds + " s"),
        el("pre", { className: "code" }, code || "(no code)"),
        output ? el("pre", { className: "output" }, output) : null))));
  }

  function treeView(tree) {
    const budget = { left: TREE_NODE_LIMIT };
    return el("details", { className: "tree", open: true }, el("summary", {}, "Search tree"), el("ul", {}, treeNode(tree, budget)));
  }

  function treeNode(node, budget) {
    if (budget.left-- <= 0) return el("li", {}, "… (tree truncated)");
    if (node === null || typeof node !== "object" || Array.isArray(node)) return el("li", {}, JSON.stringify(node));
    const children = Array.isArray(node.children) ? node.children : [];
    const label = Object.entries(node).filter(([key]) => key !== "children")
      .map(([key, value]) => key + "=" + (typeof value === "string" ? value : JSON.stringify(value))).join("  ");
    return el("li", {}, el("span", { className: "node-label" }, label || "(node)"),
      children.length ? el("ul", {}, children.map((child) => treeNode(child, budget))) : null);
  }

  function update() {
    computeMatches();
    renderFilters();
    renderTable();
  }

  function selectRun(index) {
    Object.assign(state, { run: index, page: 0, selected: null, haystack: null });
    document.getElementById("trace-detail").hidden = true;
    update();
  }

  function init() {
    const select = document.getElementById("run-select");
    data.runs.forEach((entry, index) => select.append(el("option", { value: String(index) }, entry.name)));
    select.addEventListener("change", () => selectRun(Number(select.value)));
    let typing = null;
    document.getElementById("search").addEventListener("input", (event) => {
      clearTimeout(typing);
      typing = setTimeout(() => { state.query = event.target.value; state.page = 0; update(); }, 150);
    });
    document.getElementById("prev-page").addEventListener("click", () => { state.page -= 1; renderTable(); });
    document.getElementById("next-page").addEventListener("click", () => { state.page += 1; renderTable(); });
    selectRun(0);
  }

  init();
})();
