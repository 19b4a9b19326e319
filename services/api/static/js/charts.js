// Charts over time (uPlot, vendored): passages per hour by direction; coverage per hour.

import { t } from "./i18n.js";
import { axisTime, communityTimezone, legendTime } from "./format.js";

const COLORS = {
  in: "#4cc9f0",
  out: "#f9c74f",
  temperature_coverage: "#ff6b6b",
  registration_coverage: "#4cc9f0",
  staffing_coverage: "#90be6d",
  device_uptime: "#c77dff",
};
const AXIS = { stroke: "#c9d1e0", grid: { stroke: "rgba(255,255,255,0.08)" }, ticks: { stroke: "rgba(255,255,255,0.15)" } };

function sizeOf(container) {
  const width = Math.max(280, container.clientWidth);
  return { width, height: Math.max(200, Math.min(360, Math.round(width * 0.4))) };
}

function makeChart(container, options, data) {
  container.replaceChildren();
  const chart = new window.uPlot({ ...sizeOf(container), ...options }, data, container);
  const observer = new ResizeObserver(() => chart.setSize(sizeOf(container)));
  observer.observe(container);
  return { destroy: () => (observer.disconnect(), chart.destroy()), chart };
}

function timeOptions() {
  const zone = communityTimezone();
  return { tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1e3), zone) };
}

// Times in the community's zone and the page's language, not uPlot's English defaults.
function xAxis(daily) {
  return { ...AXIS, values: (_, splits) => splits.map((ts) => axisTime(ts * 1000, daily)) };
}

function xSeries(daily) {
  return { label: t("charts.time"), value: (_, ts) => (ts === null ? "—" : legendTime(ts * 1000, daily)) };
}

export function passagesChart(container, report) {
  const x = report.buckets.map((b) => Date.parse(b.start) / 1000);
  const bars = (align) => window.uPlot.paths.bars({ size: [0.42, 60], align });
  return makeChart(
    container,
    {
      ...timeOptions(),
      title: t("charts.passages"),
      scales: { x: { time: true } },
      axes: [xAxis(report.bucket === "day"), { ...AXIS, size: 60 }],
      series: [
        xSeries(report.bucket === "day"),
        { label: t("direction.in"), fill: COLORS.in, stroke: COLORS.in, paths: bars(-1), points: { show: false } },
        { label: t("direction.out"), fill: COLORS.out, stroke: COLORS.out, paths: bars(1), points: { show: false } },
      ],
    },
    [x, report.buckets.map((b) => b.passages.in), report.buckets.map((b) => b.passages.out)],
  );
}

export const COVERAGE_SERIES = ["temperature_coverage", "registration_coverage", "staffing_coverage", "device_uptime"];
const LABELS = {
  temperature_coverage: "cov.temperature",
  registration_coverage: "cov.registration",
  staffing_coverage: "cov.staffing",
  device_uptime: "cov.uptime",
};

export function coverageChart(container, report) {
  const x = report.buckets.map((b) => Date.parse(b.start) / 1000);
  const asPercent = (v) => (v === null ? null : Math.round(v * 10000) / 100);
  return makeChart(
    container,
    {
      ...timeOptions(),
      title: t("charts.coverage"),
      scales: { x: { time: true }, y: { range: [0, 100] } },
      axes: [
        xAxis(report.bucket === "day"),
        { ...AXIS, size: 50, values: (_, ticks) => ticks.map((v) => `${v}%`) },
      ],
      series: [
        xSeries(report.bucket === "day"),
        ...COVERAGE_SERIES.map((key) => ({
          label: t(LABELS[key]),
          stroke: COLORS[key],
          width: 2,
          spanGaps: false,
          value: (_, v) => (v === null ? "—" : `${v}%`),
        })),
      ],
    },
    [x, ...COVERAGE_SERIES.map((key) => report.buckets.map((b) => asPercent(b[key])))],
  );
}
