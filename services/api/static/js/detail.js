// One checkpoint: its live state, who is on duty, and its latest passages.

import { api } from "./api.js";
import { t, tOr } from "./i18n.js";
import { dateTime, el, minutesAgo, percent, belowFull } from "./format.js";
import { displayName, tileState } from "./board.js";

function fact(label, value, warn = false) {
  return el("div", { class: `fact${warn ? " warn" : ""}` }, el("dt", {}, t(label)), el("dd", {}, value));
}

function passageRow(p, feverC) {
  const who = p.kind === "vehicle" ? p.plate || "—" : p.id_masked || p.qr_pass || "—";
  const registered = p.registration === "registered";
  const measured = p.screening_temp_c ?? p.temp_c; // a handheld's reading, or the terminal's own
  const known = measured !== null && measured !== undefined;
  const fever = known && measured >= feverC;
  const temp = known ? `${measured.toFixed(1)} °C` : "—";
  return el(
    "tr",
    { class: fever ? "fever-row" : registered ? "" : "warn-row", dataset: { fever: fever ? "true" : "false" } },
    el("td", { dataset: { label: t("detail.time") } }, dateTime(p.ts, true)),
    el("td", { dataset: { label: t("detail.direction") } }, t(`direction.${p.direction}`)),
    el("td", { dataset: { label: t("detail.kind") } }, t(`kind.${p.kind}`)),
    el("td", { class: "mono", dataset: { label: t("detail.who") } }, who),
    el("td", { class: registered ? "" : "low", dataset: { label: t("detail.registration") } }, tOr(`registration.${p.registration}`, p.registration), p.quarantined ? el("span", { class: "badge sev-critical" }, t("detail.quarantined")) : null),
    el("td", { class: fever ? "fever" : "", dataset: { label: t("detail.temp") } }, temp, fever ? el("span", { class: "badge sev-critical" }, t("detail.fever")) : null),
    el("td", { class: p.kind === "person" && !p.screened ? "low" : "", dataset: { label: t("detail.screening") } }, p.kind === "vehicle" ? "—" : p.screened ? t("detail.screened") : t("detail.not_screened")),
  );
}

// `feverC`: the site's fever threshold, else the community's (the board says which)
export async function showDetail(dialog, checkpointId, siteName, feverC) {
  const body = dialog.querySelector(".detail-body");
  const title = dialog.querySelector(".detail-title");
  title.textContent = checkpointId;
  body.replaceChildren(el("p", { class: "muted" }, t("common.loading")));
  if (!dialog.open) dialog.showModal();
  const detail = await api.checkpoint(checkpointId, 30);
  const cp = detail.checkpoint;
  const state = tileState(cp);
  title.textContent = `${cp.id} · ${displayName(cp)}`;
  dialog.dataset.checkpoint = cp.id;
  const alerts = ["critical", "major", "warning"]
    .filter((s) => cp.open_alerts[s] > 0)
    .map((s) => `${t(`severity.${s}`)} ${cp.open_alerts[s]}`)
    .join(" · ");
  body.replaceChildren(
    el("p", { class: `detail-state state-${state}` }, el("i", {}), t(`state.${state}`), siteName ? ` · ${siteName}` : ""),
    el(
      "dl",
      { class: "facts" },
      fact("detail.device", `${t(cp.silent ? "device.silent" : `device.${cp.device_state}`)}${cp.state_since ? ` · ${t("detail.since", { time: dateTime(cp.state_since, true) })}` : ""}`, cp.device_state !== "online"),
      fact("detail.last_seen", dateTime(cp.last_seen_at, true)),
      fact("detail.staff", `${cp.staff_on_duty}/${cp.min_staff}${cp.staff_ids.length ? ` (${cp.staff_ids.join(", ")})` : ""}`, cp.understaffed),
      fact("detail.last_passage", minutesAgo(cp.minutes_since_passage)),
      fact("detail.last_reading", minutesAgo(cp.minutes_since_reading)),
      fact("detail.today_passages", String(cp.today.passages)),
      fact("cov.temperature", percent(cp.today.temperature_coverage), belowFull(cp.today.temperature_coverage)),
      fact("cov.registration", percent(cp.today.registration_coverage), belowFull(cp.today.registration_coverage)),
      fact("cov.fevers", String(cp.today.fevers), cp.today.fevers > 0),
      fact("detail.open_alerts", alerts || t("detail.none"), Boolean(alerts)),
      cp.clock_skew_s !== null ? fact("detail.clock_skew", `${cp.clock_skew_s.toFixed(0)} s`, Math.abs(cp.clock_skew_s) > 60) : null,
      cp.backlog ? fact("detail.backlog", String(cp.backlog), true) : null,
    ),
    el("h3", {}, t("detail.recent_passages")),
    detail.recent_passages.length
      ? el(
          "div",
          { class: "table-wrap" },
          el(
            "table",
            { class: "passages" },
            el("thead", {}, el("tr", {}, ["detail.time", "detail.direction", "detail.kind", "detail.who", "detail.registration", "detail.temp", "detail.screening"].map((k) => el("th", {}, t(k))))),
            el("tbody", {}, detail.recent_passages.map((p) => passageRow(p, feverC))),
          ),
        )
      : el("p", { class: "muted" }, t("detail.no_passages")),
  );
}
