// The firetasks dashboard. Task data is untrusted: it is only ever put on the page as text
// (textContent), never as HTML. The ID token lives in sessionStorage and goes in a header.
import { finishedChart, latencyChart } from "./charts.js";
import { GRAPH_LIMIT, workflowGraph } from "./graph.js";
import { attemptTimeline } from "./timeline.js";

const STATES = ["waiting", "scheduled", "running", "retrying", "completed", "failed", "cancelled"];
const ACTIVE = ["waiting", "scheduled", "running", "retrying"]; // may still change by themselves
const REFRESH_MS = 5000; // the overview, while the tab is visible
const HIDDEN_REFRESH_MS = 60000; // ... while it is hidden (and at once when shown again)
const CHARTS_MS = 60000; // the charts: their hours change slowly, and each refresh costs reads
const DETAIL_MS = 2000; // an open task that is still active
const NO_HANDLER = "no handler in this deployment";
const SIGN_IN_ERRORS = {
  EMAIL_NOT_FOUND: "Wrong email or password.",
  INVALID_PASSWORD: "Wrong email or password.",
  INVALID_LOGIN_CREDENTIALS: "Wrong email or password.",
  INVALID_EMAIL: "That is not an email address.",
  MISSING_PASSWORD: "Enter your password.",
  USER_DISABLED: "This account is disabled: ask an administrator.",
  TOO_MANY_ATTEMPTS_TRY_LATER: "Too many failed attempts: wait a few minutes, then try again.",
  OPERATION_NOT_ALLOWED: "Sign-in with email and password is not enabled for this project.",
};
const $ = (selector) => document.querySelector(selector);
let config = null;
let filters = {};
let nextCursor = null;
let current = null; // the task shown in the detail panel
let view = { name: "overview" }; // the view the address names (route())
let views = 0; // views routed to: a load answers only for the view it was started for
let overviewTimer = null;
let detailTimer = null;
let chartsAt = 0; // when the charts were last refreshed (ms)
let listRequests = 0; // list loads started: only the latest one's answer is shown
let listed = new Map(); // the listed tasks by path, to name a row's dependencies
const FINISHED = ["completed", "failed", "cancelled"];
const ATOMIC_NOTE = "Atomic handler: it runs without a claim, so it never shows running; "
  + "its writes are committed with its completion.";

function taskId(path) { return String(path).split("/").pop(); }

// A link to a task (opened in the detail panel).
function taskLink(path, text) {
  const link = el("a", text ?? taskId(path), "task-link");
  link.href = `#/${taskView(path)}`;
  link.addEventListener("click", (event) => event.stopPropagation()); // not the row's click
  return link;
}

function siblingPath(path, id) { return [...String(path).split("/").slice(0, -1), id].join("/"); }

// "blocked by <dependency>" for a task failed or cancelled because a dependency did not complete.
function blockedBy(task) {
  const error = task.error || (task.fields && task.fields.error);
  if (!error || error.type !== "DependencyFailed" || !error.dependency) return null;
  const node = el("small", "blocked by ", "blocked");
  node.append(taskLink(siblingPath(task.path, error.dependency), String(error.dependency)));
  return node;
}

// "waiting for X, Y": the dependencies (as listed) that have not finished yet.
function waitingFor(task) {
  if (task.state !== "waiting" || !Array.isArray(task.after) || !task.after.length) return null;
  const open = task.after.filter(
    (id) => !FINISHED.includes((listed.get(siblingPath(task.path, id)) || {}).state));
  if (!open.length) return null;
  const node = el("small", "waiting for ", "waiting-for");
  open.forEach((id, index) => {
    if (index) node.append(", ");
    const known = listed.get(siblingPath(task.path, id));
    node.append(taskLink(siblingPath(task.path, id), known ? `${id} (${known.type}.${known.action})` : id));
  });
  return node;
}

// The tasks in dependency order (topological by `after`, stable otherwise).
function dependencyOrder(tasks) {
  const byId = new Map(tasks.map((task) => [taskId(task.path), task]));
  const done = new Set();
  const ordered = [];
  const visit = (task, seen) => {
    const id = taskId(task.path);
    if (done.has(id) || seen.has(id)) return;
    seen.add(id);
    for (const dep of task.after || []) if (byId.has(dep)) visit(byId.get(dep), seen);
    done.add(id);
    ordered.push(task);
  };
  for (const task of tasks) visit(task, new Set());
  return ordered;
}

function token() { return sessionStorage.getItem("firetasks.token"); }

function show(element, visible) { element.hidden = !visible; }

function say(text) {
  $("#message").textContent = text;
  show($("#message"), Boolean(text));
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function stateBadge(state) { return el("span", state, `state ${STATES.includes(state) ? state : ""}`); }

// An id or path as text that may wrap only after a "/" or a ".", never inside a name (app.css
// keeps each part on one line).
function breakable(text, tag = "span") {
  const node = el(tag, null, "id");
  for (const part of String(text ?? "").split(/(?<=[/.])/)) {
    node.append(el("span", part), document.createElement("wbr"));
  }
  node.title = String(text ?? "");
  return node;
}

function note(selector, text, ok) {
  const node = $(selector);
  node.textContent = text;
  node.className = `note ${ok ? "ok" : "error"}`;
  show(node, Boolean(text));
}

// Go to a view: its address (#/, #/tasks?<filters>, #/task/<path>, #/workflow/<parent>), which
// route() then shows; the same address again reloads it.
function go(target) {
  const url = `#/${target}`;
  if (location.hash === url) route().catch((error) => viewError(error.message));
  else location.hash = url;
}

function taskView(path) { return `task/${path.split("/").map(encodeURIComponent).join("/")}`; }

function listView(chosen) {
  const query = new URLSearchParams(chosen).toString();
  return query ? `tasks?${query}` : "tasks";
}

function workflowView(parent, collection) {
  const path = parent.split("/").map(encodeURIComponent).join("/");
  return `workflow/${path}${collection ? `?collection=${encodeURIComponent(collection)}` : ""}`;
}

function decodePath(text) { return text.split("/").map(decodeURIComponent).join("/"); }

// What the address names: the view, and its task, filters or parent.
function parseView() {
  const address = location.hash.replace(/^#\/?/, "");
  const [where, query = ""] = address.split(/\?(.*)/s);
  const params = Object.fromEntries(new URLSearchParams(query));
  if (where.startsWith("task/")) return { name: "task", path: decodePath(where.slice(5)) };
  if (where === "tasks") return { name: "tasks", filters: params };
  if (where.startsWith("workflow/")) {
    return { name: "workflow", parent: decodePath(where.slice(9)), collection: params.collection };
  }
  return { name: "overview" };
}

const SECTIONS = { overview: ["#overview", "#audit"], tasks: ["#list"], task: ["#detail"],
  workflow: ["#workflow"] };

// Show the view the address names, and only it: no other view's content, timers or errors stay.
async function route() {
  view = parseView();
  const mine = ++views;
  clearTimeout(detailTimer);
  clearTimeout(workflowTimer);
  current = null;
  say("");
  show($("#view-error"), false);
  for (const [name, selectors] of Object.entries(SECTIONS)) {
    for (const selector of selectors) show($(selector), false);
  }
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("current", link.dataset.view === view.name
      || (link.dataset.view === "tasks" && view.name === "task"));
  }
  const loaded = {
    overview: () => Promise.all([refreshOverview(), loadAudit()]),
    tasks: () => applyFilters(view.filters),
    task: () => openTask(view.path),
    workflow: () => loadWorkflow(view.parent, view.collection),
  }[view.name]();
  try {
    await loaded;
  } catch (error) {
    if (mine === views && token()) viewError(error.message);
    return;
  }
  if (mine === views && view.name !== "task") {
    for (const selector of SECTIONS[view.name]) show($(selector), true);
  }
}

// The view could not be shown: only why, and a way back.
function viewError(text) {
  for (const selectors of Object.values(SECTIONS)) for (const one of selectors) show($(one), false);
  $("#view-error-text").textContent = text;
  show($("#view-error"), true);
}

function signInError(code) {
  const known = SIGN_IN_ERRORS[String(code || "").split(/[\s:]/)[0]];
  return known || `Sign-in failed: ${code || "no answer"}.`;
}

function when(iso) { return iso ? new Date(iso).toLocaleString() : ""; }

async function api(path, body, refreshed = false) {
  const headers = { Authorization: `Bearer ${token()}` };
  const init = { headers };
  if (body !== undefined) {
    init.method = "POST";
    headers["Content-Type"] = "application/json";
    headers["X-Firetasks-CSRF"] = "1";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({ error: `the server answered ${response.status}` }));
  if (response.status === 401 && data.reason === "expired" && !refreshed && await refreshToken()) {
    return api(path, body, true);
  }
  if (response.status === 401 || response.status === 403) {
    signedOut(data.error);
    throw new Error(data.error);
  }
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

// An ID token lasts an hour: swap the refresh token for a new one (the Secure Token REST API).
// A revoked or disabled account is refused here too, and then has to sign in again.
async function refreshToken() {
  const refresh = sessionStorage.getItem("firetasks.refresh");
  if (!refresh) return false;
  const response = await fetch(`${config.tokenUrl}?key=${encodeURIComponent(config.apiKey)}`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: refresh }),
  }).catch(() => null);
  if (!response || !response.ok) return false;
  const data = await response.json();
  sessionStorage.setItem("firetasks.token", data.id_token);
  sessionStorage.setItem("firetasks.refresh", data.refresh_token);
  return true;
}

function signedOut(reason) {
  sessionStorage.removeItem("firetasks.token");
  sessionStorage.removeItem("firetasks.refresh");
  show($("#app"), false);
  show($("#sign-in"), true);
  show($("#sign-out"), false);
  $("#who").textContent = "";
  say(reason || "");
}

async function signIn(email, password) {
  const url = `${config.authUrl}/v1/accounts:signInWithPassword?key=${encodeURIComponent(config.apiKey)}`;
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password, returnSecureToken: true }),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(signInError(data.error && data.error.message));
  sessionStorage.setItem("firetasks.token", data.idToken);
  sessionStorage.setItem("firetasks.refresh", data.refreshToken);
  sessionStorage.setItem("firetasks.email", data.email);
}

async function start() {
  say("");
  show($("#sign-in"), false);
  show($("#app"), true);
  show($("#sign-out"), true);
  $("#who").textContent = sessionStorage.getItem("firetasks.email") || "";
  await route(); // a refused token: signedOut() shows why
}

// The overview every REFRESH_MS while the tab is visible, every HIDDEN_REFRESH_MS while hidden.
function scheduleOverview() {
  clearTimeout(overviewTimer);
  const delay = document.visibilityState === "hidden" ? HIDDEN_REFRESH_MS : REFRESH_MS;
  overviewTimer = setTimeout(() => {
    scheduleOverview();
    if (token() && !$("#app").hidden && view.name === "overview") refreshOverview().catch(() => {});
  }, delay);
}

function visibilityChanged() {
  if (document.visibilityState === "visible" && token() && !$("#app").hidden) {
    if (view.name === "overview") refreshOverview().catch(() => {});
    watchDetail();
    watchWorkflow();
  }
  scheduleOverview();
}

// The overview: unfinished tasks now, finished ones in the last day (bounded cost: the API never
// counts all time). A count that reached the API's cap is shown as "n+".
async function refreshOverview() {
  const stats = await api("api/stats");
  const shown = (count) => (count >= stats.countCap ? `${count}+` : String(count));
  const day = stats.recent.lastDay;
  $("#states").replaceChildren(...STATES.map((state) => {
    const card = el("div", null, `card ${state}`);
    const now = state in stats.byState;
    card.append(el("strong", shown(now ? stats.byState[state] : day[state] ?? 0)),
      el("span", now ? state : `${state} · 24 h`));
    card.addEventListener("click", () => go(listView({ state })));
    return card;
  }));
  $("#failed-hour").textContent = shown(stats.recent.lastHour.failed);
  $("#completed-hour").textContent = shown(stats.recent.lastHour.completed);
  const oldest = stats.oldestWaiting;
  $("#oldest").replaceChildren(oldest ? breakable(oldest.path) : "none",
    oldest ? ` (since ${when(oldest.createdAt)})` : "");
  $("#oldest").href = oldest ? `#/${taskView(oldest.path)}` : "#/";
  $("#handlers tbody").replaceChildren(...Object.entries(stats.byHandler).map(([name, counts]) => {
    const row = el("tr");
    row.append(breakable(name, "td"), el("td", shown(counts.failedLastDay)));
    const [type, ...action] = name.split(".");
    row.addEventListener("click", () => go(listView({ type, action: action.join(".") })));
    return row;
  }));
  $("#refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
  if (Date.now() - chartsAt >= CHARTS_MS) await refreshCharts();
}

// The last 24 hours, for all handlers or the one chosen (bounded cost: see api/charts).
async function refreshCharts() {
  chartsAt = Date.now();
  const handler = $("#chart-handler").value;
  const data = await api(`api/charts${handler ? `?handler=${encodeURIComponent(handler)}` : ""}`);
  const select = $("#chart-handler");
  const known = new Set([...select.options].map((option) => option.value));
  for (const name of data.handlers) if (!known.has(name)) select.append(el("option", name));
  $("#chart-finished").replaceChildren(finishedChart(data.hours));
  $("#chart-latency").replaceChildren(latencyChart(data.hours));
  $("#charts-refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

// The form's filters as the API's parameters: a search by a data field is data.<field>=<value>.
function formFilters() {
  const form = new FormData($("#filters"));
  const chosen = {};
  for (const [key, value] of form.entries()) {
    if (!value || key === "dataField" || key === "dataValue") continue;
    chosen[key] = key === "since" || key === "until" ? new Date(value).toISOString() : value;
  }
  const field = form.get("dataField");
  const value = String(form.get("dataValue") || "").trim();
  if (field && value) chosen[`data.${field}`] = value;
  return chosen;
}

// The list view: the address' filters, as they are (a bad one is the API's 400, naming it, and no
// list), shown in the form.
function applyFilters(chosen) {
  const form = $("#filters");
  for (const name of ["state", "type", "action", "parent"]) {
    form.elements[name].value = chosen[name] || "";
  }
  for (const name of ["since", "until"]) form.elements[name].value = localTime(chosen[name]);
  form.elements.collection.value = chosen.collection || config.collections[0];
  const [searched, value] = Object.entries(chosen).find(([key]) => key.startsWith("data.")) || [];
  form.elements.dataField.value = searched ? searched.slice(5) : "";
  form.elements.dataValue.value = value || "";
  filters = { ...chosen };
  nextCursor = null;
  listed = new Map();
  $("#tasks tbody").replaceChildren();
  return loadTasks(true);
}

// An ISO time as a datetime-local input's value (the browser's time zone).
function localTime(iso) {
  const time = new Date(iso || "");
  if (Number.isNaN(time.getTime())) return "";
  return new Date(time.getTime() - time.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

function taskRow(task) {
  const row = el("tr");
  const error = task.error ? `${task.error.type}: ${task.error.message}` : "";
  const state = el("td");
  state.append(stateBadge(task.state));
  if (task.handled === false) state.append(el("small", NO_HANDLER, "hint"));
  if (task.queuedAt && ["scheduled", "retrying"].includes(task.state)) {
    state.append(el("small", task.pausedFor ? "paused" : "throttled", "throttled"));
  }
  const why = waitingFor(task) || blockedBy(task);
  if (why) state.append(why);
  const path = el("td", null, "id");
  path.append(breakable(task.path));
  const name = el("td", null, "id");
  name.append(breakable(`${task.type}.${task.action}`));
  row.append(path, name, state, el("td", task.attempts ?? 0), el("td", when(task.createdAt)),
    el("td", error));
  row.dataset.path = task.path;
  row.addEventListener("click", () => go(taskView(task.path)));
  return row;
}

async function loadTasks(fresh) {
  const params = new URLSearchParams(filters);
  if (!fresh && nextCursor) params.set("cursor", nextCursor);
  const request = ++listRequests;
  const page = await api(`api/tasks?${params}`);
  if (request !== listRequests || view.name !== "tasks") return; // a later load supersedes it
  if (fresh) listed = new Map();
  for (const task of page.tasks) listed.set(task.path, task);
  // One parent's tasks: its workflow, in dependency order.
  const tasks = filters.parent ? dependencyOrder(page.tasks) : page.tasks;
  const rows = tasks.map(taskRow);
  const body = $("#tasks tbody");
  if (fresh) body.replaceChildren(...rows); else body.append(...rows);
  nextCursor = page.next;
  show($("#more"), Boolean(nextCursor));
  watchWorkflow();
}

// A parent's workflow follows itself while it is shown: every DETAIL_MS while any of its tasks
// may still change, every WORKFLOW_IDLE_MS once all are finished (an operator's retry elsewhere
// reopens it).
const WORKFLOW_IDLE_MS = 5000;
let workflowTimer = null;
function watchWorkflow() {
  clearTimeout(workflowTimer);
  if (document.visibilityState === "hidden") return;
  if (view.name === "workflow") {
    const active = workflowTasks.some((task) => ACTIVE.includes(task.state));
    const shown = views;
    workflowTimer = setTimeout(() => {
      if (token() && shown === views) loadWorkflow(view.parent, view.collection).catch(() => {});
    }, active ? DETAIL_MS : WORKFLOW_IDLE_MS);
    return;
  }
  if (view.name !== "tasks" || !filters.parent || nextCursor) return;
  if (![...listed.values()].some((task) => ACTIVE.includes(task.state))) return;
  const shown = JSON.stringify(filters);
  workflowTimer = setTimeout(() => {
    if (token() && view.name === "tasks" && JSON.stringify(filters) === shown) {
      loadTasks(true).catch(() => {});
    }
  }, DETAIL_MS);
}

// A parent's workflow: its tasks (up to the API's page of 100) as a graph, followed live while
// any is unfinished; beyond GRAPH_LIMIT tasks, as a list in dependency order.
let workflowTasks = [];
async function loadWorkflow(parent, collection) {
  const mine = views;
  const params = new URLSearchParams({ parent, limit: "100" });
  if (collection) params.set("collection", collection);
  const page = await api(`api/tasks?${params}`);
  if (mine !== views) return;
  workflowTasks = dependencyOrder(page.tasks);
  listed = new Map(page.tasks.map((task) => [task.path, task]));
  $("#workflow-parent").replaceChildren(breakable(parent));
  $("#workflow-list-link").href = `#/${listView({ parent, ...(collection ? { collection } : {}) })}`;
  const asGraph = workflowTasks.length <= GRAPH_LIMIT && !page.next;
  $("#workflow-graph").replaceChildren(...(asGraph && workflowTasks.length
    ? [workflowGraph(workflowTasks, (path) => go(taskView(path)))] : []));
  $("#workflow-note").textContent = !workflowTasks.length ? "No tasks under this parent."
    : asGraph ? "" : `More than ${GRAPH_LIMIT} tasks: shown as a list.`;
  show($("#workflow-note"), Boolean($("#workflow-note").textContent));
  $("#workflow-tasks tbody").replaceChildren(...(asGraph ? [] : workflowTasks.map(taskRow)));
  show($("#workflow-tasks"), !asGraph);
  show($("#workflow"), true);
  watchWorkflow();
}

// The task view: one task, live while it is active; a task that cannot be read is an error.
async function openTask(path) {
  note("#action-message", "");
  await loadTask(path);
}

// Poll the open task while it may still change by itself (and the tab is visible).
function watchDetail() {
  clearTimeout(detailTimer);
  // ... or while a task it runs after or before may still change (its states are shown).
  const linked = current ? [...(current.dependencies || []), ...(current.dependents || [])] : [];
  const active = current && (ACTIVE.includes(current.fields.state)
    || linked.some((other) => ACTIVE.includes(other.state)));
  if (!active || document.visibilityState === "hidden") return;
  const path = current.path;
  detailTimer = setTimeout(() => {
    if (current && current.path === path && token()) loadTask(path).catch(() => {});
  }, DETAIL_MS);
}

async function loadTask(path) {
  const mine = views;
  const task = await api(`api/task?path=${encodeURIComponent(path)}`);
  if (mine !== views || view.name !== "task" || view.path !== path) return;
  current = task;
  const fields = task.fields;
  $("#detail-path").replaceChildren(breakable(task.path));
  $("#detail-parent").textContent = task.parent ? `all tasks of ${task.parent}` : "";
  $("#detail-parent").href = task.parent
    ? `#/${listView({ parent: task.parent, collection: task.path.split("/").slice(-2)[0] })}` : "#";
  $("#detail-workflow").textContent = task.parent ? `workflow of ${task.parent}` : "";
  $("#detail-workflow").href = task.parent
    ? `#/${workflowView(task.parent, task.path.split("/").slice(-2)[0])}` : "#/";
  $("#detail-hint").textContent = task.handled === false
    ? `${NO_HANDLER}: ${fields.type}.${fields.action} waits for a deployment that has one.` : "";
  show($("#detail-hint"), task.handled === false);
  const limit = task.throttled;
  $("#detail-throttled").textContent = limit ? `Throttled, ${limit.ahead} ahead: it waits for `
    + `its handler's limits${limit.key === null ? "" : ` (key ${limit.key})`}, and starts when a `
    + "slot frees." : "";
  const pause = task.paused;
  if (pause) {
    $("#detail-throttled").textContent = `Paused: ${pause.reason || "its pause was lifted"}; it `
      + `starts when ${pause.target} is resumed.`;
  }
  show($("#detail-throttled"), Boolean(limit || pause));
  $("#detail-mode").textContent = task.mode === "atomic" ? ATOMIC_NOTE : "";
  show($("#detail-mode"), task.mode === "atomic");
  const blocked = blockedBy(task);
  $("#detail-blocked").replaceChildren(...(blocked ? [blocked] : []));
  show($("#detail-blocked"), Boolean(blocked));
  showProgress(fields);
  showLinks("#detail-dependencies", task.dependencies || []);
  showLinks("#detail-dependents", task.dependents || []);
  show($("#detail-graph"), Boolean((task.dependencies || []).length || (task.dependents || []).length));
  const facts = [["type.action", `${fields.type}.${fields.action}`], ["state", fields.state],
    ["attempts", fields.attempts ?? 0], ["created", when(fields.createdAt)],
    ["started", when(fields.startedAt)], ["finished", when(fields.finishedAt)],
    ["run at", when(fields.runAt)], ["suspended", suspensionText(fields.suspended)],
    ["error", fields.error ? `${fields.error.type}: ${fields.error.message}` : ""]];
  $("#detail-fields").replaceChildren(...facts.flatMap(([name, value]) => {
    const dd = el("dd");
    if (name === "state") dd.append(stateBadge(value)); else dd.textContent = value;
    return [el("dt", name), dd];
  }));
  const traces = (fields.history || []).map((entry) => entry.traceback).filter(Boolean);
  const trace = ["failed", "retrying"].includes(fields.state) && traces[traces.length - 1];
  $("#detail-traceback pre").textContent = trace || "";
  show($("#detail-traceback"), Boolean(trace));
  $("#timeline").replaceChildren(...attemptTimeline(fields));
  $("#history tbody").replaceChildren(...(fields.history || []).slice().reverse().map((entry) => {
    const row = el("tr");
    const error = el("td", entry.error ? `${entry.error.type}: ${entry.error.message}` : "");
    if (entry.traceback) error.append(traceback(entry.traceback));
    row.append(el("td", entry.attempt), el("td", when(entry.startedAt)),
      el("td", when(entry.finishedAt)), el("td", entry.outcome), error);
    return row;
  }));
  $("#detail-data").textContent = JSON.stringify(fields.data, null, 2);
  $("#detail-result").textContent = fields.result === undefined ? "" : JSON.stringify(fields.result, null, 2);
  $("#detail-steps").textContent = fields.steps ? JSON.stringify(fields.steps, null, 2) : "";
  show($("#retry"), ["failed", "cancelled", "completed"].includes(fields.state));
  show($("#cancel"), ACTIVE.includes(fields.state));
  show($("#pause-handler"), !task.paused);
  show($("#resume-handler"), Boolean(task.paused));
  const waits = fields.state === "scheduled" && fields.suspended && fields.suspended.kind === "wait";
  show($("#send-event"), Boolean(waits));
  show($("#end-wait"), Boolean(waits));
  show($("#detail"), true);
  const row = [...document.querySelectorAll("#tasks tbody tr")].find((tr) => tr.dataset.path === task.path);
  if (listed.has(task.path)) listed.set(task.path, task);
  if (row) row.replaceWith(taskRow(task));
  watchDetail();
}

// A failure's traceback, collapsed: where it was raised, one click away.
function traceback(text) {
  const details = el("details", null, "traceback");
  details.append(el("summary", "traceback"), el("pre", text));
  return details;
}

// A running task's progress ({fraction, message, at}) as a bar with its message.
function showProgress(fields) {
  const progress = fields.progress;
  const visible = Boolean(progress) && ACTIVE.includes(fields.state);
  show($("#detail-progress"), visible);
  if (!visible) return;
  const fraction = Math.min(1, Math.max(0, Number(progress.fraction) || 0));
  $("#progress-bar").value = fraction;
  $("#progress-text").textContent = `${Math.round(fraction * 100)}%${progress.message ? ` · ${progress.message}` : ""}`;
}

// Dependencies or dependents ({id, path, state}) as links with their states.
function showLinks(selector, linked) {
  $(selector).replaceChildren(...(linked.length ? linked.map((other) => {
    const item = el("li");
    item.dataset.path = other.path;
    item.append(taskLink(other.path, other.id), " ",
      other.state ? stateBadge(other.state) : el("small", "missing", "hint"));
    return item;
  }) : [el("li", "none", "none")]));
}

async function act(action) {
  if (!current) return;
  const shown = current;
  note("#action-message", "");
  try {
    // The state and version shown: a task that moved on meanwhile answers 409, not a second run.
    const outcome = await api(`api/${action}`,
      { path: shown.path, state: shown.fields.state, version: shown.version });
    note("#action-message", `${action}: ${outcome.before} → ${outcome.after}`, true);
  } catch (error) {
    note("#action-message", `${action} failed: ${error.message}`, false);
  }
  await Promise.all([loadTask(shown.path).catch((error) => note("#action-message", error.message)),
    loadAudit()]);
}

// Pause the shown task's handler, or resume what holds it (its handler, or its key).
async function steer(action) {
  if (!current) return;
  const shown = current;
  const target = shown.paused ? shown.paused.target : `${shown.fields.type}.${shown.fields.action}`;
  const [handler, ...key] = target.split(":");
  note("#action-message", "");
  try {
    const done = await api(`api/${action}`, key.length ? { handler, key: key.join(":") } : { handler });
    note("#action-message", action === "pause" ? `${done.target}: ${done.reason}`
      : `${done.target}: resumed, ${done.resumed} held task(s) started`, true);
  } catch (error) {
    note("#action-message", `${action} failed: ${error.message}`, false);
  }
  await Promise.all([loadTask(shown.path).catch((error) => note("#action-message", error.message)),
    loadAudit()]);
}

// Send the event a waiting task waits for (firetasks.events), under its parent: name and data asked,
// the wait's own offered (its match as the data).
async function sendEvent() {
  if (!current || !current.fields.suspended) return;
  const shown = current;
  const wait = shown.fields.suspended;
  const name = window.prompt("Event name", wait.event || "");
  if (!name) return;
  const text = window.prompt("Event data (a JSON object)", JSON.stringify(wait.match || {}));
  if (text === null) return;
  try {
    const sent = await api("api/event", { path: shown.path, name, data: JSON.parse(text) });
    note("#action-message", `sent ${sent.name} as ${sent.event}`, true);
  } catch (error) {
    note("#action-message", `send event failed: ${error.message}`, false);
  }
  await Promise.all([loadTask(shown.path).catch((error) => note("#action-message", error.message)),
    loadAudit()]);
}

async function bulkRetry() {
  note("#bulk-message", "");
  const counted = await api("api/bulk-retry", { filters: withoutState(filters), dryRun: true });
  if (counted.count === 0) { note("#bulk-message", "No failed task matches these filters.", true); return; }
  if (!window.confirm(`Retry ${counted.count} failed task(s)?`)) return;
  const done = await api("api/bulk-retry", { filters: withoutState(filters), confirm: counted.count });
  note("#bulk-message", `Retried ${done.retried} task(s).`, true);
  await loadTasks(true);
}

function withoutState(chosen) {
  const { state, ...rest } = chosen;
  return rest;
}

async function loadAudit() {
  const { entries } = await api("api/audit?limit=20");
  $("#audit-log tbody").replaceChildren(...entries.map((entry) => {
    const row = el("tr");
    const who = entry.actor ? entry.actor.email || entry.actor.uid || entry.actor.via : "";
    row.append(el("td", when(entry.at)), breakable(who, "td"), el("td", entry.action),
      breakable(entry.task, "td"), el("td", `${entry.before} → ${entry.after}`));
    return row;
  }));
}

async function main() {
  config = await (await fetch("config.json")).json();
  $("#claim").textContent = config.adminClaim;
  const select = $("#filters").elements.state;
  for (const state of STATES) select.append(el("option", state));
  const collections = $("#filters").elements.collection;
  for (const name of config.collections) collections.append(el("option", name));
  if (config.parentAlias) {
    $("#filters").elements.parent.placeholder = `p-1 or ${config.parentAlias}/p-1`;
  }
  // Search by a data field that handlers declare searchable (`searchable=`), if any.
  const searchable = $("#filters").elements.dataField;
  for (const name of config.searchable || []) searchable.append(el("option", name));
  for (const label of document.querySelectorAll("#filters .search")) {
    show(label, Boolean((config.searchable || []).length));
  }
  $("#sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    try {
      await signIn(form.get("email"), form.get("password"));
      await start();
    } catch (error) {
      say(error.message);
    }
  });
  $("#sign-out").addEventListener("click", () => signedOut("Signed out."));
  $("#filters").addEventListener("submit", (event) => {
    event.preventDefault();
    go(listView(formFilters()));
  });
  $("#more").addEventListener("click", () => loadTasks(false).catch((error) => say(error.message)));
  $("#retry").addEventListener("click", () => act("retry"));
  $("#cancel").addEventListener("click", () => act("cancel"));
  $("#pause-handler").addEventListener("click", () => steer("pause"));
  $("#resume-handler").addEventListener("click", () => steer("resume"));
  $("#send-event").addEventListener("click", sendEvent);
  $("#end-wait").addEventListener("click", () => act("end-wait"));
  $("#bulk-retry").addEventListener("click",
    () => bulkRetry().catch((error) => note("#bulk-message", error.message, false)));
  $("#chart-handler").addEventListener("change", () => refreshCharts().catch((error) => say(error.message)));
  document.addEventListener("visibilitychange", visibilityChanged);
  window.addEventListener("hashchange", () => {
    if (token()) route().catch((error) => viewError(error.message));
  });
  scheduleOverview();
  if (token()) await start(); else signedOut();
}

main();

// What a durable task sleeps or waits for (its `suspended`: firetasks.events.describe_suspension).
function suspensionText(suspension) {
  if (!suspension) return "";
  const waits = suspension.kind === "wait" ? ` for ${suspension.event} matching ${JSON.stringify(suspension.match || {})}` : "";
  return `${suspension.kind} '${suspension.step}'${waits} until ${when(suspension.until)} (since ${when(suspension.since)})`;
}
