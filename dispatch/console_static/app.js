// The console: sign-in, routing, the live board and the incident page.
import { sceneMap, timelineChart } from "./charts.js";
import { ApiError, api, clear, errorBox, fmtSeconds, fmtTime, h, session } from "./dom.js";
import { feedsPage, rejectedPage, settingsPage, volunteersPage } from "./pages.js";
import { incidentsPage, reportsPage } from "./reports.js";

const main = document.getElementById("main");
let stopPage = () => {};

function showChrome(signedIn) {
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("signout").hidden = !signedIn;
  document.getElementById("who").textContent = signedIn ? session.name : "";
}

async function loadSession() {
  try {
    const me = await api("/console/session");
    session.csrf = me.csrf_token;
    session.agencyId = me.agency_id;
    session.name = me.supervisor_name;
    const settings = await api(`/v1/agencies/${me.agency_id}/settings`);
    session.tileUrl = settings.map_tile_url || null;
    return true;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return false;
    throw err;
  }
}

function signInPage() {
  showChrome(false);
  const error = h("span", { class: "field-error", id: "token-error" });
  const input = h("input", {
    type: "password",
    id: "token",
    name: "token",
    autocomplete: "off",
    required: true,
  });
  const form = h(
    "form",
    { class: "signin panel", id: "signin-form" },
    h("h1", {}, "Sign in"),
    h("label", { for: "token" }, "Supervisor token"),
    input,
    error,
    h("p", {}, h("button", { type: "submit", class: "primary" }, "Sign in")),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    try {
      await api("/console/session", { method: "POST", body: { token: input.value } });
      input.value = "";
      // Loaded again with the cookie: the page's policy then names the agency's tile server.
      location.hash = "#/board";
      location.reload();
    } catch (err) {
      error.textContent = err.message;
    }
  });
  clear(main).append(form);
}

// --- live board ------------------------------------------------------------------------

function age(receivedAt, now) {
  return fmtSeconds((now - new Date(receivedAt).getTime()) / 1000);
}

function unitBadges(units) {
  if (!units.length) return h("span", { class: "muted" }, "none");
  return units.map((u) => h("span", { class: `badge ${u.status}` }, `${u.unit_id}: ${u.status}`));
}

function boardPage() {
  const status = h("p", { class: "status stale", id: "board-status" }, "connecting…");
  const body = h("tbody", { id: "board-rows" });
  const table = h(
    "table",
    { id: "board" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", {}, "Incident"),
        h("th", {}, "Call type"),
        h("th", {}, "Address"),
        h("th", { class: "num" }, "Age"),
        h("th", {}, "State"),
        h("th", { class: "num" }, "Alerted"),
        h("th", { class: "num" }, "Accepted"),
        h("th", { class: "num" }, "En route"),
        h("th", { class: "num" }, "On scene"),
        h("th", {}, "EMS units"),
      ),
    ),
    body,
  );
  clear(main).append(h("h1", {}, "Live board"), status, table);
  let latest = null;
  const draw = () => {
    clear(body);
    if (!latest) return;
    const now = Date.now();
    if (!latest.incidents.length) {
      body.append(h("tr", {}, h("td", { colspan: 10, class: "muted" }, "No active incidents")));
    }
    for (const inc of latest.incidents) {
      const v = inc.volunteers;
      body.append(
        h(
          "tr",
          { "data-incident": inc.incident_id, class: inc.is_test ? "test" : null },
          h("td", {}, h("a", { href: `#/incident/${inc.incident_id}` }, inc.source_incident_id)),
          h("td", {}, inc.call_type.text || inc.call_type.code),
          h("td", {}, inc.address || ""),
          h("td", { class: "num age", "data-received": inc.received_at }, age(inc.received_at, now)),
          h("td", {}, inc.state),
          h("td", { class: "num", "data-count": "alerted" }, v.alerted),
          h("td", { class: "num", "data-count": "accepted" }, v.accepted),
          h("td", { class: "num", "data-count": "en_route" }, v.en_route),
          h("td", { class: "num", "data-count": "on_scene" }, v.on_scene),
          h("td", {}, unitBadges(inc.units)),
        ),
      );
    }
  };
  const source = new EventSource("/console/events");
  source.addEventListener("board", (ev) => {
    latest = JSON.parse(ev.data);
    status.className = "status live";
    status.textContent = `live · updated ${new Date().toLocaleTimeString()}`;
    draw();
  });
  source.addEventListener("end", () => {
    source.close();
    // The stream ends when the session might have: ask before reconnecting.
    loadSession().then((ok) => (ok ? route() : signInPage()));
  });
  source.onerror = () => {
    status.className = "status stale";
    status.textContent = "reconnecting…";
  };
  const ticker = setInterval(() => {
    const now = Date.now();
    for (const cell of body.querySelectorAll("td.age")) {
      cell.textContent = age(cell.dataset.received, now);
    }
  }, 1000);
  return () => {
    source.close();
    clearInterval(ticker);
  };
}

// --- incident page ---------------------------------------------------------------------

const INCIDENT_EVENTS = new Set([
  "incident_received",
  "alerting_started",
  "wave_started",
  "matched",
  "incident_state",
  "incident_updated",
  "incident_closed",
  "not_alertable",
]);

function lanesFor(timeline, scene, receivedAt) {
  const t0 = new Date(receivedAt).getTime();
  const rel = (iso) => (new Date(iso).getTime() - t0) / 1000;
  const markers = new Map(scene.responders.map((r) => [r.alert_id, r.marker]));
  const incident = { label: "Incident", kind: "incident", events: [] };
  const volunteers = new Map(scene.responders.map((r) => [r.marker, { label: r.marker, kind: "volunteer", events: [] }]));
  const units = new Map();
  for (const e of timeline.events) {
    const t = rel(e.at);
    if (e.event === "unit_status") {
      const id = (e.details && e.details.unit_id) || "unit";
      if (!units.has(id)) units.set(id, { label: `EMS ${id}`, kind: "ems", events: [] });
      units.get(id).events.push({ t, label: e.details.status });
    } else if (e.alert_id && markers.has(e.alert_id)) {
      volunteers.get(markers.get(e.alert_id)).events.push({ t, label: e.event.replace(/^alert_/, "") });
    } else if (INCIDENT_EVENTS.has(e.event)) {
      incident.events.push({ t, label: e.event.replace(/^incident_/, "") });
    }
  }
  return [incident, ...volunteers.values(), ...units.values()];
}

function metricsList(m) {
  const rows = [
    ["Received", fmtTime(m.received_at)],
    ["First alert sent", fmtSeconds(m.seconds_to_first_alert_sent)],
    ["First accept", fmtSeconds(m.seconds_to_first_accept)],
    ["First volunteer on scene", fmtSeconds(m.seconds_to_first_volunteer_on_scene)],
    ["First EMS on scene", fmtSeconds(m.seconds_to_first_ems_on_scene)],
    ["Volunteer before EMS", m.volunteer_before_ems === null ? "–" : m.volunteer_before_ems ? "yes" : "no"],
    ["Volunteer lead", fmtSeconds(m.volunteer_lead_seconds)],
  ];
  return h("dl", { class: "metrics", id: "metrics" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

async function incidentPage(incidentId) {
  clear(main).append(h("p", {}, "Loading incident…"));
  const id = encodeURIComponent(incidentId);
  const [scene, timeline, metrics] = await Promise.all([
    api(`/v1/incidents/${id}/scene`),
    api(`/v1/incidents/${id}/timeline`),
    api(`/v1/incidents/${id}/metrics`),
  ]);
  const receivedAt = metrics.received_at || scene.received_at;
  const t0 = new Date(receivedAt).getTime();
  const markers = new Map(scene.responders.map((r) => [r.alert_id, r.marker]));
  const rows = timeline.events.map((e) =>
    h(
      "tr",
      {},
      h("td", { class: "num" }, `+${fmtSeconds((new Date(e.at).getTime() - t0) / 1000)}`),
      h("td", {}, e.event),
      h("td", {}, markers.get(e.alert_id) || (e.details && e.details.unit_id ? `EMS ${e.details.unit_id}` : "")),
      h("td", { class: "muted" }, describe(e.details)),
    ),
  );
  const responders = scene.responders.map((r) =>
    h(
      "tr",
      { "data-marker": r.marker },
      h("td", {}, r.marker),
      h("td", {}, r.role),
      h("td", {}, r.state),
      h("td", { class: "num" }, r.wave),
      h("td", { class: "num" }, r.position ? `${r.position.distance_m} m (now)` : `${r.alerted_distance_m} m`),
    ),
  );
  clear(main).append(
    h("h1", {}, `Incident ${scene.source_incident_id}`, scene.is_test ? " (test)" : ""),
    h(
      "p",
      { class: "muted" },
      `${scene.call_type.text || scene.call_type.code} · ${scene.address || "no address"} · ${scene.status} · ${scene.state} · received ${fmtTime(receivedAt)}`,
    ),
    h(
      "div",
      { class: "grid2" },
      h("div", { class: "panel" }, h("h2", {}, "Map"), sceneMap(scene, 560, session.tileUrl)),
      h(
        "div",
        { class: "panel" },
        h("h2", {}, "Metrics"),
        metricsList(metrics),
        h("h2", {}, "Volunteers"),
        h(
          "table",
          { id: "responders" },
          h("thead", {}, h("tr", {}, ["Marker", "Role", "State", "Wave", "Distance"].map((t) => h("th", {}, t)))),
          h("tbody", {}, responders),
        ),
        h("h2", {}, "EMS units"),
        h("p", {}, unitBadges(scene.units)),
      ),
    ),
    h("div", { class: "panel" }, h("h2", {}, "Timeline (from CAD receipt)"), timelineChart(lanesFor(timeline, scene, receivedAt))),
    h(
      "table",
      { id: "timeline" },
      h("thead", {}, h("tr", {}, ["Time", "Event", "Who", "Details"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows),
    ),
  );
}

function describe(details) {
  if (!details) return "";
  return Object.entries(details)
    .filter(([, v]) => v !== null && typeof v !== "object")
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
}

// --- routing ---------------------------------------------------------------------------

const PAGES = {
  board: () => boardPage(),
  incident: (arg) => incidentPage(arg),
  incidents: () => incidentsPage(main),
  reports: () => reportsPage(main),
  volunteers: () => volunteersPage(main),
  feeds: () => feedsPage(main),
  rejected: () => rejectedPage(main),
  settings: () => settingsPage(main),
};

async function route() {
  stopPage();
  stopPage = () => {};
  if (!session.agencyId && !(await loadSession())) {
    signInPage();
    return;
  }
  showChrome(true);
  const [, name = "board", arg] = location.hash.split("/");
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("current", link.getAttribute("href") === `#/${name}`);
  }
  const page = PAGES[name] || PAGES.board;
  try {
    const stop = await page(arg && decodeURIComponent(arg));
    if (typeof stop === "function") stopPage = stop;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      // Signed out elsewhere, or idle too long: back to the sign-in form.
      session.agencyId = null;
      signInPage();
      return;
    }
    clear(main).append(errorBox(err));
  }
}

window.addEventListener("hashchange", route);
window.addEventListener("signed-out", () => {
  session.agencyId = null;
  session.csrf = null;
});
document.getElementById("signout").addEventListener("click", async () => {
  try {
    await api("/console/session", { method: "DELETE" });
  } finally {
    session.agencyId = null;
    session.csrf = null;
    stopPage();
    location.hash = "#/board";
    signInPage();
  }
});
route();
