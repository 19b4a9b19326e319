// The overview: pass rates by checklist and by site, open rectifications, and the
// progress of enterprise resumption, for a range of local days.

import { request } from "../api.js";
import { lang, t } from "../i18n.js";

const $ = (selector) => document.querySelector(selector);

function percent(value) {
  return value == null ? "—" : `${(value * 100).toFixed(1)}%`;
}

function cell(tag, text) {
  const node = document.createElement(tag);
  node.textContent = text;
  return node;
}

function table(target, key, rows, names) {
  const head = document.createElement("tr");
  for (const label of [t(`supervision.ov.${key}`), t("supervision.ov.inspections"), t("supervision.ov.pass_rate")])
    head.append(cell("th", label));
  const body = rows.map((row) => {
    const tr = document.createElement("tr");
    tr.dataset.key = row[key];
    tr.append(cell("td", names[row[key]] || row[key]), cell("td", String(row.inspections)), cell("td", percent(row.pass_rate)));
    return tr;
  });
  if (!body.length) {
    const tr = document.createElement("tr");
    const td = cell("td", t("supervision.ov.none"));
    td.colSpan = 3;
    tr.append(td);
    body.push(tr);
  }
  $(target).replaceChildren(head, ...body);
}

function card(name, value, note) {
  const box = document.createElement("div");
  box.className = "sv-card";
  box.dataset.card = name;
  const big = document.createElement("b");
  big.textContent = value;
  box.append(big, t(`supervision.card.${name}`));
  if (note) box.append(cell("div", note));
  return box;
}

export function localDay(date = new Date()) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

export class Overview {
  constructor(data) {
    this.data = data;
    const today = localDay();
    $("#ov-from").value = localDay(new Date(Date.now() - 29 * 86400000));
    $("#ov-to").value = today;
    $("#ov-range").addEventListener("submit", (event) => {
      event.preventDefault();
      this.load();
    });
  }

  async load() {
    const params = { from_day: $("#ov-from").value, to_day: $("#ov-to").value };
    const [m, findings] = await Promise.all([
      request("/supervision/metrics", { params }),
      request("/supervision/findings", { params: { status: "open" } }),
    ]);
    const e = m.enterprises;
    $("#ov-cards").replaceChildren(
      card("pass_rate", percent(m.inspections.pass_rate), `${m.inspections.passed}/${m.inspections.signed}`),
      card("open", String(m.findings.open), t("supervision.card.overdue_n", { n: m.findings.overdue })),
      card("resumed", `${e.resumed_total}/${e.total}`, t("supervision.card.resumed_range", { n: e.resumed })),
      card("same_day", `${e.checked_same_day}/${e.resumed}`, percent(e.pass_rate)),
    );
    const checklistNames = {};
    for (const c of this.data.checklists) checklistNames[c.code] = lang() === "zh-CN" ? c.name_zh : c.name;
    const siteNames = {};
    for (const s of this.data.sites) siteNames[s.id] = lang() === "zh-CN" && s.name_zh ? s.name_zh : s.name;
    table("#ov-checklists", "template_code", m.inspections.by_checklist, checklistNames);
    table("#ov-sites", "site_id", m.inspections.by_site, siteNames);
    const items = findings.map((f) => {
      const li = document.createElement("li");
      li.dataset.finding = String(f.id);
      if (f.overdue) li.className = "overdue";
      const due = f.deadline ? new Date(f.deadline).toLocaleDateString() : "—";
      li.textContent = `${siteNames[f.site_id] || f.site_id} · ${f.item_code} · ${f.reason} · ${t("supervision.deadline")} ${due}`;
      return li;
    });
    if (!items.length) items.push(cell("li", t("supervision.ov.none")));
    $("#ov-findings").replaceChildren(...items);
  }
}
