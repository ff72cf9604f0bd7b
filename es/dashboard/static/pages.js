// The pages that show what the servers say: health, names, subscribers, subjects, counters,
// activity. Each renders into its own section of index.html.

import { ago, clock, download, el, getJson, number, postJson } from "./util.js";

function fill(list, pairs) {
  list.replaceChildren(...pairs.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
}

function mark(card, ok) {
  card.classList.toggle("bad", !ok);
  card.classList.toggle("good", ok);
}

// --- health ---------------------------------------------------------------------------------

export async function showHealth() {
  const health = await getJson("/api/health");
  const es = document.querySelector("#health-es");
  mark(es, health.es.up);
  fill(es.querySelector("dl"), health.es.up
    ? [["status", "reachable"], ["endpoint", health.es.endpoint], ["round trip", `${(health.es.rtt * 1000).toFixed(1)} ms`],
       ["version", health.es.version], ["uptime", ago(health.es.uptime)]]
    : [["status", "unreachable"], ["error", health.es.error]]);
  const ns = document.querySelector("#health-ns");
  mark(ns, health.ns.up);
  fill(ns.querySelector("dl"), health.ns.up
    ? [["status", "reachable"], ["round trip", `${(health.ns.rtt * 1000).toFixed(1)} ms`], ["version", health.ns.version]]
    : [["status", "unreachable"], ["error", health.ns.error]]);
  const name = document.querySelector("#health-name");
  mark(name, health.name.registered && health.name.here);
  fill(name.querySelector("dl"), health.name.registered
    ? [["registered", "yes"], ["points here", health.name.here ? "yes" : "no"], ["URIs", health.name.uris.join(", ")],
       ["lease left", health.name.lease_left === null ? "permanent" : ago(health.name.lease_left)]]
    : [["registered", "no"], ["error", health.name.error]]);
  fill(document.querySelector("#health-security dl"), [["this dashboard's connections", health.security]]);
}

// --- names ----------------------------------------------------------------------------------

let names = { names: [], groups: [] };

export async function showNames() {
  names = await getJson("/api/names");
  renderNames();
}

export function renderNames() {
  const filter = document.querySelector("#names-filter").value.toLowerCase();
  const root = groupNode(":", filter);
  document.querySelector("#names-tree").replaceChildren(...(root ? [root] : []));
}

// A group and, inside it, its names and its groups (null when the filter leaves nothing).
function groupNode(group, filter) {
  const members = names.names.filter((n) => parent(n.name) === group && n.name.toLowerCase().includes(filter));
  const children = names.groups
    .filter((g) => g.group !== ":" && parent(g.group) === group)
    .map((g) => groupNode(g.group, filter))
    .filter(Boolean);
  if (filter && members.length === 0 && children.length === 0 && !group.toLowerCase().includes(filter)) return null;
  const reserved = names.groups.find((g) => g.group === group)?.reserved;
  return el("details", { open: true, class: "group", "data-group": group },
    el("summary", {}, group === ":" ? ": (root)" : group, reserved ? el("span", { class: "tag" }, "protected") : null),
    members.length ? el("table", {}, el("tbody", {}, members.map((n) => nameRow(n)))) : null,
    children);
}

function parent(name) {
  const cut = name.lastIndexOf(".");
  return cut <= 0 ? ":" : name.slice(0, cut);
}

function nameRow(entry) {
  const remove = entry.reserved
    ? el("span", { class: "tag" }, "protected")
    : el("button", { class: "action", "data-name": entry.name, onclick: () => changeName("remove", { name: entry.name }) }, "Remove");
  return el("tr", { "data-name": entry.name },
    el("td", { class: "name" }, entry.name),
    el("td", {}, (entry.uris || [entry.uri]).join(", ")),
    el("td", {}, entry.meta || ""),
    el("td", {}, entry.lease_left === undefined ? "permanent" : `lease ${ago(entry.lease_left)}`),
    el("td", {}, remove));
}

export async function changeName(action, form) {
  const result = document.querySelector("#names-result");
  try {
    const answer = await postJson("/api/names", { action, ...form });
    result.className = "result good";
    result.textContent = action === "resolve" ? `${answer.name} → ${(answer.uris || [answer.uri]).join(", ")}` : `${action}: done`;
    await showNames();
  } catch (error) {
    result.className = "result bad";
    result.textContent = error.message;
  }
}

export function exportNames() {
  download("names.json", JSON.stringify(names, null, 2), "application/json");
}

// --- subscribers and counters, from the live statistics ---------------------------------------

export function showSubscribers(live) {
  const rows = (live.subscribers || []).map((s) => {
    const trouble = s.stalled_for > 0 || s.dropped > 0;
    const share = s.queue ? Math.min(1, s.depth / s.queue) : 0;
    return el("tr", { class: trouble ? "warn" : "", "data-id": s.id },
      el("td", {}, s.name ? `${s.name} (${s.id})` : s.id),
      el("td", {}, s.endpoint),
      el("td", {}, s.policy),
      el("td", {}, el("meter", { min: 0, max: 1, value: share, title: `${s.depth} of ${s.queue}` }), ` ${s.depth}/${s.queue || "∞"}`),
      el("td", {}, number(s.sent)),
      el("td", {}, number(s.dropped)),
      el("td", {}, s.behind ? `${s.behind.toFixed(1)} s` : "–"),
      el("td", {}, s.stalled_for ? `${s.stalled_for.toFixed(1)} s` : "–"),
      el("td", {}, [...s.subjects, ...s.patterns.map((p) => `/${p}/`)].join(", ")));
  });
  document.querySelector("#subscribers tbody").replaceChildren(...rows);
}

const COUNTERS = [
  ["events_published", "published"],
  ["events_delivered", "delivered"],
  ["events_dropped", "dropped"],
  ["evictions", "evictions"],
];

export function showCounters(live) {
  const server = live.server;
  const cards = COUNTERS.map(([key, label]) => el("div", { class: "card", "data-counter": key },
    el("h3", {}, label),
    el("p", { class: "big" }, `${(live.rates?.[key] ?? 0).toFixed(1)} /s`),
    el("p", {}, `${number(server?.[key])} in all`),
    spark(live.history || [], key)));
  cards.push(el("div", { class: "card", "data-counter": "retained" },
    el("h3", {}, "retained"),
    el("p", { class: "big" }, number(server?.retained)),
    el("p", {}, `${number(server?.retained_bytes)} bytes`)));
  document.querySelector("#counters").replaceChildren(...cards);
}

function spark(history, key) {
  const points = history.slice(-120).map((p) => p[key]);
  const top = Math.max(1, ...points);
  const path = points.map((v, i) => `${i === 0 ? "M" : "L"}${i * 2},${30 - (v / top) * 28}`).join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 240 32");
  svg.setAttribute("class", "spark");
  const line = document.createElementNS("http://www.w3.org/2000/svg", "path");
  line.setAttribute("d", path || "M0,30");
  svg.append(line);
  return svg;
}

// --- subjects -------------------------------------------------------------------------------

let lastSubjects = new Map();

export async function showSubjects() {
  const pattern = document.querySelector("#subjects-pattern").value;
  const error = document.querySelector("#subjects-error");
  let body;
  try {
    body = await getJson(`/api/subjects?pattern=${encodeURIComponent(pattern)}`);
    error.textContent = "";
  } catch (failure) {
    error.className = "result bad";
    error.textContent = failure.message;
    return;
  }
  const now = Date.now() / 1000;
  const rows = body.subjects.map((s) => {
    const before = lastSubjects.get(s.subject);
    const rate = before ? (s.events - before.events) / Math.max(0.001, now - before.at) : 0;
    return el("tr", { "data-subject": s.subject },
      el("td", {}, s.subject), el("td", {}, number(s.events)), el("td", {}, rate.toFixed(1)),
      el("td", {}, clock(s.last)), el("td", {}, s.subscribers ?? "–"), el("td", {}, s.retained ? "yes" : ""));
  });
  lastSubjects = new Map(body.subjects.map((s) => [s.subject, { events: s.events, at: now }]));
  document.querySelector("#subjects tbody").replaceChildren(...rows);
}

// --- activity -------------------------------------------------------------------------------

export function addActivity(row) {
  const list = document.querySelector("#activity-rows");
  const item = row.kind === "gap"
    ? el("li", { class: "gap" }, row.lost === null ? "events may have been lost (resumed)" : `${row.lost} event(s) lost`)
    : el("li", {}, el("time", {}, clock(row.time)), " ", el("strong", {}, row.subject.replace(/^\$es\./, "")), " ", row.text);
  list.prepend(item);
  while (list.children.length > 500) list.lastChild.remove();
}
