// The dashboard: sign-in, coverage gauges, the board, the live alert feed, charts.

import { api, ApiError, closeSession, currentSession, openSession, whoami } from "./api.js";
import { loadRetention, renderRetention } from "./retention.js";
import { AlertFeed } from "./alerts.js";
import { displayName, renderBoard } from "./board.js";
import { coverageChart, passagesChart } from "./charts.js";
import { showDetail } from "./detail.js";
import { addDays, dateTime, localDate, localMidnight, setTimezone } from "./format.js";
import { renderGauges } from "./gauges.js";
import { RobotRoutes } from "./robots.js";
import { initLang, lang, onLangChange, setLang, t } from "./i18n.js";

const BOARD_REFRESH_MS = 10_000;
const TODAY_REFRESH_MS = 30_000;
const RANGE_REFRESH_MS = 300_000;
const HOURLY_CHART_MAX_DAYS = 14;
const $ = (selector) => document.querySelector(selector);

const state = {
  me: null,
  sites: [],
  board: null,
  today: null,
  range: null,
  rangeHourly: null,
  charts: [],
  timers: [],
};

// --- messages --------------------------------------------------------------------
let toastTimer;
function toast(message, kind = "error") {
  const box = $("#toast");
  box.textContent = message;
  box.dataset.kind = kind;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (box.hidden = true), 6000);
}

function handleError(error) {
  if (error instanceof ApiError && error.status === 401) {
    signOut(t("signin.rejected"));
    return;
  }
  toast(error instanceof ApiError ? `${t("error.api")} ${error.status}: ${error.message}` : `${t("error.network")}: ${error.message}`);
}

// --- roles -----------------------------------------------------------------------
function permissions(alert) {
  const role = state.me?.role;
  if (!role) return { canAcknowledge: true, canResolve: true }; // the API decides
  const own = role !== "duty" || (state.me.checkpoints || []).includes(alert.checkpoint_id);
  return {
    canAcknowledge: ["admin", "officer", "duty"].includes(role) && own,
    canResolve: ["admin", "officer"].includes(role),
  };
}

function renderRole() {
  const role = state.me?.role || "unknown";
  $("#role-badge").textContent = t(`role.${role}`);
  $("#role-badge").dataset.role = role;
  $("#role-allows").textContent = t(`role.${role}.allows`);
}

// --- data ------------------------------------------------------------------------
const feed = new AlertFeed({
  list: $("#feed"),
  status: $("#feed-status"),
  banner: $("#critical-banner"),
  permissions,
  checkpointName: (id) => {
    const cp = state.board?.checkpoints.find((c) => c.id === id);
    return cp ? `${id} ${displayName(cp)}` : id;
  },
  onChange: () => scheduleBoardRefresh(),
  onError: handleError,
  onDone: (message) => toast(message, "ok"),
});

const robots = new RobotRoutes({ panel: $("#robots-panel"), onError: handleError });

function siteName(siteId) {
  const site = state.sites.find((s) => s.id === siteId);
  return site ? displayName(site) : siteId;
}

function drawBoard() {
  if (!state.board) return;
  renderBoard($("#board"), state.board, state.sites, openDetail);
  $("#board-updated").textContent = t("board.updated", { time: dateTime(state.board.generated_at) });
}

async function refreshBoard() {
  state.board = await api.board();
  drawBoard();
}

let boardRefreshPending;
function scheduleBoardRefresh() {
  clearTimeout(boardRefreshPending);
  boardRefreshPending = setTimeout(() => refreshBoard().catch(handleError), 800);
}

async function refreshToday() {
  const from = state.board?.today_from;
  state.today = await api.coverage({ from, bucket: "hour" });
  setTimezone(state.today.timezone);
  renderGauges($("#gauges-today"), state.today.total);
}

function rangeDates() {
  return { from: $("#range-from").value, to: $("#range-to").value };
}

function rangeIncludesToday() {
  const { from, to } = rangeDates();
  const today = localDate();
  return Boolean(from && to) && from <= today && today <= to;
}

async function refreshRange() {
  const { from, to } = rangeDates();
  if (!from || !to || to < from) {
    toast(t("range.invalid"));
    return;
  }
  const days = Math.round((Date.parse(to) - Date.parse(from)) / 86_400_000) + 1;
  const window = { from: localMidnight(from), to: localMidnight(addDays(to, 1)) };
  const hourly = days <= HOURLY_CHART_MAX_DAYS;
  const [report, series] = await Promise.all([
    api.coverage({ ...window, bucket: "day" }),
    hourly ? api.coverage({ ...window, bucket: "hour" }) : null,
  ]);
  state.range = report;
  state.rangeHourly = series || report;
  renderGauges($("#gauges-range"), report.total);
  drawCharts();
}

// The default range (the last 7 days) starts at the first day the system was in service
// or saw a passage: a system a day old shows one day, not six empty ones and a 0 % line.
async function fitDefaultRange() {
  const days = state.range?.buckets || [];
  const first = days.find((b) => b.checkpoint_minutes > 0 || b.passages.total > 0);
  if (!first || first.label <= $("#range-from").value) return;
  $("#range-from").value = first.label;
  await refreshRange();
}

function drawCharts() {
  for (const chart of state.charts) chart.destroy();
  state.charts = [];
  const report = state.rangeHourly;
  if (!report) return;
  $("#charts-note").textContent =
    report.bucket === "hour" ? t("charts.per_hour") : t("charts.per_day", { days: HOURLY_CHART_MAX_DAYS });
  // hours still to come have no data yet: leave them off rather than draw them as zero
  const now = Date.now();
  const past = { ...report, buckets: report.buckets.filter((b) => Date.parse(b.start) <= now) };
  state.charts = [passagesChart($("#chart-passages"), past), coverageChart($("#chart-coverage"), past)];
  // what the charts hold, for people who read the page's markup (and for the tests)
  $("#chart-passages").dataset.passages = String(past.buckets.reduce((n, b) => n + b.passages.total, 0));
}

async function openDetail(checkpointId) {
  const cp = state.board?.checkpoints.find((c) => c.id === checkpointId);
  try {
    const site = cp ? state.sites.find((s) => s.id === cp.site_id) : null;
    const feverC = site?.fever_threshold_c ?? state.board?.fever_threshold_c;
    await showDetail($("#detail"), checkpointId, cp ? siteName(cp.site_id) : "", feverC);
  } catch (error) {
    $("#detail").close();
    handleError(error);
  }
}

// A robot message links to `#alert/<id>`: show that alert's checkpoint and summary.
async function openLinkedAlert() {
  const match = /^#alert\/(\d+)$/.exec(location.hash);
  if (!match) return;
  const alert = await api.alert(Number(match[1]));
  toast(alert.summary);
  await openDetail(alert.checkpoint_id);
}

// --- sign-in and the running dashboard ---------------------------------------------
function every(ms, task) {
  state.timers.push(setInterval(() => task().catch(handleError), ms));
}

async function startDashboard() {
  $("#signin").hidden = true;
  $("#app").hidden = false;
  $("#sign-out").hidden = false;
  renderRole();
  [state.sites] = await Promise.all([api.sites(), refreshBoard()]);
  drawBoard();
  feed.start();
  await refreshToday(); // also learns the community's time zone, which "today" depends on
  const defaulted = !$("#range-from").value;
  if (defaulted) {
    const today = localDate();
    $("#range-from").value = addDays(today, -6);
    $("#range-to").value = today;
  }
  await refreshRange();
  if (defaulted) await fitDefaultRange();
  every(BOARD_REFRESH_MS, refreshBoard);
  // a range that includes today refreshes with today's figures, so it never shows fewer
  // passages than today alone; a range wholly in the past changes rarely
  every(TODAY_REFRESH_MS, async () => {
    await refreshToday();
    if (rangeIncludesToday()) await refreshRange();
  });
  every(RANGE_REFRESH_MS, async () => {
    if (!rangeIncludesToday()) await refreshRange();
  });
  if (!state.me?.role || state.me.role === "admin") robots.load().catch(handleError);
  loadRetention().catch(handleError);
  openLinkedAlert().catch(handleError);
  document.body.dataset.ready = "true";
}

function signOut(message) {
  for (const timer of state.timers) clearInterval(timer);
  state.timers = [];
  feed.stop();
  closeSession().catch(handleError);
  state.me = null;
  delete document.body.dataset.ready;
  $("#app").hidden = true;
  $("#sign-out").hidden = true;
  $("#robots-panel").hidden = true;
  $("#signin").hidden = false;
  $("#signin-error").textContent = message || "";
  $("#api-key").value = "";
  $("#role-badge").textContent = "";
}

async function signIn(key) {
  try {
    state.me = await whoami(key);
  } catch (error) {
    $("#signin-error").textContent =
      error instanceof ApiError && error.status === 401 ? t("signin.rejected") : error.message;
    return false;
  }
  await openSession(key);
  await startDashboard();
  return true;
}

function wire() {
  $("#signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    feed.unlockAudio();
    const key = $("#api-key").value.trim();
    if (key) signIn(key).catch(handleError);
  });
  $("#sign-out").addEventListener("click", () => signOut());
  robots.wire();
  window.addEventListener("hashchange", () => {
    if (state.me) openLinkedAlert().catch(handleError);
  });
  $("#lang-toggle").addEventListener("click", () => setLang(lang() === "zh-CN" ? "en" : "zh-CN"));
  $("#sound-toggle").addEventListener("click", () => {
    feed.unlockAudio();
    feed.soundOn = !feed.soundOn;
    renderSound();
  });
  $("#range-form").addEventListener("submit", (event) => {
    event.preventDefault();
    refreshRange().catch(handleError);
  });
  $("#banner-close").addEventListener("click", () => ($("#critical-banner").hidden = true));
  $("#detail-close").addEventListener("click", () => $("#detail").close());
  document.addEventListener("click", () => feed.unlockAudio(), { once: true });
  onLangChange(() => {
    $("#lang-toggle").textContent = t("lang.other");
    renderSound();
    if (state.me) renderRole();
    drawBoard();
    feed.setMode(feed.mode);
    feed.relabel();
    if (state.today) renderGauges($("#gauges-today"), state.today.total);
    if (state.range) renderGauges($("#gauges-range"), state.range.total);
    drawCharts();
    if (!$("#robots-panel").hidden) robots.render();
    renderRetention();
    const dialog = $("#detail");
    if (dialog.open && dialog.dataset.checkpoint) openDetail(dialog.dataset.checkpoint);
  });
}

function renderSound() {
  $("#sound-toggle").textContent = feed.soundOn ? t("sound.on") : t("sound.off");
  $("#sound-toggle").setAttribute("aria-pressed", String(feed.soundOn));
}

async function main() {
  wire();
  await initLang();
  const session = await currentSession();
  if (session.signed_in) {
    state.me = { role: session.role, name: session.name || "", checkpoints: session.checkpoints };
    await startDashboard();
  } else {
    signOut();
  }
}

main().catch(handleError);
