// The customer's live view of one order's tasks: /orders/<orderId> under the dashboard function.
// Bundled by esbuild (`make web`) into functions/firetasks/customer_static/customer.js; edit this
// file, not the bundle. The page reads the tasks with the Firebase JS SDK's snapshot listeners,
// under the project's security rules (the order's owner may read its tasks), signed in with
// Firebase Auth: nothing goes through an admin API. Task data is only ever shown as text.
import { initializeApp } from "firebase/app";
import {
  browserSessionPersistence,
  connectAuthEmulator,
  initializeAuth,
  onAuthStateChanged,
  signInWithEmailAndPassword,
  signOut,
} from "firebase/auth";
import { collection, connectFirestoreEmulator, getFirestore, onSnapshot } from "firebase/firestore";

const SIGN_IN_ERRORS = {
  "auth/invalid-credential": "Wrong email or password.",
  "auth/invalid-login-credentials": "Wrong email or password.",
  "auth/wrong-password": "Wrong email or password.",
  "auth/user-not-found": "Wrong email or password.",
  "auth/invalid-email": "That is not an email address.",
  "auth/missing-password": "Enter your password.",
  "auth/user-disabled": "This account is disabled.",
  "auth/too-many-requests": "Too many failed attempts: wait a few minutes, then try again.",
  "auth/network-request-failed": "No connection: check your network and try again.",
};
const NO_ACCESS = "You have no access to this order: it is not yours, or it does not exist.";
const STATE_WORDS = {
  waiting: "waiting",
  scheduled: "scheduled",
  running: "running",
  retrying: "retrying",
  completed: "completed",
  failed: "failed",
  cancelled: "cancelled",
};

const $ = (selector) => document.querySelector(selector);
let stopListening = () => {};

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

// The order's id: the last part of /.../orders/<orderId>.
function orderId() {
  const parts = location.pathname.split("/");
  return decodeURIComponent(parts[parts.length - 1] || "");
}

// "sendConfirmationEmail" -> "Send confirmation email".
function human(action) {
  const words = String(action ?? "").split(".").pop()
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2").replace(/[_-]+/g, " ").toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function millis(stamp) { return stamp && typeof stamp.toMillis === "function" ? stamp.toMillis() : 0; }

// The tasks in workflow order: each after the tasks it waits for, then by creation, then by id.
function ordered(tasks) {
  const byId = new Map(tasks.map((task) => [task.id, task]));
  const depths = new Map();
  const depth = (task, seen = new Set()) => {
    if (depths.has(task.id)) return depths.get(task.id);
    if (seen.has(task.id)) return 0; // a cycle: the processor fails such tasks
    seen.add(task.id);
    const after = Array.isArray(task.data.after) ? task.data.after : [];
    const found = after.map((id) => byId.get(id)).filter(Boolean);
    const value = found.length ? 1 + Math.max(...found.map((dep) => depth(dep, seen))) : 0;
    depths.set(task.id, value);
    return value;
  };
  return [...tasks].sort((a, b) => depth(a) - depth(b)
    || millis(a.data.createdAt) - millis(b.data.createdAt) || a.id.localeCompare(b.id));
}

function describe(task, byId) {
  const { state, after, progress } = task.data;
  if (state === "waiting") {
    const pending = (Array.isArray(after) ? after : [])
      .filter((id) => byId.get(id)?.data.state !== "completed")
      .map((id) => (byId.has(id) ? human(byId.get(id).data.action) : id));
    return pending.length ? `waiting for ${pending.join(" and ")}` : "about to start";
  }
  if (state === "scheduled") return "in the queue";
  if (state === "retrying") return "will try again shortly";
  if (state === "running") return progress?.message ? String(progress.message) : "in progress";
  if (state === "completed") return "done";
  if (state === "failed") return "could not be completed";
  if (state === "cancelled") return "cancelled";
  return "";
}

function row(task, byId) {
  const { state, type, action, progress } = task.data;
  const known = Boolean(STATE_WORDS[state]);
  const item = el("li", null, "task");
  item.dataset.task = task.id;
  item.dataset.state = known ? state : "unknown";
  const head = el("div", null, "head");
  head.append(el("span", human(action), "name"),
              el("span", known ? STATE_WORDS[state] : String(state ?? "?"), `state ${known ? state : ""}`));
  item.append(head, el("div", `${type}.${action}`, "kind"));
  const line = el("div", describe(task, byId), "detail");
  item.append(line);
  if (state === "running" && typeof progress?.fraction === "number") {
    const bar = el("progress");
    bar.max = 1;
    bar.value = progress.fraction;
    bar.textContent = `${Math.round(progress.fraction * 100)}%`;
    const holder = el("div", null, "progress");
    holder.append(bar, el("span", `${Math.round(progress.fraction * 100)}%`, "percent"));
    item.append(holder);
  }
  return item;
}

function render(snapshot) {
  const tasks = snapshot.docs.map((doc) => ({ id: doc.id, data: doc.data() }));
  const byId = new Map(tasks.map((task) => [task.id, task]));
  const list = $("#tasks");
  list.replaceChildren(...ordered(tasks).map((task) => row(task, byId)));
  show($("#empty"), tasks.length === 0);
  const done = tasks.filter((task) => task.data.state === "completed").length;
  $("#summary").textContent = tasks.length ? `${done} of ${tasks.length} steps done` : "";
  say("");
  show($("#order"), true);
}

function listen(db, config, id) {
  stopListening();
  const tasks = collection(db, config.parents, id, config.collection);
  stopListening = onSnapshot(tasks, render, (error) => {
    $("#tasks").replaceChildren();
    show($("#order"), false);
    say(error.code === "permission-denied" ? NO_ACCESS : `The order could not be read: ${error.message}`);
  });
}

async function main() {
  const id = orderId();
  $("#order-id").textContent = id;
  document.title = `Order ${id}`;
  const config = await (await fetch("../customer/config.json")).json();
  const app = initializeApp({ apiKey: config.apiKey, projectId: config.projectId,
                              authDomain: config.authDomain });
  const auth = initializeAuth(app, { persistence: browserSessionPersistence });
  const db = getFirestore(app, config.databaseId);
  if (config.authEmulator) connectAuthEmulator(auth, config.authEmulator, { disableWarnings: true });
  if (config.firestoreEmulator) {
    connectFirestoreEmulator(db, config.firestoreEmulator.host, config.firestoreEmulator.port);
  }

  $("#sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    say("");
    try {
      await signInWithEmailAndPassword(auth, form.email.value, form.password.value);
    } catch (error) {
      say(SIGN_IN_ERRORS[error.code] ?? `Sign-in failed (${error.code ?? error.message}).`);
    }
  });
  $("#sign-out").addEventListener("click", () => signOut(auth));

  onAuthStateChanged(auth, (user) => {
    show($("#sign-in"), !user);
    show($("#sign-out"), Boolean(user));
    $("#who").textContent = user ? user.email ?? "" : "";
    if (user) {
      listen(db, config, id);
    } else {
      stopListening();
      stopListening = () => {};
      $("#tasks").replaceChildren();
      show($("#order"), false);
    }
  });
}

main().catch((error) => say(`The page could not start: ${error.message}`));
