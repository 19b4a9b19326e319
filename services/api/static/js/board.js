// The board: every checkpoint as a tile, grouped by site, coloured by its worst state.

import { lang, t } from "./i18n.js";
import { belowFull, el, minutesAgo, percent } from "./format.js";

export const STATES = ["critical", "offline", "understaffed", "warning", "gap", "unknown", "ok", "inactive"];

export function tileState(cp) {
  if (!cp.active) return "inactive";
  if (cp.open_alerts.critical > 0) return "critical";
  if (cp.device_state === "offline") return "offline";
  if (cp.understaffed) return "understaffed";
  if (cp.open_alerts.major > 0 || cp.open_alerts.warning > 0) return "warning";
  const today = cp.today;
  if (belowFull(today.temperature_coverage) || belowFull(today.registration_coverage)) return "gap";
  if (cp.device_state !== "online") return "unknown";
  return "ok";
}

export function displayName(item) {
  return lang() === "zh-CN" && item.name_zh ? item.name_zh : item.name;
}

// "住宅小区1号北门" under the heading "住宅小区1号" reads as "北门".
function gateName(cp, site) {
  const name = displayName(cp);
  const prefix = site ? displayName(site) : "";
  const rest = prefix && name.startsWith(prefix) ? name.slice(prefix.length).trim() : "";
  return rest || name;
}

function lastActivity(cp) {
  const values = [cp.minutes_since_passage, cp.minutes_since_reading].filter((v) => v !== null);
  return values.length ? Math.min(...values) : null;
}

function alertBadges(openAlerts) {
  const badges = ["critical", "major", "warning"]
    .filter((severity) => openAlerts[severity] > 0)
    .map((severity) =>
      el("span", { class: `badge sev-${severity}` }, `${t(`severity.${severity}`)} ${openAlerts[severity]}`),
    );
  return badges.length ? el("div", { class: "tile-alerts" }, badges) : null;
}

function coverageSpan(label, ratio) {
  return el("span", { class: belowFull(ratio) ? "low" : ratio === null ? "none" : "" }, `${t(label)} ${percent(ratio)}`);
}

export function tile(cp, site, onOpen) {
  const state = tileState(cp);
  const device = cp.device_state in { online: 1, offline: 1 } ? cp.device_state : "unknown";
  return el(
    "button",
    {
      type: "button",
      class: `tile state-${state}`,
      dataset: { checkpoint: cp.id, state },
      title: `${cp.id} ${displayName(cp)} · ${t(`state.${state}`)}`,
      onclick: () => onOpen(cp.id),
    },
    el(
      "div",
      { class: "tile-head" },
      el("span", { class: "tile-id" }, cp.id),
      el("span", { class: `device device-${device}` }, t(`device.${device}`)),
    ),
    el("div", { class: "tile-name" }, gateName(cp, site)),
    el(
      "div",
      { class: "tile-line" },
      el("span", { class: cp.understaffed ? "low" : "" }, t("board.staff", { n: cp.staff_on_duty, min: cp.min_staff })),
      el("span", {}, minutesAgo(lastActivity(cp))),
    ),
    el(
      "div",
      { class: "tile-line" },
      coverageSpan("board.temp_short", cp.today.temperature_coverage),
      coverageSpan("board.reg_short", cp.today.registration_coverage),
    ),
    alertBadges(cp.open_alerts),
  );
}

function summary(checkpoints) {
  const active = checkpoints.filter((cp) => cp.active);
  const count = (predicate) => active.filter(predicate).length;
  const item = (label, value, warn) =>
    el("span", { class: `tally${warn && value > 0 ? " warn" : ""}` }, `${t(label)} `, el("b", {}, value));
  return el(
    "div",
    { class: "tallies board-summary" },
    item("board.online", `${count((cp) => cp.online)}/${active.length}`),
    item("board.offline", count((cp) => cp.device_state === "offline"), true),
    item("board.understaffed", count((cp) => cp.understaffed), true),
    item("board.with_critical", count((cp) => cp.open_alerts.critical > 0), true),
  );
}

function legend() {
  return el(
    "div",
    { class: "legend" },
    STATES.map((state) => el("span", { class: `legend-item state-${state}` }, el("i", {}), t(`state.${state}`))),
  );
}

export function renderBoard(container, board, sites, onOpen) {
  const siteById = new Map(sites.map((site) => [site.id, site]));
  const groups = new Map();
  for (const cp of board.checkpoints) {
    if (!groups.has(cp.site_id)) groups.set(cp.site_id, []);
    groups.get(cp.site_id).push(cp);
  }
  const sections = [...groups.entries()].map(([siteId, checkpoints]) => {
    const site = siteById.get(siteId) || { id: siteId, name: siteId, name_zh: null };
    const problems = checkpoints.filter((cp) => !["ok", "inactive"].includes(tileState(cp))).length;
    return el(
      "section",
      { class: "site", dataset: { site: siteId } },
      el(
        "h3",
        { class: "site-name" },
        displayName(site),
        el("small", {}, problems ? t("board.site_problems", { n: problems, of: checkpoints.length }) : t("board.site_ok", { of: checkpoints.length })),
      ),
      el("div", { class: "tiles" }, checkpoints.map((cp) => tile(cp, site, onOpen))),
    );
  });
  container.replaceChildren(summary(board.checkpoints), legend(), el("div", { class: "sites" }, sections));
}
