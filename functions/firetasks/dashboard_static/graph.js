// A parent's workflow as a graph: its tasks as nodes coloured by state, each `after` as an edge from
// the dependency to the task that waits for it. Plain SVG built with DOM calls (task data is never
// parsed as markup), laid out in columns by depth: a task sits one column right of its deepest
// dependency. Each node carries data-path and data-state; each edge data-from and data-to.
import { node } from "./charts.js";

export const GRAPH_LIMIT = 40; // more tasks than this: the page shows the list instead
const NODE_W = 170;
const NODE_H = 44;
const GAP_X = 60;
const GAP_Y = 18;
const PAD = 8;

function idOf(path) { return String(path).split("/").pop(); }

function clip(text, size) { return text.length > size ? `${text.slice(0, size - 1)}…` : text; }

// Each task's column: 0 without dependencies among `tasks`, else one more than its deepest one
// (a cycle, which enqueue refuses, is cut where it closes).
function depths(tasks) {
  const byId = new Map(tasks.map((task) => [idOf(task.path), task]));
  const depth = new Map();
  const visit = (id, seen) => {
    if (depth.has(id)) return depth.get(id);
    if (seen.has(id)) return 0;
    seen.add(id);
    const deps = (byId.get(id).after || []).filter((dep) => byId.has(dep));
    const value = deps.length ? 1 + Math.max(...deps.map((dep) => visit(dep, seen))) : 0;
    depth.set(id, value);
    return value;
  };
  for (const id of byId.keys()) visit(id, new Set());
  return depth;
}

// The SVG of `tasks` (summaries from api/tasks, in dependency order); `open(path)` on a click.
export function workflowGraph(tasks, open) {
  const depth = depths(tasks);
  const columns = [];
  const place = new Map();
  for (const task of tasks) {
    const id = idOf(task.path);
    const column = depth.get(id);
    columns[column] = columns[column] || [];
    place.set(id, { x: PAD + column * (NODE_W + GAP_X),
      y: PAD + columns[column].length * (NODE_H + GAP_Y) });
    columns[column].push(task);
  }
  const rows = Math.max(1, ...columns.map((column) => (column ? column.length : 0)));
  const width = PAD * 2 + columns.length * NODE_W + (columns.length - 1) * GAP_X;
  const height = PAD * 2 + rows * NODE_H + (rows - 1) * GAP_Y;
  const svg = node("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "workflow-graph",
    width, height });
  svg.append(node("title", {}, `workflow of ${tasks.length} task(s)`));
  const defs = node("defs");
  const marker = node("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
  marker.append(node("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }));
  defs.append(marker);
  svg.append(defs);
  for (const task of tasks) {
    const to = place.get(idOf(task.path));
    for (const dep of task.after || []) {
      const from = place.get(dep);
      if (!from) continue;
      const [x1, y1, x2, y2] = [from.x + NODE_W, from.y + NODE_H / 2, to.x, to.y + NODE_H / 2];
      const bend = (x2 - x1) / 2;
      svg.append(node("path", { d: `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`,
        class: "edge", "marker-end": "url(#arrow)", "data-from": dep, "data-to": idOf(task.path) }));
    }
  }
  for (const task of tasks) {
    const at = place.get(idOf(task.path));
    const group = node("g", { class: `node ${task.state}`, "data-path": task.path,
      "data-state": task.state, transform: `translate(${at.x} ${at.y})`, tabindex: 0 });
    group.append(node("title", {}, `${task.path}\n${task.type}.${task.action}: ${task.state}`),
      node("rect", { width: NODE_W, height: NODE_H, rx: 6 }),
      node("text", { x: 8, y: 18, class: "name" }, clip(idOf(task.path), 24)),
      node("text", { x: 8, y: 35, class: "label" }, task.state));
    group.addEventListener("click", () => open(task.path));
    group.addEventListener("keydown", (event) => { if (event.key === "Enter") open(task.path); });
    svg.append(group);
  }
  return svg;
}
