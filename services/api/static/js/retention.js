// When each class of stored record is deleted (GET /api/v1/privacy/retention): the
// rule, and for the classes deleted by age the oldest row kept and its deletion date.

import { request } from "./api.js";
import { t, tOr } from "./i18n.js";
import { dateTime, el } from "./format.js";

let policy = null;

export async function loadRetention() {
  policy = await request("/privacy/retention");
  renderRetention();
}

function rule(item) {
  if (item.kept_days) return t("retention.by_age", { days: item.kept_days });
  return item.personal_data ? t("retention.until_purge") : t("retention.kept");
}

export function renderRetention() {
  const body = document.querySelector("#retention-list");
  if (!body || !policy) return;
  body.replaceChildren(
    ...policy.classes.map((item) =>
      el(
        "tr",
        { dataset: { recordClass: item.record_class } },
        el("td", {}, tOr(`retention.class.${item.record_class}`, item.record_class)),
        el("td", {}, item.personal_data ? t("retention.personal") : "—"),
        el("td", {}, rule(item)),
        el("td", { class: "retention-due" }, item.oldest_at ? dateTime(item.oldest_deleted_after, true) : "—"),
      ),
    ),
  );
  document.querySelector("#retention-panel").hidden = false;
}
