// Roster state and screening quality per checkpoint (issue 17): who is on duty against
// the staffing requirement in force, who is rostered and absent, and whether the lane's
// readings look like real screening. Starts itself once the dashboard is shown; reads
// GET /api/v1/roster/state.

import { request } from "./api.js";
import { onLangChange, t } from "./i18n.js";
import { el } from "./format.js";

const REFRESH_MS = 15000;
const TICK_MS = 2000;
const panel = document.querySelector("#roster-panel");
const body = document.querySelector("#roster-rows");
const status = document.querySelector("#roster-status");
let rows = [];
let lastLoad = 0;

function roles(list) {
  return list.map((role) => t(`duty_role.${role}`)).join("、");
}

function row(state) {
  const need = `${state.on_duty.length} / ${state.need}`;
  const missing = state.missing_roles.length ? `${t("roster.missing")}: ${roles(state.missing_roles)}` : "";
  const checks = state.screening_checks.join(", ");
  return el(
    "tr",
    { dataset: { checkpoint: state.checkpoint_id, met: String(state.met), screening: state.screening } },
    el("td", {}, state.checkpoint_id),
    el("td", { class: "roster-met", title: t(state.met ? "roster.met" : "roster.unmet") }, need),
    el("td", {}, roles(state.roles_on_duty)),
    el("td", {}, [missing, state.absent.length ? `${t("roster.absent")}: ${state.absent.join(", ")}` : ""].filter(Boolean).join("; ")),
    el("td", { class: "screening-quality", title: checks }, t(`screening.${state.screening}`)),
  );
}

function render() {
  if (!body) return;
  body.replaceChildren(...rows.map(row));
}

async function load() {
  lastLoad = Date.now();
  try {
    rows = await request("/roster/state");
    if (status) status.textContent = "";
    if (panel) panel.hidden = false;
    render();
  } catch (error) {
    if (status) status.textContent = error.message;
  }
}

function tick() {
  const app = document.querySelector("#app");
  if (!app || app.hidden) return;
  if (Date.now() - lastLoad >= REFRESH_MS) load();
}

if (panel) {
  onLangChange(render);
  setInterval(tick, TICK_MS);
  tick();
}
