// Health: /ready's components, and latency per inference stage from the Prometheus histograms
// facerec_inference_stage_seconds in /metrics, drawn as inline SVG bars (no chart library).

import { api } from "./api.js";
import { t } from "./i18n.js";
import { errorMessage, h, message, table } from "./ui.js";

const METRIC = "facerec_inference_stage_seconds";
const SVG = "http://www.w3.org/2000/svg";
let previous = null; // the last scrape, so that a refresh shows what ran since then

function parseLabels(text) {
  const labels = {};
  for (const match of text.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[match[1]] = match[2];
  return labels;
}

// {"stage|model": {stage, model, count, sum, buckets: [[le, cumulative count], ...]}}
export function parseStageHistograms(text) {
  const series = {};
  const line = new RegExp(`^${METRIC}_(bucket|sum|count)\\{([^}]*)\\}\\s+(\\S+)`);
  for (const row of text.split("\n")) {
    const match = line.exec(row);
    if (!match) continue;
    const labels = parseLabels(match[2]);
    const id = `${labels.stage}|${labels.model}`;
    const entry = (series[id] ??= { stage: labels.stage, model: labels.model, count: 0, sum: 0, buckets: [] });
    const value = Number(match[3]);
    if (match[1] === "bucket") entry.buckets.push([labels.le === "+Inf" ? Infinity : Number(labels.le), value]);
    else entry[match[1]] = value;
  }
  for (const entry of Object.values(series)) entry.buckets.sort((a, b) => a[0] - b[0]);
  return series;
}

function difference(now, before) {
  if (!before || now.count < before.count) return now; // restarted: counters began again
  return {
    ...now,
    count: now.count - before.count,
    sum: now.sum - before.sum,
    buckets: now.buckets.map(([le, value], index) => [le, value - (before.buckets[index]?.[1] ?? 0)]),
  };
}

// The p-quantile by linear interpolation inside the bucket that holds it (as Prometheus does).
function quantile(entry, p) {
  const rank = p * entry.count;
  let lower = 0;
  let below = 0;
  for (const [le, cumulative] of entry.buckets) {
    if (cumulative >= rank) {
      if (le === Infinity) return lower;
      const inBucket = cumulative - below;
      return inBucket ? lower + ((le - lower) * (rank - below)) / inBucket : le;
    }
    lower = le;
    below = cumulative;
  }
  return lower;
}

function svg(tag, attrs, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

// One small horizontal bar chart: a row per stage, bars for mean and p95 in ms.
function chart(rows) {
  const rowHeight = 34;
  const labelWidth = 190;
  const barWidth = 300;
  const max = Math.max(...rows.map((r) => r.p95), ...rows.map((r) => r.mean), 0.001);
  const root = svg("svg", {
    class: "chart",
    width: labelWidth + barWidth + 90,
    height: rows.length * rowHeight + 8,
    role: "img",
    "aria-label": t("health.latency"),
  });
  rows.forEach((row, index) => {
    const y = index * rowHeight + 4;
    root.append(svg("text", { x: 0, y: y + 20, class: "chart-label" }, row.model ? `${row.stage} · ${row.model}` : row.stage));
    const bars = [
      [row.mean, "bar-mean", y + 2, `${t("health.mean")} ${row.mean.toFixed(1)} ms`],
      [row.p95, "bar-p95", y + 16, `${t("health.p95")} ${row.p95.toFixed(1)} ms`],
    ];
    for (const [value, cls, top, label] of bars) {
      const width = Math.max(1, (value / max) * barWidth);
      const bar = svg("rect", { x: labelWidth, y: top, width, height: 12, class: cls });
      bar.append(svg("title", {}, label));
      root.append(bar, svg("text", { x: labelWidth + width + 4, y: top + 10, class: "chart-value" }, label));
    }
  });
  return root;
}

export async function healthPage(view, app) {
  const readiness = h("div", { id: "readiness" });
  const latency = h("div", { id: "latency" });
  const refresh = h("button", { type: "button" }, t("common.refresh"));

  async function load() {
    try {
      const ready = await api.ready();
      readiness.replaceChildren(
        message(ready.ready ? "ok" : "error", ready.ready ? t("health.ready") : `${t("health.not_ready")}: ${ready.reason || ""}`),
        table(
          [t("health.component"), t("health.state")],
          Object.entries(ready.components).map(([name, state]) => h("tr", {}, h("td", {}, name), h("td", {}, state))),
        ),
      );
    } catch (error) {
      readiness.replaceChildren(errorMessage(error));
    }
    try {
      const now = parseStageHistograms(await api.metrics());
      let window = t("health.window_total");
      let entries = Object.values(now);
      const recent = Object.entries(now).map(([id, entry]) => difference(entry, previous?.[id]));
      if (previous && recent.some((entry) => entry.count > 0)) {
        entries = recent;
        window = t("health.window_recent");
      }
      previous = now;
      const rows = entries
        .filter((entry) => entry.count > 0)
        .map((entry) => ({
          stage: entry.stage,
          model: entry.model,
          mean: (entry.sum / entry.count) * 1000,
          p95: quantile(entry, 0.95) * 1000,
        }))
        .sort((a, b) => a.stage.localeCompare(b.stage));
      latency.replaceChildren(
        rows.length ? h("p", { class: "hint" }, window) : message("empty", t("health.no_samples")),
        rows.length ? chart(rows) : "",
      );
    } catch (error) {
      latency.replaceChildren(errorMessage(error));
    }
  }

  refresh.addEventListener("click", load);
  const timer = setInterval(load, 10000);
  app.onLeave(() => clearInterval(timer));
  view.replaceChildren(
    h("h2", {}, t("health.title")),
    refresh,
    readiness,
    h("h3", {}, t("health.latency")),
    h("p", { class: "hint" }, t("health.latency_help")),
    latency,
  );
  await load();
}
