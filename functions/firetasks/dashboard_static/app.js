// The firetasks dashboard. Task data is untrusted: it is only ever put on the page as text
// (textContent), never as HTML. The ID token lives in sessionStorage and goes in a header.
const STATES = ["scheduled", "running", "retrying", "completed", "failed", "cancelled"];
const REFRESH_MS = 5000;
const $ = (selector) => document.querySelector(selector);
let config = null;
let filters = {};
let nextCursor = null;
let current = null; // the task shown in the detail panel

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
  const data = await response.json();
  if (!response.ok) throw new Error(data.error ? data.error.message : "sign-in failed");
  sessionStorage.setItem("firetasks.token", data.idToken);
  sessionStorage.setItem("firetasks.refresh", data.refreshToken);
  sessionStorage.setItem("firetasks.email", data.email);
}

async function start() {
  say("");
  try {
    await refreshOverview();
  } catch (error) {
    return; // signedOut() has shown why
  }
  show($("#sign-in"), false);
  show($("#app"), true);
  show($("#sign-out"), true);
  $("#who").textContent = sessionStorage.getItem("firetasks.email") || "";
  await Promise.all([loadTasks(true), loadAudit()]);
}

async function refreshOverview() {
  const stats = await api("api/stats");
  const cards = $("#states");
  cards.replaceChildren(...STATES.map((state) => {
    const card = el("div", null, `card ${state}`);
    card.append(el("strong", stats.byState[state]), el("span", state));
    card.addEventListener("click", () => applyFilters({ state }));
    return card;
  }));
  $("#failed-hour").textContent = stats.failures.lastHour;
  $("#failed-day").textContent = stats.failures.lastDay;
  const oldest = stats.oldestWaiting;
  $("#oldest").textContent = oldest ? `${oldest.path} (since ${when(oldest.createdAt)})` : "none";
  $("#oldest").onclick = (event) => { event.preventDefault(); if (oldest) openTask(oldest.path); };
  $("#handlers tbody").replaceChildren(...Object.entries(stats.byHandler).map(([name, counts]) => {
    const row = el("tr");
    row.append(el("td", name), el("td", counts.total), el("td", counts.failed));
    const [type, ...action] = name.split(".");
    row.addEventListener("click", () => applyFilters({ type, action: action.join(".") }));
    return row;
  }));
  $("#refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

function formFilters() {
  const form = new FormData($("#filters"));
  const chosen = {};
  for (const [key, value] of form.entries()) {
    if (!value) continue;
    chosen[key] = key === "since" || key === "until" ? new Date(value).toISOString() : value;
  }
  return chosen;
}

function applyFilters(chosen) {
  const form = $("#filters");
  for (const name of ["state", "type", "action", "parent", "since", "until"]) {
    form.elements[name].value = chosen[name] || "";
  }
  form.elements.collection.value = chosen.collection || config.collections[0];
  filters = formFilters();
  loadTasks(true).catch((error) => say(error.message));
}

async function loadTasks(fresh) {
  const params = new URLSearchParams(filters);
  if (!fresh && nextCursor) params.set("cursor", nextCursor);
  const page = await api(`api/tasks?${params}`);
  const rows = page.tasks.map((task) => {
    const row = el("tr");
    const error = task.error ? `${task.error.type}: ${task.error.message}` : "";
    const state = el("td");
    state.append(stateBadge(task.state));
    row.append(el("td", task.path), el("td", `${task.type}.${task.action}`), state,
      el("td", task.attempts ?? 0), el("td", when(task.createdAt)), el("td", error));
    row.dataset.path = task.path;
    row.addEventListener("click", () => openTask(task.path));
    return row;
  });
  const body = $("#tasks tbody");
  if (fresh) body.replaceChildren(...rows); else body.append(...rows);
  nextCursor = page.next;
  show($("#more"), Boolean(nextCursor));
}

async function openTask(path) {
  const task = await api(`api/task?path=${encodeURIComponent(path)}`);
  current = task;
  const fields = task.fields;
  $("#detail-path").textContent = task.path;
  $("#detail-parent").textContent = task.parent ? `all tasks of ${task.parent}` : "";
  $("#detail-parent").onclick = (event) => {
    event.preventDefault();
    applyFilters({ parent: task.parent, collection: task.path.split("/").slice(-2)[0] });
  };
  const facts = [["type.action", `${fields.type}.${fields.action}`], ["state", fields.state],
    ["attempts", fields.attempts ?? 0], ["created", when(fields.createdAt)],
    ["started", when(fields.startedAt)], ["finished", when(fields.finishedAt)],
    ["run at", when(fields.runAt)],
    ["error", fields.error ? `${fields.error.type}: ${fields.error.message}` : ""]];
  $("#detail-fields").replaceChildren(...facts.flatMap(([name, value]) => {
    const dd = el("dd");
    if (name === "state") dd.append(stateBadge(value)); else dd.textContent = value;
    return [el("dt", name), dd];
  }));
  $("#history tbody").replaceChildren(...(fields.history || []).slice().reverse().map((entry) => {
    const row = el("tr");
    const error = entry.error ? `${entry.error.type}: ${entry.error.message}` : "";
    row.append(el("td", entry.attempt), el("td", when(entry.startedAt)),
      el("td", when(entry.finishedAt)), el("td", entry.outcome), el("td", error));
    return row;
  }));
  $("#detail-data").textContent = JSON.stringify(fields.data, null, 2);
  $("#detail-result").textContent = fields.result === undefined ? "" : JSON.stringify(fields.result, null, 2);
  show($("#retry"), ["failed", "cancelled", "completed"].includes(fields.state));
  show($("#cancel"), ["scheduled", "retrying", "running"].includes(fields.state));
  show($("#detail"), true);
  $("#detail").scrollIntoView({ block: "nearest" });
}

async function act(action) {
  if (!current) return;
  try {
    // The state and version shown: a task that moved on meanwhile answers 409, not a second run.
    const outcome = await api(`api/${action}`,
      { path: current.path, state: current.fields.state, version: current.version });
    say(`${action}: ${current.path} ${outcome.before} → ${outcome.after}`);
  } catch (error) {
    say(`${action} failed: ${error.message}`);
  }
  await Promise.all([openTask(current.path), loadTasks(true), refreshOverview(), loadAudit()]);
}

async function bulkRetry() {
  const counted = await api("api/bulk-retry", { filters: withoutState(filters), dryRun: true });
  if (counted.count === 0) { say("No failed task matches these filters."); return; }
  if (!window.confirm(`Retry ${counted.count} failed task(s)?`)) return;
  const done = await api("api/bulk-retry", { filters: withoutState(filters), confirm: counted.count });
  say(`Retried ${done.retried} task(s).`);
  await Promise.all([loadTasks(true), refreshOverview(), loadAudit()]);
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
    row.append(el("td", when(entry.at)), el("td", who), el("td", entry.action),
      el("td", entry.task), el("td", `${entry.before} → ${entry.after}`));
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
    applyFilters(formFilters());
  });
  $("#more").addEventListener("click", () => loadTasks(false).catch((error) => say(error.message)));
  $("#retry").addEventListener("click", () => act("retry"));
  $("#cancel").addEventListener("click", () => act("cancel"));
  $("#bulk-retry").addEventListener("click", () => bulkRetry().catch((error) => say(error.message)));
  setInterval(() => { if (token()) refreshOverview().catch(() => {}); }, REFRESH_MS);
  if (token()) await start(); else signedOut();
}

main();
