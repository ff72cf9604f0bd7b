// Small helpers: building elements (never from HTML strings: what the servers send is text),
// asking the dashboard's API, following its server-sent events.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export async function getJson(path) {
  const reply = await fetch(path, { headers: { accept: "application/json" } });
  const body = await reply.json();
  if (!reply.ok) throw new Error(`${body.error}: ${body.message}`);
  return body;
}

export async function postJson(path, body) {
  const reply = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await reply.json();
  if (!reply.ok) throw new Error(`${answer.error}: ${answer.message}`);
  return answer;
}

// Follow server-sent events of `kind` at `path`; `onState(true|false)` says whether the stream
// is up. EventSource comes back by itself after a loss.
export function follow(path, kind, onData, onState = () => {}) {
  const source = new EventSource(path);
  source.addEventListener(kind, (message) => onData(JSON.parse(message.data)));
  source.addEventListener("open", () => onState(true));
  source.addEventListener("error", () => onState(false));
  return source;
}

export function ago(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 1) return "now";
  if (seconds < 120) return `${seconds.toFixed(0)} s`;
  if (seconds < 7200) return `${(seconds / 60).toFixed(0)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

export function clock(time) {
  return new Date(time * 1000).toLocaleTimeString();
}

export function number(n) {
  return typeof n === "number" ? n.toLocaleString("en") : "–";
}

export function download(name, text, type) {
  const link = el("a", { href: URL.createObjectURL(new Blob([text], { type })), download: name });
  document.body.append(link);
  link.click();
  link.remove();
}
