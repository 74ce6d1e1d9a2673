// Strings come from one catalogue per language (i18n/<lang>.json); English fills gaps.

const SUPPORTED = ["en", "nl"];
let strings = {};
let fallback = {};
let current = "en";

export function pickLanguage(tag) {
  const base = String(tag || "").toLowerCase().split("-")[0];
  return SUPPORTED.includes(base) ? base : "en";
}

async function catalogue(lang) {
  const resp = await fetch(new URL(`i18n/${lang}.json`, document.baseURI));
  return resp.ok ? resp.json() : {};
}

export async function setLanguage(tag) {
  const lang = pickLanguage(tag);
  if (!Object.keys(fallback).length) fallback = await catalogue("en");
  strings = lang === "en" ? fallback : await catalogue(lang);
  current = lang;
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n);
  }
  document.title = t("app_name");
}

export function language() {
  return current;
}

// t(name, {n: 3}) fills {n} placeholders.
export function t(key, values = {}) {
  const text = strings[key] ?? fallback[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in values ? String(values[name]) : `{${name}}`));
}
