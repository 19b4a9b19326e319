// The daily report (日报) of a chosen day: download the XLSX, or open the printable
// page. Both are fetched here with the session cookie and handed over as a Blob.

import { lang, t } from "./i18n.js";

const form = document.getElementById("report-form");
const dateInput = document.getElementById("report-date");
const printButton = document.getElementById("report-print");
const status = document.getElementById("report-status");

function localToday() {
  const now = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

async function fetchReport(format) {
  const url = new URL("/api/v1/reports/daily", location.origin);
  url.searchParams.set("date", dateInput.value);
  url.searchParams.set("format", format);
  url.searchParams.set("lang", lang());
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = (await response.json()).detail || detail;
    } catch {
      // not JSON: keep the status text
    }
    throw new Error(detail);
  }
  return response.blob();
}

async function run(format, use) {
  if (!dateInput.value) return;
  status.textContent = t("report.loading");
  try {
    const blob = await fetchReport(format);
    use(URL.createObjectURL(blob));
    status.textContent = "";
  } catch (error) {
    status.textContent = t("report.failed", { detail: error.message });
  }
}

function download(objectUrl) {
  const link = document.createElement("a");
  link.href = objectUrl;
  link.download = `daily-report-${dateInput.value}.xlsx`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(objectUrl), 60_000);
}

function openPage(objectUrl) {
  window.open(objectUrl, "_blank");
  setTimeout(() => URL.revokeObjectURL(objectUrl), 60_000);
}

if (form) {
  dateInput.value = localToday();
  dateInput.max = localToday();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run("xlsx", download);
  });
  printButton.addEventListener("click", () => run("html", openPage));
}
