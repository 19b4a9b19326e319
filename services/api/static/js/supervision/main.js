// The supervision pages (supervision.html): sign in, the inspection form, the overview.

import { closeSession, currentSession, openSession, request, whoami } from "../api.js";
import { initLang, lang, onLangChange, setLang, t } from "../i18n.js";
import { InspectionForm } from "./form.js";
import { Overview } from "./overview.js";

const $ = (selector) => document.querySelector(selector);
let form = null;
let overview = null;

function showTab(name) {
  const onForm = name === "form";
  $("#tab-form").setAttribute("aria-selected", String(onForm));
  $("#tab-overview").setAttribute("aria-selected", String(!onForm));
  $("#form-panel").hidden = !onForm;
  $("#overview-panel").hidden = onForm;
  if (!onForm) overview.load().catch((error) => toast(error.message));
}

function toast(text) {
  const box = $("#toast");
  box.textContent = text;
  box.hidden = false;
  setTimeout(() => (box.hidden = true), 5000);
}

async function loadData() {
  const [teams, sites, enterprises, checklists] = await Promise.all([
    request("/supervision/teams"),
    request("/sites"),
    request("/supervision/enterprises", { params: { status: "resumed" } }),
    request("/supervision/checklists"),
  ]);
  return { teams: teams.filter((team) => team.active), sites, enterprises, checklists };
}

async function start() {
  $("#signin").hidden = true;
  $("#app").hidden = false;
  $("#sign-out").hidden = false;
  const data = await loadData();
  form = new InspectionForm(data);
  overview = new Overview(data);
  document.body.dataset.ready = "true";
}

async function signIn(key) {
  try {
    const me = await whoami(key);
    if (me.role && !["inspector", "officer", "admin"].includes(me.role))
      throw new Error(t("supervision.err.role", { role: me.role }));
    // the key is traded for the session cookie the board uses too; it is not kept
    await openSession(key);
    await start();
  } catch (error) {
    $("#signin").hidden = false;
    $("#app").hidden = true;
    $("#signin-error").textContent = error.message;
  }
}

function labels() {
  document.title = t("supervision.title");
  $("#lang-toggle").textContent = t("lang.other");
}

async function main() {
  await initLang();
  labels();
  onLangChange(() => {
    labels();
    if (form) {
      form.fillSelects();
      form.render();
    }
    if (overview && !$("#overview-panel").hidden) overview.load().catch((error) => toast(error.message));
  });
  $("#lang-toggle").addEventListener("click", () => setLang(lang() === "zh-CN" ? "en" : "zh-CN"));
  $("#sign-out").addEventListener("click", async () => {
    await closeSession();
    location.reload();
  });
  $("#tab-form").addEventListener("click", () => showTab("form"));
  $("#tab-overview").addEventListener("click", () => showTab("overview"));
  $("#signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("#api-key").value.trim());
  });
  const session = await currentSession();
  if (session.signed_in && ["inspector", "officer", "admin"].includes(session.role)) await start();
  else $("#signin").hidden = false;
}

main();
