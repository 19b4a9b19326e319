// Two languages, Chinese first; the choice is remembered in the browser.

const LANG_STORAGE = "cpm.lang";
export const LANGUAGES = ["zh-CN", "en"];
const dictionaries = {};
let current = "zh-CN";
const listeners = [];

export function lang() {
  return current;
}

export function t(key, vars = {}) {
  const text = dictionaries[current]?.[key] ?? dictionaries["zh-CN"]?.[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

// A key that may be missing (e.g. an alert type the dashboard does not know yet).
export function tOr(key, fallback) {
  const text = dictionaries[current]?.[key];
  return text === undefined ? fallback : text;
}

async function load(code) {
  if (!dictionaries[code]) {
    const response = await fetch(`i18n/${code}.json`);
    dictionaries[code] = await response.json();
  }
}

export function applyStatic(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]"))
    el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll("[data-i18n-aria]"))
    el.setAttribute("aria-label", t(el.dataset.i18nAria));
}

export async function setLang(code) {
  if (!LANGUAGES.includes(code)) code = "zh-CN";
  await load(code);
  current = code;
  localStorage.setItem(LANG_STORAGE, code);
  document.documentElement.lang = code;
  document.title = t("app.title");
  applyStatic();
  for (const listener of listeners) listener(code);
}

export function onLangChange(listener) {
  listeners.push(listener);
}

export async function initLang() {
  await load("zh-CN");
  await setLang(localStorage.getItem(LANG_STORAGE) || "zh-CN");
}
