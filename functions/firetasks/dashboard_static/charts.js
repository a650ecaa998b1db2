// The overview's charts, plain SVG built with DOM calls (data is never parsed as markup): tasks
// completed and failed per hour as stacked bars, and the time from created to finished per hour
// as p50 and p95 lines. Each hour carries its figures in data- attributes and a <title> tooltip.
const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 720;
const HEIGHT = 170;
const LEFT = 52; // room for the y axis' labels
const BOTTOM = 22; // ... and the x axis'
const TOP = 8;

// An SVG element with its attributes and text (the workflow graph builds with it too).
export function node(tag, attributes = {}, text = null) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  if (text !== null) element.textContent = text;
  return element;
}

function hourOf(iso) { return `${String(new Date(iso).getHours()).padStart(2, "0")}:00`; }

// A round top for the y axis: 1, 2 or 5 times a power of ten.
function roundUp(value) {
  const power = 10 ** Math.floor(Math.log10(Math.max(value, 1e-9)));
  return [1, 2, 5, 10].map((step) => step * power).find((top) => top >= value);
}

export function duration(ms) {
  if (ms === null || ms === undefined) return "-";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3600000) return `${(ms / 60000).toFixed(1)} min`;
  return `${(ms / 3600000).toFixed(1)} h`;
}

// An empty chart: y gridlines labelled with `label`, and every third hour on the x axis.
function frame(name, hours, top, label) {
  const svg = node("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", class: "chart" });
  svg.append(node("title", {}, name));
  const plot = HEIGHT - BOTTOM - TOP;
  for (const share of [0, 0.5, 1]) {
    const y = TOP + plot * (1 - share);
    svg.append(node("line", { x1: LEFT, x2: WIDTH, y1: y, y2: y, class: "grid" }),
      node("text", { x: LEFT - 6, y: y + 4, class: "axis", "text-anchor": "end" }, label(top * share)));
  }
  const step = (WIDTH - LEFT) / hours.length;
  hours.forEach((hour, index) => {
    if ((hours.length - 1 - index) % 3) return;
    svg.append(node("text", { x: LEFT + step * (index + 0.5), y: HEIGHT - 6, class: "axis",
      "text-anchor": "middle" }, hourOf(hour.start)));
  });
  return { svg, step, y: (value) => TOP + plot * (1 - value / top) };
}

function sampledNote(hour) { return hour.sampled ? " (from a sample)" : ""; }

export function finishedChart(hours) {
  const top = roundUp(Math.max(1, ...hours.map((hour) => hour.completed + hour.failed)));
  const { svg, step, y } = frame("Tasks finished per hour", hours, top, (value) => String(value));
  hours.forEach((hour, index) => {
    const group = node("g", { class: "hour", "data-start": hour.start,
      "data-completed": hour.completed, "data-failed": hour.failed });
    group.append(node("title", {}, `${hourOf(hour.start)}: ${hour.completed} completed, `
      + `${hour.failed} failed${sampledNote(hour)}`));
    const x = LEFT + step * index + step * 0.15;
    const width = step * 0.7;
    const base = y(0);
    const completedTop = y(hour.completed);
    group.append(node("rect", { x, width, y: completedTop, height: base - completedTop,
      class: "bar completed" }));
    const failedTop = y(hour.completed + hour.failed);
    group.append(node("rect", { x, width, y: failedTop, height: completedTop - failedTop,
      class: "bar failed" }));
    svg.append(group);
  });
  return svg;
}

export function latencyChart(hours) {
  const top = roundUp(Math.max(1, ...hours.map((hour) => hour.p95Ms ?? 0)));
  const { svg, step, y } = frame("Time from created to finished per hour", hours, top, duration);
  for (const key of ["p95Ms", "p50Ms"]) {
    const runs = [[]]; // lines through consecutive hours with figures: an hour without breaks one
    hours.forEach((hour, index) => {
      if (hour[key] === null || hour[key] === undefined) runs.push([]);
      else runs[runs.length - 1].push(`${LEFT + step * (index + 0.5)},${y(hour[key])}`);
    });
    for (const run of runs.filter((points) => points.length > 1)) {
      svg.append(node("polyline", { points: run.join(" "), class: `line ${key}` }));
    }
  }
  hours.forEach((hour, index) => {
    if (hour.p50Ms === null || hour.p50Ms === undefined) return;
    const group = node("g", { class: "hour", "data-start": hour.start,
      "data-p50": hour.p50Ms, "data-p95": hour.p95Ms });
    group.append(node("title", {}, `${hourOf(hour.start)}: p50 ${duration(hour.p50Ms)}, `
      + `p95 ${duration(hour.p95Ms)}${sampledNote(hour)}`));
    for (const key of ["p50Ms", "p95Ms"]) {
      group.append(node("circle", { cx: LEFT + step * (index + 0.5), cy: y(hour[key]), r: 3,
        class: `point ${key}` }));
    }
    svg.append(group);
  });
  return svg;
}
