// The Podium run viewer: draws what /api/runs and /api/runs/<name> return. Plain DOM and SVG, no build step.
// Every value from the API goes through textContent or an SVG attribute, never through innerHTML.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const TERMINAL = ["Succeeded", "Failed"];
const POLL_RUN_MS = 2000;
const POLL_LIST_MS = 4000;

// ---------------------------------------------------------------------------------------------- DOM helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") el.textContent = String(v);
    else if (k === "style") el.style.cssText = String(v); // CSSOM: allowed by the page's CSP, unlike style=""
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

function tip(text) {
  return s("title", { text });
}

// ---------------------------------------------------------------------------------------------- formats

function fmtSeconds(sec) {
  if (sec === null || sec === undefined) return "–";
  if (sec < 1) return sec < 0.001 ? "<1ms" : `${Math.round(sec * 1000)}ms`;
  if (sec < 60) return `${sec.toFixed(sec < 10 ? 1 : 0)}s`;
  const m = Math.floor(sec / 60);
  if (m < 60) return `${m}m${String(Math.round(sec % 60)).padStart(2, "0")}s`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs}h${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(hrs / 24)}d`;
}

// Durations and ages from the status's timestamps, which have whole seconds only.
function fmtCoarse(sec) {
  return sec !== null && sec !== undefined && sec < 1 ? "<1s" : fmtSeconds(sec);
}

function fmtTime(epoch) {
  if (!epoch) return "–";
  return new Date(epoch * 1000).toLocaleTimeString([], { hour12: false });
}

function fmtCost(x) {
  return x ? x.toFixed(4) : "0";
}

function fmtScore(x) {
  return x === null || x === undefined ? "–" : Number(x).toFixed(2);
}

function json(value) {
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

function badge(state, label) {
  return h("span", { class: `badge ${state}`, text: label || state });
}

// ---------------------------------------------------------------------------------------------- API and routing

class ApiError extends Error {}

async function api(path) {
  let response;
  try {
    response = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
  } catch (err) {
    throw new ApiError(`the viewer is not reachable (${err.message})`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    throw new ApiError(`${path}: ${response.status} ${response.statusText} (not JSON)`);
  }
  if (!response.ok) throw new ApiError(body && body.error ? body.error : `${path}: ${response.status}`);
  return body;
}

const view = { timer: null, route: null, seq: 0 };

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  return { namespace: parts[0] || null, run: parts[1] || null };
}

function link(namespace, run) {
  return "#/" + [namespace, run].filter(Boolean).map(encodeURIComponent).join("/");
}

function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message || "";
  box.hidden = !message;
}

function setLive(on, text) {
  const live = document.getElementById("live");
  live.className = on ? "live on" : "live";
  live.textContent = text;
}

function schedule(fn, ms) {
  clearTimeout(view.timer);
  view.timer = setTimeout(fn, ms);
}

async function start() {
  clearTimeout(view.timer);
  const seq = ++view.seq;
  const r = route();
  if (!r.namespace) {
    try {
      const ns = await api("api/namespaces");
      if (!ns.default) {
        showError("No namespace to show: this viewer serves every namespace and none has Orchestrations yet.");
        return;
      }
      location.replace(link(ns.default));
    } catch (err) {
      showError(err.message);
    }
    return;
  }
  await fillNamespaces(r.namespace);
  document.body.dataset.ready = "";
  const poll = r.run ? () => showRun(r.namespace, r.run, seq) : () => showRuns(r.namespace, seq);
  await poll();
}

async function fillNamespaces(current) {
  const select = document.getElementById("namespace");
  if (!select.dataset.filled) {
    try {
      const ns = await api("api/namespaces");
      for (const name of ns.namespaces) select.appendChild(h("option", { value: name, text: name }));
      select.dataset.filled = "1";
      select.addEventListener("change", () => (location.hash = link(select.value)));
    } catch (err) {
      showError(err.message);
    }
  }
  if (![...select.options].some((o) => o.value === current)) {
    select.appendChild(h("option", { value: current, text: current }));
  }
  select.value = current;
}

function crumbs(namespace, run) {
  const nav = document.getElementById("crumbs");
  fill(nav, h("a", { href: link(namespace), text: namespace }), run ? h("span", { text: `/ ${run}` }) : null);
}

// ---------------------------------------------------------------------------------------------- runs list

async function showRuns(namespace, seq) {
  crumbs(namespace, null);
  let body;
  try {
    body = await api(`api/runs?namespace=${encodeURIComponent(namespace)}`);
    showError("");
  } catch (err) {
    if (seq !== view.seq) return;
    showError(err.message);
    setLive(false, "");
    schedule(() => showRuns(namespace, seq), POLL_LIST_MS);
    return;
  }
  if (seq !== view.seq) return;
  document.title = `Podium · ${namespace}`;
  const main = document.getElementById("main");
  fill(main,
    h("h1", { text: `Runs in ${namespace}` }),
    body.runs.length === 0
      ? h("p", { class: "muted", text: "No Orchestrations in this namespace yet (kubectl apply -f examples/…)." })
      : h("section", { class: "panel" }, runsTable(namespace, body.runs)),
  );
  const running = body.runs.filter((r) => !TERMINAL.includes(r.phase)).length;
  setLive(true, running ? `live · ${running} running` : "live");
  document.body.dataset.view = "runs";
  document.body.dataset.ready = "1";
  schedule(() => showRuns(namespace, seq), POLL_LIST_MS);
}

function progressBar(run) {
  const pct = run.tasksTotal ? Math.min(100, (100 * run.tasksDone) / run.tasksTotal) : 0;
  return h("span", null, h("span", { class: "progress" }, h("span", { style: `width:${pct.toFixed(0)}%` })), run.progress);
}

function runsTable(namespace, runs) {
  const head = h("tr", null, ["Name", "Strategy", "Phase", "Progress", "Cost", "Tokens", "Duration", "Age"].map(
    (t, i) => h("th", { class: i >= 4 ? "num" : null, text: t })));
  const rows = runs.map((r) =>
    h("tr", { "data-run": r.name, "data-phase": r.phase },
      h("td", null, h("a", { href: link(namespace, r.name), text: r.name })),
      h("td", { text: r.strategy }),
      h("td", null, badge(r.phase), r.degraded ? [" ", badge("degraded", "degraded")] : null,
        r.reason && r.phase !== "Succeeded" ? h("div", { class: "muted", text: r.reason }) : null),
      h("td", null, progressBar(r)),
      h("td", { class: "num", text: fmtCost(r.cost) }),
      h("td", { class: "num", text: r.tokens }),
      h("td", { class: "num", text: fmtCoarse(r.durationSeconds) }),
      h("td", { class: "num", text: fmtCoarse(r.ageSeconds) }),
    ));
  return h("table", { id: "runs" }, h("thead", null, head), h("tbody", null, rows));
}

// ---------------------------------------------------------------------------------------------- one run

async function showRun(namespace, name, seq) {
  crumbs(namespace, name);
  let body;
  try {
    body = await api(`api/runs/${encodeURIComponent(name)}?namespace=${encodeURIComponent(namespace)}`);
    showError("");
  } catch (err) {
    if (seq !== view.seq) return;
    showError(err.message);
    setLive(false, "");
    document.body.dataset.view = "run";
    document.body.dataset.ready = "error";
    schedule(() => showRun(namespace, name, seq), POLL_RUN_MS * 2);
    return;
  }
  if (seq !== view.seq) return;
  const run = body.run;
  document.title = `Podium · ${run.name} (${run.phase})`;
  const open = new Set([...document.querySelectorAll("details[open][data-key]")].map((d) => d.dataset.key));
  const main = document.getElementById("main");
  fill(main,
    runHeader(run),
    body.warnings.length ? h("div", { class: "warnings" }, body.warnings.map((w) => h("div", { text: w }))) : null,
    h("h2", { text: `${run.strategy} · ${pictureTitle(body.picture.kind)}` }),
    h("section", { class: "panel", id: "picture", "data-kind": body.picture.kind }, drawPicture(body.picture, run)),
    h("h2", { text: "Timeline · attempts per agent" }),
    h("section", { class: "panel", id: "timeline" }, drawTimeline(body.timeline, body.now)),
    h("div", { class: "grid2" },
      h("div", null, h("h2", { text: "Cost and tokens by agent" }), h("section", { class: "panel" }, spendTable(body.spend, run))),
      h("div", null, h("h2", { text: `Steps (${body.steps.length})` }), h("section", { class: "panel scroll" }, stepsTable(body.steps)))),
    h("h2", { text: `History (${body.history.length})` }),
    h("section", { class: "panel scroll" }, historyTable(body.history)),
    h("h2", { text: "Result and shared state" }),
    h("section", { class: "panel" },
      folded("result", "Result", run.result === null && run.resultRef ? run.resultRef : run.result, open),
      folded("state", `Shared state (${Object.keys(body.state).length} keys)`, body.state, open),
      folded("spec", "Spec", run.spec, open)),
  );
  const finished = TERMINAL.includes(run.phase);
  setLive(!finished, finished ? `${run.phase.toLowerCase()}` : "live");
  document.body.dataset.view = "run";
  document.body.dataset.phase = run.phase;
  document.body.dataset.ready = "1";
  // A finished run never changes again: stop asking.
  if (!finished) schedule(() => showRun(namespace, name, seq), POLL_RUN_MS);
}

function folded(key, title, value, open) {
  return h("details", { "data-key": key, open: open.has(key) ? "" : null }, h("summary", { text: title }), h("pre", { text: json(value) }));
}

function runHeader(run) {
  const facts = [
    ["strategy", run.strategy],
    ["progress", run.progress],
    ["cost", fmtCost(run.cost)],
    ["tokens", run.tokens],
    ["duration", fmtCoarse(run.durationSeconds)],
    ["started", fmtTime(run.startedAt)],
    ["finished", fmtTime(run.completedAt)],
  ];
  return h("div", { id: "run", "data-phase": run.phase },
    h("h1", null, `${run.name} `, badge(run.phase), run.degraded ? [" ", badge("degraded", "degraded")] : null,
      run.suspended ? [" ", badge("Suspended", "suspended")] : null),
    h("div", { class: "facts" }, facts.map(([k, v]) => h("div", null, h("b", { text: k }), h("span", { text: v })))),
    run.reason || run.message ? h("div", { class: "message", text: [run.reason, run.message].filter(Boolean).join(": ") }) : null,
  );
}

function stepBox(step, title) {
  const sub = [step.agent ? `on ${step.agent}` : "not run", step.attempts > 1 ? `${step.attempts} attempts` : null,
    step.start && step.end ? fmtSeconds(step.end - step.start) : null].filter(Boolean).join(" · ");
  return h("div", { class: `step ${step.state}`, "data-step": step.step, "data-state": step.state },
    h("div", { class: "name", text: title || step.step }),
    h("div", { class: "sub", text: sub }),
    step.error ? h("div", { class: "err", text: step.error }) : null);
}

function stepsTable(steps) {
  if (!steps.length) return h("p", { class: "muted", text: "No step has started." });
  const head = h("tr", null, ["Step", "Kind", "Agent", "State", "Attempts", "Took"].map((t) => h("th", { text: t })));
  const rows = steps.map((st) => h("tr", { "data-step": st.step },
    h("td", { text: st.step }), h("td", { text: st.kind }), h("td", { text: st.agent || "–" }),
    h("td", null, badge(st.state), st.error ? h("div", { class: "err muted", text: st.error }) : null),
    h("td", { class: "num", text: st.attempts }),
    h("td", { class: "num", text: st.start && st.end ? fmtSeconds(st.end - st.start) : "–" })));
  return h("table", null, h("thead", null, head), h("tbody", null, rows));
}

function spendTable(rows, run) {
  if (!rows.length) return h("p", { class: "muted", text: "Nothing spent yet." });
  const head = h("tr", null, ["Agent", "Attempts", "Failed", "Cost", "Tokens"].map((t, i) => h("th", { class: i ? "num" : null, text: t })));
  const body = rows.map((r) => h("tr", null, h("td", { text: r.agent }), h("td", { class: "num", text: r.attempts }),
    h("td", { class: "num", text: r.failures }), h("td", { class: "num", text: fmtCost(r.cost) }), h("td", { class: "num", text: r.tokens })));
  const total = h("tr", null, h("td", null, h("b", { text: "run (status)" })), h("td"), h("td"),
    h("td", { class: "num" }, h("b", { text: fmtCost(run.cost) })), h("td", { class: "num" }, h("b", { text: run.tokens })));
  return h("table", { id: "spend" }, h("thead", null, head), h("tbody", null, body, total));
}

function historyTable(items) {
  if (!items.length) return h("p", { class: "muted", text: "No history kept for this run." });
  const rows = items.map((i) => h("tr", null, h("td", { text: fmtTime(i.at) }), h("td", { text: i.source }), h("td", { class: "text", text: i.text })));
  return h("table", { class: "history", id: "history" }, h("tbody", null, rows));
}

// ---------------------------------------------------------------------------------------------- timeline

function drawTimeline(tl, now) {
  const lanes = tl.lanes;
  if (!lanes.length || tl.start === null) return h("p", { class: "muted", text: "No task has been dispatched yet." });
  const start = tl.start, end = Math.max(tl.end || now, start + 0.001);
  const labelW = 130, width = 1100, laneH = 26, top = 22;
  const x = (t) => labelW + ((t - start) / (end - start)) * (width - labelW - 10);
  const svg = s("svg", { width, height: top + lanes.length * laneH + 8, viewBox: `0 0 ${width} ${top + lanes.length * laneH + 8}`, role: "img", "aria-label": "timeline" });
  const axis = s("g", { class: "axis" });
  for (let i = 0; i <= 5; i++) {
    const t = start + ((end - start) * i) / 5;
    axis.append(s("line", { x1: x(t), x2: x(t), y1: top - 4, y2: top + lanes.length * laneH }),
      s("text", { x: x(t), y: 12, "text-anchor": i === 0 ? "start" : i === 5 ? "end" : "middle", text: `+${fmtSeconds(t - start)}` }));
  }
  svg.append(axis);
  lanes.forEach((lane, i) => {
    const y = top + i * laneH;
    const g = s("g", { class: "lane", "data-agent": lane.agent });
    g.append(s("text", { x: 4, y: y + laneH / 2 + 4, text: lane.agent }));
    for (const bar of lane.bars) {
      const b0 = x(bar.start ?? start), b1 = x(bar.end ?? now);
      const label = `${bar.step} · attempt ${bar.attempt} · ${bar.state}` + (bar.end && bar.start ? ` · ${fmtSeconds(bar.end - bar.start)}` : "") +
        (bar.replica ? ` · ${bar.replica}` : "") + (bar.error ? `\n${bar.error}` : "");
      g.append(s("rect", { class: `bar ${bar.state}`, x: b0, y: y + 4, width: Math.max(3, b1 - b0), height: laneH - 8, rx: 3, "data-step": bar.step }, tip(label)));
    }
    svg.append(g);
  });
  const legend = h("div", { class: "legend" }, [["ok", "ok"], ["failed", "failed"], ["rejected", "rejected output"], ["running", "running"]].map(
    ([cls, text]) => h("span", null, h("i", { style: `background:var(--${cls})` }), text)));
  return [svg, legend];
}

// ---------------------------------------------------------------------------------------------- pictures

function pictureTitle(kind) {
  return { stages: "stages", dag: "task graph", generations: "score per generation", auctions: "auctions",
    rounds: "reviews per round", plan: "plan and assignments", teams: "teams", none: "no picture" }[kind] || kind;
}

function drawPicture(p, run) {
  switch (p.kind) {
    case "stages": return drawStages(p);
    case "dag": return drawDag(p);
    case "generations": return drawGenerations(p);
    case "auctions": return drawAuctions(p);
    case "rounds": return drawRounds(p);
    case "plan": return drawPlan(p);
    case "teams": return drawTeams(p);
    default: return h("p", { class: "muted", text: p.note || "Nothing to draw for this run." });
  }
}

function drawStages(p) {
  const items = [];
  p.stages.forEach((stage, i) => {
    if (i) items.push(h("span", { class: "arrow", text: "→" }));
    const box = stepBox(stage.step, stage.name);
    box.appendChild(h("div", { class: "sub", text: [stage.target, stage.fallback ? `fallback ${stage.fallback}` : null,
      `retries ${stage.retries}`, stage.validated ? "validated ✓" : null].filter(Boolean).join(" · ") }));
    items.push(box);
  });
  return h("div", { class: "row stages" }, items);
}

function drawDag(p) {
  const colW = 210, nodeW = 170, nodeH = 46, gapY = 16, pad = 10;
  const byLayer = {};
  for (const n of p.nodes) (byLayer[n.layer] = byLayer[n.layer] || []).push(n);
  const rows = Math.max(1, ...Object.values(byLayer).map((l) => l.length));
  const width = pad * 2 + Math.max(1, p.layers) * colW, height = pad * 2 + rows * (nodeH + gapY);
  const pos = {};
  for (const [layer, nodes] of Object.entries(byLayer)) {
    const offset = (height - nodes.length * (nodeH + gapY)) / 2;
    nodes.forEach((n, i) => (pos[n.id] = { x: pad + Number(layer) * colW, y: offset + i * (nodeH + gapY) + gapY / 2 }));
  }
  const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "task graph" });
  for (const e of p.edges) {
    const a = pos[e.from], b = pos[e.to];
    if (!a || !b) continue;
    const x1 = a.x + nodeW, y1 = a.y + nodeH / 2, x2 = b.x, y2 = b.y + nodeH / 2, mid = (x1 + x2) / 2;
    svg.append(s("path", { class: "edge", d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2 - 6},${y2}` }),
      s("path", { d: `M${x2 - 7},${y2 - 4} L${x2},${y2} L${x2 - 7},${y2 + 4} Z`, fill: "#9aa3b5" }));
  }
  for (const n of p.nodes) {
    const { x, y } = pos[n.id];
    const agents = n.steps.map((st) => st.agent).filter(Boolean);
    const sub = agents.length ? agents.join(", ") : n.target;
    const detail = n.steps.map((st) => `${st.agent || "?"}: ${st.state}${st.attempts > 1 ? ` (${st.attempts} attempts)` : ""}${st.error ? ` – ${st.error}` : ""}`).join("\n");
    svg.append(s("g", { class: `node ${n.state}`, "data-node": n.id, "data-state": n.state },
      s("rect", { x, y, width: nodeW, height: nodeH }),
      s("text", { x: x + 8, y: y + 18, text: n.label }),
      s("text", { class: "sub", x: x + 8, y: y + 34, text: sub.length > 30 ? sub.slice(0, 29) + "…" : sub }),
      tip(`${n.label} · ${n.state} · ${n.target}${detail ? "\n" + detail : ""}`)));
  }
  return svg;
}

function drawGenerations(p) {
  const gens = p.generations;
  if (!gens.length) return h("p", { class: "muted", text: "No generation has started." });
  const width = 640, height = 260, left = 40, right = 16, top = 14, bottom = 30;
  const n = Math.max(gens.length, 2);
  const x = (g) => left + ((g - 1) / (n - 1)) * (width - left - right);
  const y = (v) => top + (1 - v) * (height - top - bottom);
  const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "score per generation" });
  const grid = s("g", { class: "grid axis" });
  for (const v of [0, 0.25, 0.5, 0.75, 1]) grid.append(s("line", { x1: left, x2: width - right, y1: y(v), y2: y(v) }), s("text", { x: 4, y: y(v) + 4, text: v.toFixed(2) }));
  gens.forEach((g) => grid.append(s("text", { x: x(g.generation), y: height - 10, "text-anchor": "middle", text: `gen ${g.generation}` })));
  svg.append(grid);
  if (p.targetScore !== null && p.targetScore !== undefined) {
    svg.append(s("line", { class: "target", x1: left, x2: width - right, y1: y(p.targetScore), y2: y(p.targetScore) }, tip(`target ${p.targetScore}`)));
  }
  const best = gens.filter((g) => g.bestSoFar !== null);
  if (best.length) svg.append(s("polyline", { class: "best", points: best.map((g) => `${x(g.generation)},${y(g.bestSoFar)}`).join(" ") }));
  for (const g of gens) {
    for (const sc of g.scores) {
      svg.append(s("circle", { class: `dot${sc.score === g.best ? " best" : ""}`, cx: x(g.generation), cy: y(sc.score), r: 5, "data-generation": g.generation }, tip(`generation ${g.generation} · ${sc.agent}: ${fmtScore(sc.score)}`)));
    }
  }
  const head = h("tr", null, ["Generation", "Explorers", "Scores", "Best", "Best so far"].map((t) => h("th", { text: t })));
  const rows = gens.map((g) => h("tr", { "data-generation": g.generation },
    h("td", { text: g.generation }),
    h("td", { text: g.explorers.map((e) => `${e.agent}${e.state === "Succeeded" ? "" : ` (${e.state})`}`).join(", ") }),
    h("td", { text: g.scores.map((sc) => `${sc.agent} ${fmtScore(sc.score)}`).join(", ") || g.evaluation }),
    h("td", { class: "num", text: fmtScore(g.best) }), h("td", { class: "num", text: fmtScore(g.bestSoFar) })));
  const summary = p.best ? h("p", null, `Best score ${fmtScore(p.best.score)} after ${gens.length} of at most ${p.maxGenerations} generations.`) : null;
  return [svg, h("div", { class: "legend" }, h("span", null, h("i", { style: "background:var(--running)" }), "a solution's score"),
    h("span", null, h("i", { style: "background:var(--accent)" }), "best so far")), summary, h("table", { id: "generations" }, h("thead", null, head), h("tbody", null, rows))];
}

function drawAuctions(p) {
  return p.auctions.map((a) => {
    const head = h("tr", null, ["Round", "Bidder", "Price", "Est. time", "Bid"].map((t, i) => h("th", { class: i === 2 || i === 3 ? "num" : null, text: t })));
    const rows = a.bids.map((b) => h("tr", { class: b.winner ? "winner" : null, "data-bidder": b.agent },
      h("td", { text: b.round }), h("td", { text: b.agent }),
      h("td", { class: "num", text: b.price === null ? "–" : b.price.toFixed(4) }),
      h("td", { class: "num", text: b.seconds === null || b.seconds === undefined ? "–" : fmtSeconds(b.seconds) }),
      h("td", { text: b.winner ? "won" : b.declined ? "declined" : b.answered ? "lost" : `no answer (${b.state})` })));
    const won = a.winner ? `won by ${a.winner}` + (a.price !== null && a.price !== undefined ? ` at ${a.price.toFixed(4)}` : "") +
      (a.score !== null && a.score !== undefined ? `, score ${fmtScore(a.score)}` : "") : "no winner";
    return h("div", { class: "auction", "data-task": a.task },
      h("h3", null, `${a.task} `, h("span", { class: "muted", text: `· ${won}${p.reservePrice !== null ? ` · reserve ${p.reservePrice}` : ""}` })),
      h("div", { class: "row" }, stepBox(a.execution, `${a.task} (work)`)),
      h("table", null, h("thead", null, head), h("tbody", null, rows)));
  });
}

function drawRounds(p) {
  if (!p.rounds.length) return h("p", { class: "muted", text: "No round has started." });
  const out = [h("p", null, `Proposals applied when their mean review is at least ${p.minScore}; final score ${fmtScore(p.score)} after ${p.rounds.length} of at most ${p.maxRounds} rounds.`)];
  for (const r of p.rounds) {
    const authors = r.proposals.map((x) => x.author);
    const reviewers = [...new Set(r.reviews.map((v) => v.reviewer))].sort();
    const score = {};
    for (const v of r.reviews) score[`${v.author}\u0000${v.reviewer}`] = v;
    const head = h("tr", null, h("th", { text: "proposal by ↓ / reviewed by →" }), reviewers.map((rv) => h("th", { text: rv })), h("th", { class: "num", text: "mean" }), h("th", { text: "" }));
    const rows = authors.map((a) => h("tr", { "data-author": a },
      h("td", { text: a }),
      reviewers.map((rv) => {
        const v = score[`${a}\u0000${rv}`];
        return h("td", { class: "score", text: a === rv ? "·" : v ? (v.score === null ? v.state : fmtScore(v.score)) : "–" });
      }),
      h("td", { class: "num", text: fmtScore(r.means[a]) }),
      h("td", { class: "applied", text: r.applied.includes(a) ? "applied ✓" : "" })));
    out.push(h("h3", { text: `Round ${r.round}` }), h("table", { class: "matrix", "data-round": r.round }, h("thead", null, head), h("tbody", null, rows)));
  }
  return out;
}

function drawPlan(p) {
  const head = h("tr", null, ["Task", "Needs", "Assigned to", "Ran on", "State", "Attempts"].map((t) => h("th", { text: t })));
  const rows = p.tasks.map((t) => h("tr", { "data-task": t.name },
    h("td", { text: t.name }), h("td", { text: t.capabilities.join(", ") || "–" }), h("td", { text: t.assigned || "–" }),
    h("td", { text: t.step.agent || "–" }), h("td", null, badge(t.step.state), t.step.error ? h("div", { class: "err muted", text: t.step.error }) : null),
    h("td", { class: "num", text: t.step.attempts })));
  return [p.planner ? h("div", { class: "row" }, stepBox(p.planner, "plan (command center)")) : h("p", { class: "muted", text: "Tasks from the spec (no planner)." }),
    h("table", { id: "plan" }, h("thead", null, head), h("tbody", null, rows))];
}

function drawTeams(p) {
  // Each team works its tasks of the plan in order: per task, research and analysis side by side, then synthesis.
  const teams = p.teams.map((t) => h("div", { class: "team", "data-team": t.team },
    h("div", { class: "title", text: `team ${t.team}` }),
    t.tasks.map((k) => h("div", { class: "row", "data-task": k.task },
      h("span", { class: "muted", text: `task ${k.task}` }),
      h("div", { class: "col" }, stepBox(k.research, "research"), stepBox(k.analysis, "analysis")),
      h("span", { class: "arrow", text: "→" }), stepBox(k.synthesis, "synthesis")))));
  return h("div", { class: "row" }, stepBox(p.plan, "plan (coordinator)"), h("span", { class: "arrow", text: "→" }),
    h("div", { class: "teams" }, teams), h("span", { class: "arrow", text: "→" }), stepBox(p.integrate, "integrate"));
}

// ---------------------------------------------------------------------------------------------- start

window.addEventListener("hashchange", start);
document.addEventListener("DOMContentLoaded", start);
