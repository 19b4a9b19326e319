// The inspection form: one checklist, a √ or × per minor item (each × with its reason
// and how it is rectified), the system's own verdict beside the sensor-judged items,
// and the responsible person's signature.

import { request } from "../api.js";
import { lang, t } from "../i18n.js";
import { SignaturePad } from "./signature.js";

const $ = (selector) => document.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function endOfLocalDay(isoDate) {
  return new Date(`${isoDate}T23:59:00`).toISOString();
}

export class InspectionForm {
  constructor(data) {
    this.data = data; // { teams, sites, enterprises, checklists }
    this.marks = new Map(); // item code -> "pass" | "fail"
    this.verdicts = new Map(); // item code -> { verdict, value }
    this.draftId = null;
    this.pad = new SignaturePad($("#sv-canvas"));
    $("#sv-clear").addEventListener("click", () => this.pad.clear());
    $("#sv-target").addEventListener("change", () => this.targetChanged());
    $("#inspection-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    $("#sv-items").addEventListener("click", (event) => this.clicked(event));
    this.fillSelects();
    this.targetChanged();
  }

  fillSelects() {
    const teams = $("#sv-team");
    teams.replaceChildren(
      ...this.data.teams.map((team) =>
        el("option", { value: team.id, text: lang() === "zh-CN" ? team.name_zh || team.name : team.name }),
      ),
    );
    const target = $("#sv-target");
    const previous = target.value;
    const sites = el("optgroup", { label: t("supervision.targets.sites") });
    for (const site of this.data.sites.filter((s) => s.kind === "residential" || s.kind === "industrial"))
      sites.append(el("option", { value: `site:${site.id}`, text: site.name_zh && lang() === "zh-CN" ? site.name_zh : site.name }));
    const firms = el("optgroup", { label: t("supervision.targets.enterprises") });
    for (const firm of this.data.enterprises.filter((e) => e.status === "resumed"))
      firms.append(el("option", { value: `ent:${firm.id}`, text: firm.name }));
    target.replaceChildren(sites, firms);
    if (previous) target.value = previous;
  }

  target() {
    const [kind, id] = $("#sv-target").value.split(":");
    if (kind === "ent") {
      const firm = this.data.enterprises.find((e) => String(e.id) === id);
      return { enterprise_id: Number(id), checklist: "enterprise", site_id: firm?.site_id };
    }
    const site = this.data.sites.find((s) => s.id === id);
    return { site_id: id, checklist: site?.kind === "industrial" ? "industrial" : "residential" };
  }

  checklist() {
    return this.data.checklists.find((c) => c.code === this.target().checklist);
  }

  async targetChanged() {
    this.marks.clear();
    this.verdicts.clear();
    this.draftId = null;
    this.render();
    const target = this.target();
    const params = target.enterprise_id ? { enterprise_id: target.enterprise_id } : { site_id: target.site_id };
    if (!target.site_id) return;
    try {
      const report = await request("/supervision/verdicts", { params });
      for (const item of report.items) this.verdicts.set(item.item_code, item);
      $("#sv-period").textContent = t("supervision.period", {
        from: new Date(report.period_start).toLocaleString(),
        to: new Date(report.period_end).toLocaleString(),
      });
      this.render();
    } catch (error) {
      $("#sv-error").textContent = error.message;
    }
  }

  text(item) {
    return lang() === "zh-CN" ? item.text_zh : item.text_en;
  }

  render() {
    const list = this.checklist();
    const box = $("#sv-items");
    if (!list) {
      box.replaceChildren(el("p", { class: "muted", text: t("supervision.no_checklist") }));
      return;
    }
    const nodes = [el("p", { class: "muted", text: `${lang() === "zh-CN" ? list.name_zh : list.name} · v${list.version}` })];
    for (const item of list.items) {
      if (!item.parent_code) {
        nodes.push(el("h3", { class: "sv-major" }, el("span", { class: "sv-code", text: item.code }), this.text(item)));
        continue;
      }
      nodes.push(this.itemRow(item));
    }
    box.replaceChildren(...nodes);
  }

  itemRow(item) {
    const mark = this.marks.get(item.code);
    const verdict = this.verdicts.get(item.code);
    const row = el("div", { class: "sv-item", "data-item": item.code });
    row.append(el("div", { class: "sv-item-text" }, el("span", { class: "sv-code", text: item.code }), this.text(item)));
    if (item.sensor_metric) {
      const state = verdict?.verdict || "none";
      const value = verdict?.value == null ? "—" : `${(verdict.value * 100).toFixed(1)}%`;
      const word = t(`supervision.verdict.${state}`);
      const system = el("div", { class: "sv-system", "data-verdict": state }, `${t("supervision.system")}: `, el("b", { text: word }), ` (${value})`);
      row.append(system);
      if (mark === "pass" && state === "fail") {
        row.dataset.disagree = "true";
        system.append(el("div", { text: t("supervision.disagree") }));
      }
    }
    const buttons = el("div", { class: "sv-marks" });
    for (const [value, label] of [["pass", "√"], ["fail", "×"]]) {
      buttons.append(
        el("button", {
          type: "button",
          "data-mark": value,
          "aria-pressed": String(mark === value),
          "aria-label": t(`supervision.mark.${value}`),
          text: label,
        }),
      );
    }
    row.append(buttons);
    if (mark === "fail") {
      const fix = el("div", { class: "sv-fix" });
      fix.append(el("textarea", { class: "sv-reason", rows: "2", maxlength: "500", placeholder: t("supervision.reason") }));
      fix.append(el("label", {}, el("input", { type: "checkbox", class: "sv-onspot" }), t("supervision.fixed_on_spot")));
      fix.append(el("label", {}, t("supervision.deadline"), el("input", { type: "date", class: "sv-deadline" })));
      row.append(fix);
    }
    return row;
  }

  clicked(event) {
    const button = event.target.closest("button[data-mark]");
    if (!button) return;
    const row = button.closest(".sv-item");
    const code = row.dataset.item;
    const kept = this.readFix(row);
    this.marks.set(code, button.dataset.mark);
    const item = this.checklist().items.find((i) => i.code === code);
    const fresh = this.itemRow(item);
    row.replaceWith(fresh);
    if (kept && button.dataset.mark === "fail") this.writeFix(fresh, kept);
  }

  readFix(row) {
    const reason = row.querySelector(".sv-reason");
    if (!reason) return null;
    return {
      reason: reason.value,
      onspot: row.querySelector(".sv-onspot").checked,
      deadline: row.querySelector(".sv-deadline").value,
    };
  }

  writeFix(row, fix) {
    row.querySelector(".sv-reason").value = fix.reason;
    row.querySelector(".sv-onspot").checked = fix.onspot;
    row.querySelector(".sv-deadline").value = fix.deadline;
  }

  collect() {
    const items = this.checklist().items.filter((i) => i.parent_code);
    const marks = [];
    for (const item of items) {
      const mark = this.marks.get(item.code);
      if (!mark) throw new Error(t("supervision.err.unmarked", { code: item.code }));
      const entry = { item_code: item.code, mark };
      if (mark === "fail") {
        const fix = this.readFix(document.querySelector(`.sv-item[data-item="${item.code}"]`));
        if (!fix.reason.trim()) throw new Error(t("supervision.err.reason", { code: item.code }));
        if (!fix.onspot && !fix.deadline) throw new Error(t("supervision.err.fix", { code: item.code }));
        entry.reason = fix.reason.trim();
        if (fix.onspot) entry.fixed_on_spot = true;
        else entry.deadline = endOfLocalDay(fix.deadline);
      }
      marks.push(entry);
    }
    return marks;
  }

  async submit() {
    $("#sv-error").textContent = "";
    $("#sv-result").textContent = "";
    let marks;
    try {
      marks = this.collect();
      if (!$("#sv-inspector").value.trim()) throw new Error(t("supervision.err.inspector"));
      if (!$("#sv-signer").value.trim()) throw new Error(t("supervision.err.signer"));
      if (this.pad.isEmpty()) throw new Error(t("supervision.err.signature"));
    } catch (error) {
      $("#sv-error").textContent = error.message;
      return;
    }
    const target = this.target();
    $("#sv-submit").disabled = true;
    try {
      if (this.draftId === null) {
        const draft = await request("/supervision/inspections", {
          method: "POST",
          body: {
            kind: target.enterprise_id ? "resumption" : "lookback",
            team_id: $("#sv-team").value,
            site_id: target.enterprise_id ? null : target.site_id,
            enterprise_id: target.enterprise_id || null,
            inspector: $("#sv-inspector").value.trim(),
            marks,
          },
        });
        this.draftId = draft.id;
      } else {
        await request(`/supervision/inspections/${this.draftId}`, { method: "PATCH", body: { marks } });
      }
      const signed = await request(`/supervision/inspections/${this.draftId}/sign`, {
        method: "POST",
        body: { signer_name: $("#sv-signer").value.trim(), signature_png: this.pad.png() },
      });
      const fails = signed.marks.filter((m) => m.mark === "fail").length;
      const result = $("#sv-result");
      result.dataset.inspection = String(signed.id);
      result.textContent = t(signed.passed ? "supervision.saved_pass" : "supervision.saved_fail", {
        id: signed.id,
        fails,
      });
      this.pad.clear();
      await this.targetChanged(); // the next inspection's period starts here
    } catch (error) {
      $("#sv-error").textContent = error.message;
    } finally {
      $("#sv-submit").disabled = false;
    }
  }
}
