// Coverage gauges: one ring per figure, red below 100 %, a dash when there is no data.

import { t } from "./i18n.js";
import { belowFull, el, number, percent } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";
const RADIUS = 42;
const CIRCUMFERENCE = 2 * Math.PI * RADIUS;

export const FIGURES = [
  {
    key: "temperature_coverage",
    label: "cov.temperature",
    detail: (f) => t("cov.temperature_detail", { n: number(f.screened_persons), of: number(f.passages.persons) }),
  },
  {
    key: "registration_coverage",
    label: "cov.registration",
    detail: (f) => t("cov.registration_detail", { n: number(f.registered), of: number(f.passages.total) }),
  },
  {
    key: "staffing_coverage",
    label: "cov.staffing",
    detail: (f) => t("cov.minutes_detail", { n: number(Math.round(f.staffed_minutes)), of: number(Math.round(f.checkpoint_minutes)) }),
  },
  {
    key: "device_uptime",
    label: "cov.uptime",
    detail: (f) => t("cov.minutes_detail", { n: number(Math.round(f.online_minutes)), of: number(Math.round(f.checkpoint_minutes)) }),
  },
];

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

function ring(ratio) {
  const graphic = svg("svg", { viewBox: "0 0 100 100", class: "ring", "aria-hidden": "true" });
  graphic.append(svg("circle", { cx: 50, cy: 50, r: RADIUS, class: "ring-track" }));
  if (ratio !== null && ratio !== undefined) {
    const filled = Math.max(0, Math.min(1, ratio)) * CIRCUMFERENCE;
    graphic.append(
      svg("circle", {
        cx: 50,
        cy: 50,
        r: RADIUS,
        class: "ring-value",
        "stroke-dasharray": `${filled} ${CIRCUMFERENCE}`,
        transform: "rotate(-90 50 50)",
      }),
    );
  }
  return graphic;
}

export function gauge(figures, spec) {
  const ratio = figures ? figures[spec.key] : null;
  const state = ratio === null || ratio === undefined ? "none" : belowFull(ratio) ? "bad" : "good";
  return el(
    "div",
    { class: `gauge ${state}`, dataset: { figure: spec.key, state } },
    el("div", { class: "gauge-ring" }, ring(ratio), el("span", { class: "gauge-value" }, percent(ratio))),
    el("div", { class: "gauge-label" }, t(spec.label)),
    el("div", { class: "gauge-detail" }, figures ? spec.detail(figures) : t("cov.no_data")),
  );
}

function tally(label, value, warn) {
  return el("span", { class: `tally${warn && value > 0 ? " warn" : ""}` }, `${t(label)} `, el("b", {}, number(value)));
}

export function renderGauges(container, figures) {
  container.replaceChildren(
    el("div", { class: "gauges" }, FIGURES.map((spec) => gauge(figures, spec))),
    figures
      ? el(
          "div",
          { class: "tallies" },
          tally("cov.passages", figures.passages.total),
          tally("cov.fevers", figures.fevers, true),
          tally("cov.unregistered", figures.unregistered, true),
          tally("cov.quarantine_breaches", figures.quarantine_breaches, true),
          tally("cov.alerts_opened", figures.alerts_opened, true),
        )
      : null,
  );
}
