// The dashboard's entry point: pages chosen by the URL's #fragment, the live statistics that
// several pages show, the banner when the dashboard cannot be reached, read-only mode.

import {
  addActivity,
  changeName,
  exportNames,
  renderNames,
  showCounters,
  showHealth,
  showNames,
  showSubjects,
  showSubscribers,
} from "./pages.js";
import { clearTail, exportTail, publish, rerender, startTail, togglePause } from "./tail.js";
import { follow, getJson } from "./util.js";

const PAGES = ["health", "names", "subscribers", "subjects", "counters", "tail", "publish", "activity"];
const REFRESH = { health: showHealth, names: showNames, subjects: showSubjects };
let live = {};
let timer = null;

function page() {
  const wanted = location.hash.slice(1);
  return PAGES.includes(wanted) ? wanted : "health";
}

async function show() {
  const current = page();
  for (const name of PAGES) {
    document.querySelector(`#page-${name}`).hidden = name !== current;
    document.querySelector(`nav a[href="#${name}"]`).classList.toggle("here", name === current);
  }
  clearInterval(timer);
  const refresh = REFRESH[current];
  if (refresh) {
    await run(refresh);
    if (current !== "names") timer = setInterval(() => run(refresh), 3000);
  }
  render();
}

async function run(task) {
  try {
    await task();
  } catch (error) {
    notice(error.message);
  }
}

function render() {
  if (page() === "subscribers") showSubscribers(live);
  if (page() === "counters") showCounters(live);
}

function notice(text) {
  const box = document.querySelector("#notice");
  box.hidden = !text;
  box.textContent = text || "";
}

function connected(up) {
  document.querySelector("#banner").hidden = up;
}

async function start() {
  const config = await getJson("/api/config");
  document.body.classList.toggle("read-only", config.read_only);
  document.querySelector("#mode").textContent = config.read_only ? "read-only" : "";
  follow("/api/live", "live", (snapshot) => {
    live = snapshot;
    notice(snapshot.up ? "" : `The event server does not answer: ${snapshot.error}`);
    render();
  }, connected);
  follow("/api/activity", "row", addActivity);

  document.querySelector("#names-filter").addEventListener("input", renderNames);
  document.querySelector("#names-refresh").addEventListener("click", () => run(showNames));
  document.querySelector("#names-export").addEventListener("click", exportNames);
  const nameForm = document.querySelector("#name-form");
  nameForm.addEventListener("submit", (event) => {
    event.preventDefault();
    changeName("register", Object.fromEntries(new FormData(nameForm)));
  });
  for (const button of nameForm.querySelectorAll("button[type=button]")) {
    button.addEventListener("click", () => changeName(button.dataset.action, Object.fromEntries(new FormData(nameForm))));
  }
  document.querySelector("#subjects-refresh").addEventListener("click", () => run(showSubjects));
  document.querySelector("#subjects-pattern").addEventListener("change", () => run(showSubjects));
  document.querySelector("#tail-form").addEventListener("submit", (event) => {
    event.preventDefault();
    startTail();
  });
  document.querySelector("#tail-pause").addEventListener("click", (event) => togglePause(event.target));
  document.querySelector("#tail-clear").addEventListener("click", clearTail);
  document.querySelector("#tail-view").addEventListener("change", rerender);
  document.querySelector("#tail-export").addEventListener("click", exportTail);
  document.querySelector("#publish-form").addEventListener("submit", (event) => {
    event.preventDefault();
    publish(event.target);
  });
  window.addEventListener("hashchange", show);
  await show();
}

start().catch((error) => notice(error.message));
