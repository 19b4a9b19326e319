// The live alert feed: Server-Sent Events from the API, polling when they fail;
// acknowledge and resolve where the role allows; a beep and a flash for critical ones.

import { api, streamUrl } from "./api.js";
import { lang, t, tOr } from "./i18n.js";
import { dateTime, el } from "./format.js";

const POLL_MS = 5000;
const RANK = { critical: 3, major: 2, warning: 1 };
export const OUTCOMES = [
  "sent_to_fever_clinic",
  "recheck_normal",
  "false_alarm",
  "returned_home",
  "handled_on_site",
  "reported_upward",
];
// a fever is a case: it closes only with one of these, and who decided (issue 17)
export const FEVER_DISPOSITIONS = [
  "sent_to_fever_clinic",
  "recheck_normal",
  "called_120",
  "sent_to_health_station",
  "home_observation",
];

// Why an alert was raised, in the dashboard's language, from the server's (English)
// summary: every rule's summary has a fixed shape (services/alerts/*_rules.py).
const REASONS = {
  fever: [[/(\d+(?:\.\d+)?) °C/, (m) => t("reason.fever", { temp: m[1] })]],
  device_offline: [
    [/reported offline(?:, last heard (\S+))?/, (m) => t("reason.device_offline.reported") + lastHeard(m[1])],
    [/silent(?:, last heard (\S+))?/, (m) => t("reason.device_offline.silent") + lastHeard(m[1])],
  ],
  staffing_gap: [[/(\d+) of (\d+) staff on duty for (\d+) min/, (m) => t("reason.staffing_gap", { on: m[1], need: m[2], min: m[3] })]],
  clock_skew: [
    [/is ([+-]?\d+) s off/, (m) => t("reason.clock_skew", { s: m[1] })],
    [/receipt time/, () => t("reason.clock_adjusted")],
  ],
  unscreened_passage: [[/\((in|out)\)/, (m) => t("reason.unscreened_passage", { dir: t(`direction.${m[1]}`) })]],
  quarantine_breach: [[/\((in|out)\)/, (m) => t("reason.quarantine_breach", { dir: t(`direction.${m[1]}`) })]],
  unregistered_entry: [[/registered: (\w+)/, (m) => t("reason.unregistered_entry", { why: tOr(`registration.${m[1]}`, m[1]) })]],
  sensor_fault: [
    [/(\d+) implausible readings .* within (\d+) min \(latest (\d+(?:\.\d+)?) °C\)/, (m) => t("reason.sensor_fault", { n: m[1], min: m[2], temp: m[3] })],
  ],
};

function lastHeard(iso) {
  return iso ? t("reason.device_offline.last_seen", { time: dateTime(iso, true) }) : "";
}

export function reasonText(alert) {
  const summary = alert.summary || "";
  for (const [pattern, text] of REASONS[alert.type] || []) {
    const match = pattern.exec(summary);
    if (match) return text(match);
  }
  return tOr(`alert.type.${alert.type}`, alert.type);
}

export class AlertFeed {
  constructor({ list, status, banner, permissions, checkpointName, onChange, onError, onDone = () => {} }) {
    Object.assign(this, { list, status, banner, permissions, checkpointName, onChange, onError, onDone });
    this.alerts = new Map();
    this.mode = "connecting";
    this.source = null;
    this.pollTimer = null;
    this.soundOn = true;
    this.audio = null;
    this.resolving = null;
    this.draft = { outcome: "", note: "" };
  }

  // --- connection ------------------------------------------------------------------
  start() {
    this.stop();
    if (!("EventSource" in window)) {
      this.startPolling();
      return;
    }
    this.setMode("connecting");
    const source = new EventSource(streamUrl());
    this.source = source;
    let loaded = false;
    source.onopen = () => {
      this.setMode("live");
      // the list after the stream is open: nothing falls between the two
      if (!loaded) {
        loaded = true;
        this.reload().catch((error) => this.onError(error));
      }
    };
    source.addEventListener("alert", (event) => this.applyEvent(JSON.parse(event.data)));
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        // the server refused the stream (or cannot serve it): poll instead
        source.close();
        this.source = null;
        this.startPolling();
      } else {
        this.setMode("reconnecting");
      }
    };
  }

  stop() {
    if (this.source) this.source.close();
    this.source = null;
    clearInterval(this.pollTimer);
    this.pollTimer = null;
  }

  startPolling() {
    this.setMode("polling");
    let first = true;
    const poll = () =>
      this.reload(!first).catch((error) => {
        this.setMode("offline");
        this.onError(error);
      });
    poll();
    first = false;
    this.pollTimer = setInterval(poll, POLL_MS);
  }

  setMode(mode) {
    this.mode = mode;
    this.status.dataset.mode = mode;
    this.status.textContent = t(`feed.mode.${mode}`);
  }

  async reload(cueNew = false) {
    const page = await api.alerts({ status: "active", limit: 200 });
    const before = new Set(this.alerts.keys());
    this.alerts = new Map(page.items.map((alert) => [alert.id, alert]));
    if (this.mode === "offline") this.setMode("polling");
    if (cueNew) {
      const fresh = page.items.filter((a) => !before.has(a.id) && a.severity === "critical");
      if (fresh.length) this.cue(fresh[0]);
    }
    this.render();
    this.onChange();
  }

  applyEvent(event) {
    const current = this.alerts.get(event.alert_id) || { id: event.alert_id, opened_at: event.at };
    const alert = {
      ...current,
      type: event.type,
      severity: event.severity,
      checkpoint_id: event.checkpoint_id,
      site_id: event.site_id,
      summary: event.summary,
      occurrences: event.occurrences,
      status: event.status,
      last_seen_at: event.at,
    };
    if (event.action === "acknowledged") {
      alert.acknowledged_at = event.at;
      alert.acknowledged_by = event.actor;
    }
    if (event.status === "resolved") this.alerts.delete(event.alert_id);
    else this.alerts.set(event.alert_id, alert);
    if (["opened", "escalated"].includes(event.action) && event.severity === "critical") this.cue(alert);
    this.render();
    this.onChange();
  }

  // --- the cue ---------------------------------------------------------------------
  unlockAudio() {
    // browsers allow sound only after a user gesture: called from a click
    if (!this.audio && "AudioContext" in window) this.audio = new AudioContext();
    if (this.audio && this.audio.state === "suspended") this.audio.resume();
  }

  beep() {
    if (!this.soundOn || !this.audio || this.audio.state !== "running") return;
    const now = this.audio.currentTime;
    for (const [offset, frequency] of [[0, 880], [0.25, 660], [0.5, 880]]) {
      const oscillator = this.audio.createOscillator();
      const gain = this.audio.createGain();
      oscillator.type = "square";
      oscillator.frequency.value = frequency;
      gain.gain.setValueAtTime(0.0001, now + offset);
      gain.gain.exponentialRampToValueAtTime(0.2, now + offset + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, now + offset + 0.2);
      oscillator.connect(gain).connect(this.audio.destination);
      oscillator.start(now + offset);
      oscillator.stop(now + offset + 0.22);
    }
  }

  cue(alert) {
    this.beep();
    this.banner.hidden = false;
    this.banner.dataset.alert = alert.id;
    this.banner.querySelector(".banner-text").textContent = `${t("feed.critical_banner")} · ${this.headline(alert)}`;
    document.body.classList.remove("flash");
    void document.body.offsetWidth; // restart the animation
    document.body.classList.add("flash");
  }

  // --- rendering -------------------------------------------------------------------
  headline(alert) {
    const type = tOr(`alert.type.${alert.type}`, alert.type);
    return `${type} · ${this.checkpointName(alert.checkpoint_id)}`;
  }

  detailLine(alert) {
    return lang() === "zh-CN" ? reasonText(alert) : alert.summary;
  }

  sorted() {
    return [...this.alerts.values()].sort(
      (a, b) =>
        (a.status === "open" ? 0 : 1) - (b.status === "open" ? 0 : 1) ||
        RANK[b.severity] - RANK[a.severity] ||
        String(b.opened_at).localeCompare(String(a.opened_at)),
    );
  }

  render() {
    const items = this.sorted();
    if (!items.length) {
      this.list.replaceChildren(el("li", { class: "feed-empty" }, t("feed.empty")));
      return;
    }
    // the open resolve form is moved into the new list, not rebuilt: a click or typing
    // under way when an update arrives goes on in the same elements (focus restored)
    const focused = this.formNode?.contains(document.activeElement) ? document.activeElement : null;
    this.list.replaceChildren(...items.map((alert) => this.item(alert)));
    if (focused && focused.isConnected) focused.focus();
  }

  item(alert) {
    const { canAcknowledge, canResolve } = this.permissions(alert);
    const actions = el("div", { class: "feed-actions" });
    if (alert.status === "open" && canAcknowledge) {
      actions.append(el("button", { type: "button", class: "ack", onclick: () => this.acknowledge(alert.id) }, t("feed.acknowledge")));
    }
    if (canResolve) {
      actions.append(el("button", { type: "button", class: "resolve", onclick: () => this.openResolve(alert.id) }, t("feed.resolve")));
    }
    return el(
      "li",
      { class: `feed-item sev-${alert.severity} status-${alert.status}`, dataset: { alert: alert.id, status: alert.status, type: alert.type } },
      el(
        "div",
        { class: "feed-head" },
        el("span", { class: `badge sev-${alert.severity}` }, t(`severity.${alert.severity}`)),
        el("span", { class: "feed-title" }, tOr(`alert.type.${alert.type}`, alert.type)),
        el("time", { datetime: alert.opened_at }, dateTime(alert.opened_at, true)),
      ),
      el("div", { class: "feed-where" }, this.checkpointName(alert.checkpoint_id)),
      el("div", { class: "feed-detail", title: alert.summary }, this.detailLine(alert)),
      el(
        "div",
        { class: "feed-meta" },
        el("span", { class: "status" }, t(`alert.status.${alert.status}`)),
        alert.occurrences > 1 ? el("span", {}, t("feed.occurrences", { n: alert.occurrences })) : null,
        alert.acknowledged_by ? el("span", {}, t("feed.acknowledged_by", { who: alert.acknowledged_by })) : null,
      ),
      actions,
      this.resolving === alert.id ? this.resolveForm(alert) : null,
    );
  }

  resolveForm(alert) {
    if (this.formNode?.dataset.alert === String(alert.id)) return this.formNode;
    // what the user chose and typed is also kept in this.draft (a language switch
    // rebuilds the form)
    const draft = this.draft;
    const outcome = el(
      "select",
      { name: "outcome", required: true, "aria-label": t("feed.outcome"), onchange: () => { draft.outcome = outcome.value; } },
      (alert.type === "fever" ? FEVER_DISPOSITIONS : OUTCOMES).map((value) => el("option", { value }, t(`outcome.${value}`))),
    );
    const note = el("input", { name: "note", type: "text", maxlength: 1000, placeholder: t("feed.note"), "aria-label": t("feed.note"), oninput: () => { draft.note = note.value; } });
    const decidedBy = alert.type === "fever"
      ? el("input", { name: "decided_by", type: "text", required: true, maxlength: 64, placeholder: t("feed.decided_by"), "aria-label": t("feed.decided_by"), oninput: () => { draft.decidedBy = decidedBy.value; } })
      : null;
    if (draft.outcome) outcome.value = draft.outcome;
    note.value = draft.note;
    if (decidedBy) decidedBy.value = draft.decidedBy || "";
    this.formNode = el(
      "form",
      {
        class: "resolve-form",
        dataset: { alert: alert.id },
        onsubmit: (event) => {
          event.preventDefault();
          this.resolve(alert.id, outcome.value, note.value.trim(), decidedBy ? decidedBy.value.trim() : null);
        },
      },
      el("label", {}, t("feed.outcome"), outcome),
      decidedBy,
      note,
      el("div", { class: "feed-actions" },
        el("button", { type: "submit", class: "confirm" }, t("feed.confirm_resolve")),
        el("button", { type: "button", onclick: () => this.openResolve(null) }, t("common.cancel")),
      ),
    );
    return this.formNode;
  }

  relabel() {
    // in the new language: the open resolve form is rebuilt (its draft kept)
    this.formNode = null;
    this.render();
  }

  openResolve(id) {
    this.resolving = id;
    this.formNode = null;
    this.draft = { outcome: "", note: "" };
    this.render();
    this.list.querySelector(".resolve-form select")?.focus();
  }

  async acknowledge(id) {
    try {
      const updated = await api.acknowledge(id);
      this.store(updated);
      this.onDone(t("feed.acknowledged_ok", { what: this.headline(updated) }));
    } catch (error) {
      this.onError(error);
    }
  }

  async resolve(id, outcome, note, decidedBy) {
    try {
      const updated = await api.resolve(id, outcome, note, decidedBy);
      this.resolving = null;
      this.formNode = null;
      this.store(updated);
      // the item leaves the feed: say so, or the click looks like it did nothing
      this.onDone(t("feed.resolved_ok", { what: this.headline(updated) }));
    } catch (error) {
      this.onError(error);
    }
  }

  store(alert) {
    if (alert.status === "resolved") this.alerts.delete(alert.id);
    else this.alerts.set(alert.id, alert);
    if (String(this.banner.dataset.alert) === String(alert.id)) this.banner.hidden = true;
    this.render();
    this.onChange();
  }
}
