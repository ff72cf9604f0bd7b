// The live tail and the test publish.

import { clock, download, el, postJson } from "./util.js";

const KEPT = 500; // rows shown (and exported) at most
let source = null;
let paused = false;
let rows = []; // newest first

export function startTail() {
  stopTail();
  const mode = document.querySelector("#tail-mode").value;
  const target = document.querySelector("#tail-target").value;
  const shown = document.querySelector("#tail-shown").value;
  const status = document.querySelector("#tail-status");
  const query = `${mode}=${encodeURIComponent(target)}&shown=${encodeURIComponent(shown)}`;
  source = new EventSource(`/api/tail?${query}`);
  source.addEventListener("open", () => {
    status.textContent = `tailing ${mode} ${target}`;
  });
  source.addEventListener("row", (message) => {
    if (paused) return;
    add(JSON.parse(message.data));
  });
  source.addEventListener("error", async () => {
    if (source.readyState === EventSource.CONNECTING) {
      status.textContent = "connection lost: the tail comes back by itself";
      return;
    }
    // Refused (a bad pattern, too many tails): the answer says why.
    stopTail();
    try {
      const reply = await fetch(`/api/tail?${query}`);
      const body = reply.ok ? null : await reply.json();
      if (reply.ok) reply.body?.cancel();
      status.textContent = body ? `${body.error}: ${body.message}` : "the tail stopped: start it again";
    } catch (error) {
      status.textContent = error.message;
    }
  });
}

export function stopTail() {
  if (source !== null) source.close();
  source = null;
}

export function togglePause(button) {
  paused = !paused;
  button.textContent = paused ? "Resume" : "Pause";
}

export function clearTail() {
  rows = [];
  document.querySelector("#tail-rows").replaceChildren();
}

function add(row) {
  rows.unshift(row);
  if (rows.length > KEPT) rows.pop();
  const list = document.querySelector("#tail-rows");
  list.prepend(render(row));
  while (list.children.length > KEPT) list.lastChild.remove();
}

export function rerender() {
  document.querySelector("#tail-rows").replaceChildren(...rows.map(render));
}

function render(row) {
  if (row.kind === "gap") {
    const text = row.lost === null ? "resumed: events may have been lost here" : `lost: ${row.lost} event(s) never arrived`;
    return el("li", { class: "gap" }, text);
  }
  const view = document.querySelector("#tail-view").value;
  let body;
  if (view === "hex") body = row.hex;
  else if (view === "json") body = row.json === null ? row.text : JSON.stringify(row.json, null, 1);
  else body = row.text;
  return el("li", { class: "event", "data-seq": row.seq },
    el("time", {}, clock(row.time)), " ",
    el("strong", {}, row.subject), " ",
    el("span", { class: "meta" }, `#${row.seq} ${row.format} ${row.size} B${row.retained ? " retained" : ""}${row.cut ? " (cut)" : ""}`),
    el("pre", {}, body));
}

export function exportTail() {
  const lines = [...rows].reverse().map((row) => JSON.stringify(row)).join("\n");
  download("tail.jsonl", lines + (lines ? "\n" : ""), "application/x-ndjson");
}

export async function publish(form) {
  const data = new FormData(form);
  const result = document.querySelector("#publish-result");
  try {
    const answer = await postJson("/api/publish", {
      subject: data.get("subject"),
      body: data.get("body"),
      format: data.get("format"),
      retain: data.get("retain") === "on",
      ttl: data.get("ttl") || null,
      confirm: data.get("confirm") === "on",
    });
    result.className = "result good";
    result.textContent = answer.receivers === null ? "published" : `reached ${answer.receivers} subscriber(s)`;
  } catch (error) {
    result.className = "result bad";
    result.textContent = error.message;
  }
}
