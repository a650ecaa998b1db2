// A task's attempts as a timeline, oldest first: each attempt's start, end, how long it ran and its
// outcome, and between two attempts the wait before the retry; while the task is retrying, when
// the next attempt is due. Built with DOM calls (errors are shown as text only).
import { duration } from "./charts.js";

function item(className, ...parts) {
  const node = document.createElement("li");
  node.className = className;
  for (const part of parts) {
    const span = document.createElement("span");
    span.textContent = part;
    node.append(span);
  }
  return node;
}

function time(iso) { return iso ? new Date(iso).toLocaleString() : "?"; }

function between(from, to) {
  const ms = new Date(to).getTime() - new Date(from).getTime();
  return Number.isFinite(ms) ? duration(Math.max(0, ms)) : "?";
}

// `fields`: the task's fields (history, state, runAt, startedAt).
export function attemptTimeline(fields) {
  const history = Array.isArray(fields.history) ? fields.history : [];
  const items = [];
  history.forEach((entry, index) => {
    const previous = history[index - 1];
    if (previous && previous.finishedAt && entry.startedAt) {
      items.push(item("wait", `waited ${between(previous.finishedAt, entry.startedAt)} before attempt ${entry.attempt}`));
    }
    const error = entry.error ? `${entry.error.type}: ${entry.error.message}` : "";
    const outcome = item(`attempt ${entry.outcome}`, `attempt ${entry.attempt}`,
      `${time(entry.startedAt)} → ${time(entry.finishedAt)}`,
      `ran ${between(entry.startedAt, entry.finishedAt)}`, entry.outcome, error);
    outcome.dataset.attempt = entry.attempt;
    outcome.dataset.outcome = entry.outcome;
    items.push(outcome);
  });
  const last = history[history.length - 1];
  if (fields.state === "retrying" && fields.runAt) {
    items.push(item("wait next", last && last.finishedAt
      ? `waits ${between(last.finishedAt, fields.runAt)}: next attempt at ${time(fields.runAt)}`
      : `next attempt at ${time(fields.runAt)}`));
  } else if (fields.state === "running" && fields.startedAt) {
    items.push(item("attempt running", `attempt ${fields.attempts ?? ""}`.trim(),
      `${time(fields.startedAt)} → now`, "running"));
  }
  if (!items.length) items.push(item("none", "no attempt yet"));
  return items;
}
