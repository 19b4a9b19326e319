// Alert routes (admin): the group robots (WeCom, DingTalk, Feishu) and webhooks alerts
// go to; add a robot route and "send a test message" with the robot's answer shown.
// URLs come back masked from the API (they are credentials) and are never shown whole.

import { ApiError, request } from "./api.js";
import { t } from "./i18n.js";
import { el } from "./format.js";

const KINDS = ["wecom", "dingtalk", "feishu", "standard"];

export class RobotRoutes {
  constructor({ panel, onError }) {
    Object.assign(this, { panel, onError });
    this.routes = [];
    this.answers = new Map(); // route id -> the last test's result
  }

  async load() {
    try {
      this.routes = await request("/webhooks");
    } catch (error) {
      // not an admin key: the panel stays hidden, nothing to report
      if (error instanceof ApiError && error.status === 403) {
        this.panel.hidden = true;
        return;
      }
      throw error;
    }
    this.panel.hidden = false;
    this.render();
  }

  async sendTest(route, button) {
    button.disabled = true;
    this.answers.set(route.id, { pending: true });
    this.render();
    try {
      this.answers.set(route.id, await request(`/webhooks/${route.id}/test`, { method: "POST" }));
    } catch (error) {
      this.answers.set(route.id, { ok: false, error: error.message, status_code: error.status });
    }
    this.render();
  }

  async create(form) {
    const data = new FormData(form);
    const mentions = String(data.get("mentions") || "")
      .split(/[\s,，]+/)
      .filter(Boolean);
    const body = {
      name: String(data.get("name") || "").trim(),
      kind: data.get("kind"),
      url: String(data.get("url") || "").trim(),
      language: data.get("language"),
      min_severity: data.get("min_severity"),
      escalation: data.get("escalation") === "on",
    };
    const secret = String(data.get("secret") || "").trim();
    if (secret) body.secret = secret;
    if (mentions.length) body.mentions = mentions;
    const error = this.panel.querySelector(".robots-error");
    error.textContent = "";
    try {
      await request("/webhooks", { method: "POST", body });
      form.reset();
      await this.load();
    } catch (failure) {
      error.textContent = failure.message;
    }
  }

  answerText(answer) {
    if (!answer) return "";
    if (answer.pending) return t("robots.sending");
    const code = answer.robot_code ?? answer.status_code ?? "";
    const head = answer.ok ? t("robots.accepted", { code }) : t("robots.refused", { code });
    const detail = [answer.error, answer.answer].filter(Boolean).join(" · ");
    return detail ? `${head} ${detail}` : head;
  }

  render() {
    const body = this.panel.querySelector(".robots-list");
    body.replaceChildren(
      ...this.routes.map((route) => {
        const answer = this.answers.get(route.id);
        const button = el("button", { type: "button", class: "robots-test" }, t("robots.test"));
        button.addEventListener("click", () => this.sendTest(route, button).catch(this.onError));
        return el(
          "tr",
          { dataset: { route: route.id } },
          el("td", {}, route.name),
          el("td", {}, t(`robots.kind.${route.kind}`)),
          el("td", {}, route.language),
          el("td", { class: "robots-url" }, route.url),
          el("td", {}, route.enabled ? t("robots.enabled") : t("robots.disabled")),
          el("td", {}, button),
          el(
            "td",
            { class: `robots-answer ${answer && !answer.pending ? (answer.ok ? "ok" : "bad") : ""}` },
            this.answerText(answer),
          ),
        );
      }),
    );
    this.panel.querySelector(".robots-empty").hidden = this.routes.length > 0;
    const kind = this.panel.querySelector("select[name=kind]");
    if (!kind.options.length) {
      for (const name of KINDS) kind.append(el("option", { value: name }, t(`robots.kind.${name}`)));
    } else {
      for (const option of kind.options) option.textContent = t(`robots.kind.${option.value}`);
    }
  }

  wire() {
    const form = this.panel.querySelector(".robots-form");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.create(form).catch(this.onError);
    });
  }
}
