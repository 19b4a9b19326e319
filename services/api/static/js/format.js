// Numbers, percentages and times, in the community's time zone and the chosen language.

import { lang, t } from "./i18n.js";

let timezone = "Asia/Shanghai";

export function setTimezone(zone) {
  if (zone) timezone = zone;
}

export function communityTimezone() {
  return timezone;
}

// Floored, so 99.96 % never shows as a red "100.0 %".
export function percent(ratio) {
  if (ratio === null || ratio === undefined) return "—";
  const floored = Math.floor(ratio * 1000) / 10;
  return `${floored.toFixed(ratio >= 1 ? 0 : 1)}%`;
}

export function belowFull(ratio) {
  return ratio !== null && ratio !== undefined && ratio < 1;
}

export function number(value) {
  return new Intl.NumberFormat(lang()).format(value ?? 0);
}

export function dateTime(iso, withDate = false) {
  if (!iso) return "—";
  const options = { timeZone: timezone, hour: "2-digit", minute: "2-digit", hour12: false };
  if (withDate) Object.assign(options, { month: "2-digit", day: "2-digit" });
  return new Intl.DateTimeFormat(lang(), options).format(new Date(iso));
}

function parts(ms) {
  const values = {};
  const format = new Intl.DateTimeFormat("en-GB", {
    timeZone: timezone,
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  });
  for (const part of format.formatToParts(new Date(ms))) values[part.type] = part.value;
  return values;
}

// Chart axis ticks: "14:00", and the date ("11/30") at local midnight or for days.
export function axisTime(ms, daily = false) {
  const p = parts(ms);
  if (daily || (p.hour === "00" && p.minute === "00")) return `${p.month}/${p.day}`;
  return `${p.hour}:${p.minute}`;
}

export function legendTime(ms, daily = false) {
  const p = parts(ms);
  return daily ? `${p.month}/${p.day}` : `${p.month}/${p.day} ${p.hour}:${p.minute}`;
}

export function minutesAgo(minutes) {
  if (minutes === null || minutes === undefined) return t("time.never");
  if (minutes < 1) return t("time.just_now");
  if (minutes < 60) return t("time.minutes_ago", { n: Math.floor(minutes) });
  if (minutes < 60 * 24) return t("time.hours_ago", { n: Math.floor(minutes / 60) });
  return t("time.days_ago", { n: Math.floor(minutes / 1440) });
}

// "GMT+08:00" -> "+08:00": the zone's offset on a given date, for RFC 3339 query times.
function offsetOn(date) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: timezone,
    timeZoneName: "longOffset",
  }).formatToParts(date);
  const name = parts.find((p) => p.type === "timeZoneName")?.value || "GMT";
  return name === "GMT" ? "+00:00" : name.slice(3);
}

// A local date of the community ("2020-02-01") -> its midnight as RFC 3339.
export function localMidnight(dateText) {
  const guess = new Date(`${dateText}T00:00:00Z`);
  return `${dateText}T00:00:00${offsetOn(guess)}`;
}

export function localDate(date = new Date()) {
  return new Intl.DateTimeFormat("en-CA", { timeZone: timezone }).format(date);
}

export function addDays(dateText, days) {
  const date = new Date(`${dateText}T12:00:00Z`);
  date.setUTCDate(date.getUTCDate() + days);
  return date.toISOString().slice(0, 10);
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
