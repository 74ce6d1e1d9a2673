// The volunteer app: screens, duty, alerts. Plain modules, no build step, no other origin.

import { ApiError, call, forgetSession, saveSession, session } from "./api.js";
import { DutyTracker, bearingDeg, compassPoint, distanceM } from "./geo.js";
import { AlertFeed } from "./live.js";
import { language, pickLanguage, setLanguage, t } from "./i18n.js";
import { subscribePush } from "./push.js";
import { startRing, stopRing, unlockAudio } from "./ring.js";

const $ = (sel) => document.querySelector(sel);
const AGENCY = "dispatch.agency";
const PHONE = "dispatch.phone";
const LANG = "dispatch.language";
const ALERT_REFRESH_MS = 2000;
const RESPONDING = ["accepted", "en_route", "on_scene"];
const WAITING = ["queued", "sent", "delivered"];

let me = null;
let openedVia = "live";
let alertTimer = null;
let shownAlert = null;

const tracker = new DutyTracker(
  (fix) => call("PUT", "me/location", fix),
  () => renderDuty(),
);
const feed = new AlertFeed(
  (alertId) => openAlert(alertId),
  (alertId) => {
    if (shownAlert && shownAlert.alert_id === alertId) refreshAlert(alertId);
  },
  (live) => {
    $("#live-status").textContent = t(live ? "live_on" : "live_off");
  },
);

let noticeTimer = null;
const NOTICE_MS = 8000;

function notice(text, error = false) {
  const el = $("#notice");
  el.textContent = text;
  el.classList.toggle("error", error);
  el.hidden = !text;
  clearTimeout(noticeTimer);
  if (text && !error) noticeTimer = setTimeout(() => notice(""), NOTICE_MS);
}

function problemText(err) {
  if (err instanceof ApiError) {
    if (err.status === 429) return t("error_too_many");
    if (err.status === 401 && !session()) return t("error_signed_out");
    return err.message;
  }
  return t("error_network");
}

function show(name) {
  for (const el of document.querySelectorAll("[data-screen]")) el.hidden = el.dataset.screen !== name;
  $("#nav").hidden = !session() || name === "alert";
  window.scrollTo(0, 0);
}

function formData(form) {
  return Object.fromEntries(new FormData(form).entries());
}

function agencyId() {
  return localStorage.getItem(AGENCY) || "";
}

// --- sign-up and sign-in -----------------------------------------------------------------

function prepareAgencyFields() {
  const known = agencyId();
  for (const id of ["#agency-row", "#agency-row-signin"]) {
    const row = $(id);
    row.hidden = Boolean(known);
    row.querySelector("input").value = known;
  }
}

async function askCode(form, path) {
  const data = formData(form);
  const agency = data.agency_id || agencyId();
  const body = { agency_id: agency, phone_e164: data.phone_e164.replace(/[\s-]/g, "") };
  if (path === "volunteers/signup") {
    body.display_name = data.display_name.trim();
    body.language = data.language;
  }
  try {
    await call("POST", path, body, { auth: false });
  } catch (err) {
    notice(problemText(err), true);
    return;
  }
  localStorage.setItem(AGENCY, agency);
  localStorage.setItem(PHONE, body.phone_e164);
  if (body.language) localStorage.setItem(LANG, body.language);
  notice(t("code_sent"));
  location.hash = "#code";
}

async function verifyCode(form) {
  unlockAudio();
  const code = formData(form).code.trim();
  try {
    const tokens = await call(
      "POST",
      "volunteers/verify",
      {
        agency_id: agencyId(),
        phone_e164: localStorage.getItem(PHONE) || "",
        code,
        device_label: deviceLabel(),
      },
      { auth: false },
    );
    saveSession(tokens);
    // Nothing is shared from a new device until the volunteer turns the switch on here.
    me = await call("PATCH", "me", { on_duty: false });
  } catch (err) {
    notice(problemText(err), true);
    return;
  }
  localStorage.removeItem(PHONE);
  form.reset();
  notice("");
  location.hash = "#home";
}

function deviceLabel() {
  const ua = navigator.userAgent;
  const found = /Android|iPhone|iPad|Windows|Macintosh|Linux/.exec(ua);
  return `${t("app_name")} (${found ? found[0] : "web"})`;
}

// --- profile and duty ----------------------------------------------------------------------

async function loadMe() {
  me = await call("GET", "me");
  localStorage.setItem(LANG, me.language);
  if (pickLanguage(me.language) !== language()) await setLanguage(me.language);
  return me;
}

function renderDuty() {
  if (!me) return;
  const on = me.on_duty;
  $("#duty-switch").checked = on;
  $("#duty-label").textContent = t(on ? "duty_on" : "duty_off");
  $("#duty-explain").textContent = t(on ? "duty_explain_on" : "duty_explain_off");
  const last = $("#duty-last");
  if (on && tracker.error !== null) {
    last.textContent = t("duty_no_position");
  } else if (on && tracker.lastSent) {
    const at = new Date(tracker.lastSent.sentAt).toLocaleTimeString(language());
    last.textContent = t("duty_last_sent", { time: at, accuracy: tracker.lastSent.accuracy_m });
  } else {
    last.textContent = on ? t("duty_waiting") : "";
  }
  const reasons = me.not_alertable_because.filter((r) => r !== "off_duty");
  $("#alertable").textContent = reasons.length
    ? t("not_alertable", { reasons: reasons.map((r) => t(`reason_${r}`)).join(", ") })
    : "";
}

async function setDuty(on) {
  unlockAudio();
  try {
    me = await call("PATCH", "me", { on_duty: on });
  } catch (err) {
    notice(problemText(err), true);
    $("#duty-switch").checked = !on;
    return;
  }
  if (on) tracker.start();
  else tracker.stop();
  renderDuty();
  if (on) subscribePush().catch(() => {});
}

async function home() {
  show("home");
  try {
    await loadMe();
  } catch (err) {
    notice(problemText(err), true);
    return;
  }
  $("#hello").textContent = t("hello", { name: me.display_name });
  if (me.on_duty) tracker.start();
  renderDuty();
  await renderAlertList();
}

async function renderAlertList() {
  const list = $("#alert-list");
  let alerts = [];
  try {
    alerts = (await call("GET", "me/alerts")).alerts.filter((a) => a.open);
  } catch {
    return;
  }
  list.replaceChildren(
    ...alerts.map((a) => {
      const li = document.createElement("li");
      const link = document.createElement("a");
      link.href = `#alert/${a.alert_id}`;
      link.textContent = `${a.test ? t("alert_test_title") : t("alert_title")}: ${t(`state_${a.state}`)}`;
      li.append(link);
      return li;
    }),
  );
  $("#alerts-empty").hidden = alerts.length > 0;
}

async function testAlert() {
  unlockAudio();
  try {
    const sent = await call("POST", "me/test-alert");
    notice(t("test_alert_sent", { left: sent.left_today }));
    feed.poke();
  } catch (err) {
    notice(problemText(err), true);
  }
}

// --- the alert screen ----------------------------------------------------------------------

function openAlert(alertId) {
  if (location.hash !== `#alert/${alertId}`) location.hash = `#alert/${alertId}`;
}

function mapLink(lat, lon) {
  const at = `${lat.toFixed(6)},${lon.toFixed(6)}`;
  const ua = navigator.userAgent;
  if (/iPhone|iPad|iPod/.test(ua)) return `https://maps.apple.com/?daddr=${at}&dirflg=w`;
  if (/Android/.test(ua)) return `geo:${at}?q=${at}`;
  return `https://www.openstreetmap.org/directions?engine=fossgis_osrm_foot&route=;${at}`;
}

function endedText(alert) {
  if (alert.state === "declined") return t("ended_declined");
  if (alert.state === "cancelled") return t("ended_cancelled");
  if (alert.state === "timed_out") return t("ended_timed_out");
  if (alert.ended_reason === "target_reached") return t("ended_enough");
  if (alert.ended_reason === "ems_on_scene") return t("ended_ems");
  return t("ended_incident");
}

function destination(alert) {
  if (alert.role === "aed" && alert.aed && alert.state !== "on_scene") return alert.aed;
  return alert.patient;
}

function renderAlert(alert) {
  shownAlert = alert;
  const screen = $('[data-screen="alert"]');
  const test = alert.test;
  const waiting = WAITING.includes(alert.state);
  const responding = RESPONDING.includes(alert.state);
  const over = !waiting && !responding;
  $("#alert-title").textContent = test ? t("alert_test_title") : t("alert_title");
  $("#alert-role").textContent = test
    ? t("role_test")
    : alert.role === "aed"
      ? t("role_aed")
      : t("role_cpr");
  const target = destination(alert);
  const here = tracker.latest;
  const arrow = $("#alert-arrow");
  if (here && target && target.lat != null) {
    const bearing = bearingDeg(here, target);
    const metres = distanceM(here, target);
    arrow.hidden = false;
    arrow.style.transform = `rotate(${Math.round(bearing)}deg)`;
    $("#alert-distance").textContent = t("distance_dir", {
      distance: formatDistance(metres),
      dir: t(`dir_${compassPoint(bearing)}`),
    });
  } else {
    arrow.hidden = true;
    $("#alert-distance").textContent = test ? "" : t("distance_only", { distance: formatDistance(alert.distance_m) });
  }
  const aed = alert.role === "aed" ? alert.aed : null;
  $("#alert-aed").hidden = !aed || over;
  if (aed) {
    $("#aed-name").textContent = aed.name;
    $("#aed-where").textContent = aed.indoor_description || "";
    $("#aed-access").textContent = aed.access_notes ? t("aed_access", { notes: aed.access_notes }) : "";
    $("#aed-navigate").href = mapLink(aed.lat, aed.lon);
  }
  const patient = alert.patient;
  $("#alert-patient").hidden = test || over || patient.lat == null;
  $("#patient-address").textContent = patient.address || (responding ? "" : t("address_after_accept"));
  if (patient.lat != null) $("#patient-navigate").href = mapLink(patient.lat, patient.lon);
  const allowed = {
    accept: waiting && !test,
    decline: waiting && !test,
    "en-route": alert.state === "accepted",
    arrived: alert.state === "accepted" || alert.state === "en_route",
    cancel: responding && alert.state !== "on_scene",
  };
  for (const button of document.querySelectorAll("[data-answer]")) {
    button.hidden = !allowed[button.dataset.answer];
  }
  const ended = over || (alert.incident_status !== "active" && !test);
  const endedBox = $("#alert-ended");
  endedBox.hidden = !ended && !test;
  $("#alert-ended-text").textContent = test ? t("test_ok") : ended ? endedText(alert) : "";
  if (ended) for (const button of document.querySelectorAll("[data-answer]")) button.hidden = true;
  const care = alert.aftercare;
  $("#aftercare-form").hidden = !(care && care.asked && !care.answered);
  const ring = waiting && !ended && !screen.dataset.silenced;
  screen.classList.toggle("ringing", ring);
  $("#silence").hidden = !ring;
  if (ring) startRing();
  else stopRing();
}

function formatDistance(metres) {
  return metres >= 1000 ? `${(metres / 1000).toFixed(1)} km` : `${Math.round(metres)} m`;
}

async function refreshAlert(alertId) {
  try {
    const alert = await call("GET", `alerts/${alertId}`);
    if (location.hash === `#alert/${alertId}`) renderAlert(alert);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) location.hash = "#home";
  }
}

async function alertScreen(alertId) {
  notice("");
  show("alert");
  const screen = $('[data-screen="alert"]');
  if (!shownAlert || shownAlert.alert_id !== alertId) delete screen.dataset.silenced;
  await refreshAlert(alertId);
  feed.acknowledge(alertId, openedVia);
  openedVia = "live";
  clearInterval(alertTimer);
  alertTimer = setInterval(() => refreshAlert(alertId), ALERT_REFRESH_MS);
}

async function answer(kind) {
  if (!shownAlert) return;
  stopRing();
  try {
    await call("POST", `alerts/${shownAlert.alert_id}/${kind}`);
  } catch (err) {
    notice(problemText(err), true);
  }
  await refreshAlert(shownAlert.alert_id);
}

async function sendAftercare(form) {
  const data = formData(form);
  const body = { wants_to_talk: Boolean(data.wants_to_talk) };
  if (data.text && data.text.trim()) body.text = data.text.trim();
  try {
    await call("POST", `alerts/${shownAlert.alert_id}/feedback`, body);
    notice(t("aftercare_thanks"));
    form.reset();
  } catch (err) {
    notice(problemText(err), true);
  }
  await refreshAlert(shownAlert.alert_id);
}

// --- settings ------------------------------------------------------------------------------

async function settingsScreen() {
  show("settings");
  const form = $("#settings-form");
  await loadMe();
  form.display_name.value = me.display_name;
  form.language.value = pickLanguage(me.language);
  form.quiet_from.value = me.quiet_from || "";
  form.quiet_until.value = me.quiet_until || "";
  form.time_zone.value = me.time_zone || "";
  form.daily_budget.value = me.daily_budget ?? "";
  form.preferred.value = me.channels.preferred || "";
  form.refuse_sms.checked = me.channels.refused.includes("sms");
  form.refuse_voice.checked = me.channels.refused.includes("voice");
}

async function saveSettings(form) {
  const d = formData(form);
  const refused = [];
  if (form.refuse_sms.checked) refused.push("sms");
  if (form.refuse_voice.checked) refused.push("voice");
  const change = {
    display_name: d.display_name.trim(),
    language: d.language,
    quiet_from: d.quiet_from || null,
    quiet_until: d.quiet_until || null,
    daily_budget: d.daily_budget ? Number(d.daily_budget) : null,
    channels: { preferred: d.preferred || null, refused },
  };
  if (d.time_zone.trim()) change.time_zone = d.time_zone.trim();
  try {
    me = await call("PATCH", "me", change);
    await setLanguage(me.language);
    notice(t("saved"));
  } catch (err) {
    notice(problemText(err), true);
  }
}

// --- credentials, sessions, data -------------------------------------------------------------

async function credentialsScreen() {
  show("credentials");
  const list = $("#credential-list");
  const { credentials } = await call("GET", "me/credentials");
  list.replaceChildren(
    ...credentials.map((c) => {
      const li = document.createElement("li");
      const state = t(`credential_${c.state}`);
      li.textContent = `${t(`kind_${c.kind}`)} · ${c.issuer} · ${c.expires_on} · ${state}`;
      if (c.reason) li.textContent += ` (${c.reason})`;
      return li;
    }),
  );
}

async function addCredential(form) {
  const d = formData(form);
  const body = { kind: d.kind, issuer: d.issuer.trim(), expires_on: d.expires_on };
  if (d.number && d.number.trim()) body.number = d.number.trim();
  try {
    const created = await call("POST", "me/credentials", body);
    const scan = form.scan.files[0];
    if (scan) {
      await call("PUT", `me/credentials/${created.credential_id}/scan`, scan, {
        headers: { "Content-Type": scan.type },
      });
    }
    form.reset();
    notice(t("credential_saved"));
  } catch (err) {
    notice(problemText(err), true);
  }
  await credentialsScreen();
}

async function sessionsScreen() {
  show("sessions");
  const { sessions } = await call("GET", "me/sessions");
  $("#session-list").replaceChildren(
    ...sessions.filter((s) => s.state === "active").map((s) => {
      const li = document.createElement("li");
      const label = s.device_label || t("session_unnamed");
      li.textContent = `${label} · ${new Date(s.refreshed_at || s.created_at).toLocaleString(language())} `;
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = s.current ? t("sign_out_here") : t("sign_out");
      button.addEventListener("click", () => revoke(s.session_id, s.current));
      li.append(button);
      return li;
    }),
  );
}

async function revoke(sessionId, current) {
  try {
    await call("DELETE", `me/sessions/${sessionId}`);
  } catch (err) {
    notice(problemText(err), true);
    return;
  }
  if (current) {
    signedOut();
    return;
  }
  await sessionsScreen();
}

function signedOut() {
  tracker.stop();
  feed.stop();
  forgetSession();
  me = null;
  location.hash = "#signin";
}

async function exportData() {
  try {
    const document_ = await call("GET", "me/export");
    const blob = new Blob([JSON.stringify(document_, null, 2)], { type: "application/json" });
    const link = $("#export-link");
    link.href = URL.createObjectURL(blob);
    link.click();
  } catch (err) {
    notice(problemText(err), true);
  }
}

async function deleteAccount() {
  if (!window.confirm(t("delete_confirm"))) return;
  try {
    await call("DELETE", "me");
  } catch (err) {
    notice(problemText(err), true);
    return;
  }
  signedOut();
  notice(t("deleted"));
  location.hash = "#signup";
}

// --- routing -------------------------------------------------------------------------------

async function route() {
  const hash = location.hash.replace(/^#/, "");
  const [name, arg] = hash.split("/");
  if (name !== "alert") {
    clearInterval(alertTimer);
    stopRing();
  }
  const open = ["signup", "signin", "code"];
  if (!session()) {
    feed.stop();
    prepareAgencyFields();
    show(open.includes(name) ? name : "signup");
    return;
  }
  feed.start();
  try {
    if (name === "alert" && arg) await alertScreen(arg);
    else if (name === "settings") await settingsScreen();
    else if (name === "credentials") await credentialsScreen();
    else if (name === "sessions") await sessionsScreen();
    else if (name === "data") show("data");
    else await home();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) signedOut();
    notice(problemText(err), true);
  }
}

function wire() {
  const onSubmit = (id, handler) =>
    $(id).addEventListener("submit", (event) => {
      event.preventDefault();
      handler(event.target);
    });
  onSubmit("#signup-form", (f) => askCode(f, "volunteers/signup"));
  onSubmit("#signin-form", (f) => askCode(f, "volunteers/signin"));
  onSubmit("#code-form", verifyCode);
  onSubmit("#settings-form", saveSettings);
  onSubmit("#credential-form", addCredential);
  onSubmit("#aftercare-form", sendAftercare);
  $("#duty-switch").addEventListener("change", (e) => setDuty(e.target.checked));
  $("#test-alert").addEventListener("click", testAlert);
  $("#export").addEventListener("click", exportData);
  $("#delete").addEventListener("click", deleteAccount);
  $("#silence").addEventListener("click", () => {
    $('[data-screen="alert"]').dataset.silenced = "1";
    stopRing();
    $("#silence").hidden = true;
  });
  $("#alert-close").addEventListener("click", () => {
    location.hash = "#home";
  });
  for (const button of document.querySelectorAll("[data-answer]")) {
    button.addEventListener("click", () => answer(button.dataset.answer));
  }
  $('#signup-form select[name="language"]').addEventListener("change", (e) => setLanguage(e.target.value));
  window.addEventListener("hashchange", route);
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.addEventListener("message", (event) => {
      const said = event.data || {};
      // A Web Push message reached this device (the worker has no token to say so itself).
      if (said.type === "pushed" && said.alert_id) feed.arrived(said.alert_id, "web_push");
      if (said.type === "stand-down" && shownAlert && shownAlert.alert_id === said.alert_id) {
        refreshAlert(said.alert_id);
      }
      if (said.type === "open-alert" && said.alert_id) {
        openedVia = "web_push";
        openAlert(said.alert_id);
      }
    });
  }
}

async function main() {
  const params = new URLSearchParams(location.search);
  if (params.get("via") === "web_push") openedVia = "web_push";
  const agency = params.get("agency");
  if (agency && /^[0-9a-f-]{36}$/i.test(agency)) localStorage.setItem(AGENCY, agency.toLowerCase());
  await setLanguage(localStorage.getItem(LANG) || navigator.language);
  $('#signup-form select[name="language"]').value = language();
  wire();
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("sw.js", { scope: "./" }).catch(() => {});
  }
  await route();
}

main();
