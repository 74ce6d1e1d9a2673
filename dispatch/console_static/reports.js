// Reports: activation rates by month, times by hour of day, the coverage map, exports; the
// incident list with its filters.
import { barChart, coverageMap } from "./charts.js";
import { ApiError, agencyPath, api, clear, errorBox, fmtPct, fmtSeconds, fmtTime, h, session } from "./dom.js";

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

function rangeForm(id, extra = []) {
  const today = new Date();
  const yearAgo = new Date(today.getTime() - 364 * 86400 * 1000);
  return h(
    "form",
    { class: "filters", id },
    h("label", {}, "From ", h("input", { type: "date", name: "from", value: isoDay(yearAgo) })),
    h("label", {}, "To ", h("input", { type: "date", name: "to", value: isoDay(today) })),
    extra,
    h("button", { type: "submit" }, "Show"),
    h("span", { class: "field-error form" }),
  );
}

function paramsOf(form) {
  const params = new URLSearchParams();
  for (const [k, v] of new FormData(form)) if (v) params.append(k, v);
  return params;
}

// A refused query names the parameter; the message goes next to the form.
function showRefusal(form, err) {
  const slot = form.querySelector(".field-error.form");
  const names = err instanceof ApiError ? (err.problem["invalid-params"] || []).map((p) => p.name) : [];
  slot.textContent = names.length ? `${names.join(", ")}: ${err.message}` : err.message;
}

export async function reportsPage(main) {
  const form = rangeForm("report-range");
  const out = h("div", { id: "report" });
  const hour = h("select", { name: "hour", id: "coverage-hour" });
  const days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
  for (let i = 0; i < 168; i++) {
    hour.append(h("option", { value: i }, `${days[Math.floor(i / 24)]} ${String(i % 24).padStart(2, "0")}:00`));
  }
  const now = new Date();
  hour.value = String(((now.getDay() + 6) % 7) * 24 + now.getHours());
  const coverage = h("div", { id: "coverage" });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    show(form, out);
  });
  hour.addEventListener("change", () => showCoverage(hour.value, coverage));
  clear(main).append(
    h("h1", {}, "Reports"),
    form,
    out,
    h("div", { class: "panel" }, h("h2", {}, "Coverage: available, verified volunteers by hour of the week"), h("p", {}, hour), coverage),
  );
  await Promise.all([show(form, out), showCoverage(hour.value, coverage)]);
}

async function show(form, out) {
  const params = paramsOf(form);
  form.querySelector(".field-error.form").textContent = "";
  clear(out).append(h("p", {}, "Loading…"));
  try {
    const report = await api(agencyPath(`/reports/activations?${params}`));
    clear(out).append(...activations(report, params));
  } catch (err) {
    clear(out);
    showRefusal(form, err);
  }
}

function activations(report, params) {
  const months = report.by_month;
  const hours = report.by_hour;
  const t = report.total;
  const csv = new URLSearchParams(params);
  csv.set("format", "csv");
  const incidentsCsv = new URLSearchParams(params);
  incidentsCsv.set("format", "csv");
  incidentsCsv.set("limit", "1000");
  const totals = [
    ["Activations", t.activations],
    ["Without an alert", t.activations_without_alert],
    ["Alerts sent", t.alerts_sent],
    ["Acceptance rate", fmtPct(t.acceptance_rate)],
    ["A volunteer on scene", fmtPct(t.volunteer_on_scene_rate)],
    ["Volunteer before EMS", fmtPct(t.volunteer_before_ems_rate)],
    ["Median lead over EMS", fmtSeconds(t.median_lead_s)],
    ["Median to first alert", fmtSeconds(t.median_s_to_first_alert)],
    ["Median to first accept", fmtSeconds(t.median_s_to_first_accept)],
    ["Median to first volunteer on scene", fmtSeconds(t.median_s_to_first_volunteer_on_scene)],
    ["Median to first EMS on scene", fmtSeconds(t.median_s_to_first_ems_on_scene)],
    ["Excluded", t.excluded],
    ["Alerts per volunteer (median / p90)", `${t.alerts_per_volunteer_median ?? "–"} / ${t.alerts_per_volunteer_p90 ?? "–"}`],
  ];
  const exclusions = Object.entries(t.exclusions || {}).filter(([, n]) => n);
  return [
    h(
      "div",
      { class: "panel" },
      h("h2", {}, `Totals (${report.time_zone})`),
      h("dl", { class: "metrics", id: "report-totals" }, totals.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "–")])),
      exclusions.length ? h("p", { class: "muted" }, "Exclusions: ", exclusions.map(([r, n]) => `${r} ${n}`).join(", ")) : null,
      h(
        "p",
        {},
        "Export: ",
        h("a", { href: agencyPath(`/reports/activations?${csv}`), download: "activations.csv", id: "export-activations-csv" }, "activations CSV"),
        " · ",
        h("a", { href: agencyPath(`/reports/activations?${params}`), id: "export-activations-json", target: "_blank" }, "activations JSON"),
        " · ",
        h("a", { href: agencyPath(`/incidents?${incidentsCsv}`), download: "incidents.csv", id: "export-incidents-csv" }, "incidents CSV"),
        " · ",
        h("a", { href: agencyPath(`/reports/utstein.csv?${params}`), download: "utstein.csv", id: "export-utstein-csv" }, "Utstein CSV (registry)"),
      ),
    ),
    h(
      "div",
      { class: "panel" },
      h("h2", {}, "Rates by month"),
      barChart(
        months.map((m) => m.month),
        [
          { label: "acceptance", values: months.map((m) => m.acceptance_rate), format: fmtPct },
          { label: "volunteer before EMS", values: months.map((m) => m.volunteer_before_ems_rate), format: fmtPct },
        ],
        { id: "chart-months", max: 1 },
      ),
    ),
    h(
      "div",
      { class: "panel" },
      h("h2", {}, "Median times from CAD receipt by hour of day"),
      barChart(
        hours.map((x) => String(x.hour)),
        [
          { label: "first alert", values: hours.map((x) => x.median_s_to_first_alert), format: fmtSeconds },
          { label: "first accept", values: hours.map((x) => x.median_s_to_first_accept), format: fmtSeconds },
        ],
        { id: "chart-hours" },
      ),
    ),
  ];
}

async function showCoverage(hour, out) {
  try {
    const found = await api(agencyPath(`/reports/coverage?hour=${encodeURIComponent(hour)}`));
    clear(out).append(coverageMap(found, 560, session.tileUrl));
  } catch (err) {
    clear(out).append(errorBox(err));
  }
}

// --- incident list ---------------------------------------------------------------------

const STATES = ["", "received", "alerting", "responders_en_route", "ems_on_scene", "closed", "cancelled"];

export async function incidentsPage(main) {
  const form = rangeForm("incident-filters", [
    h("label", {}, "State ", h("select", { name: "state" }, STATES.map((s) => h("option", { value: s }, s || "any")))),
    h("label", {}, "Cardiac arrest ", h("select", { name: "cardiac_arrest" }, ["", "true", "false"].map((s) => h("option", { value: s }, s || "any")))),
    h("label", {}, "Test ", h("select", { name: "test" }, ["", "false", "true"].map((s) => h("option", { value: s }, s || "any")))),
    h("label", {}, "Search ", h("input", { type: "text", name: "q", placeholder: "address or number" })),
  ]);
  const out = h("div", { id: "incident-list" });
  const load = async (cursor) => {
    const params = paramsOf(form);
    form.querySelector(".field-error.form").textContent = "";
    if (cursor) params.set("cursor", cursor);
    try {
      const page = await api(agencyPath(`/incidents?${params}`));
      const csv = new URLSearchParams(params);
      csv.set("format", "csv");
      clear(out).append(
        h("p", {}, h("a", { href: agencyPath(`/incidents?${csv}`), download: "incidents.csv" }, "Export this page as CSV")),
        h(
          "table",
          { id: "incidents" },
          h("thead", {}, h("tr", {}, ["Received", "Number", "Call type", "Address", "State", "Alerted", "Accepted", "On scene"].map((t) => h("th", {}, t)))),
          h(
            "tbody",
            {},
            page.incidents.map((i) =>
              h(
                "tr",
                { "data-incident": i.incident_id, class: i.test ? "test" : null },
                h("td", {}, fmtTime(i.received_at)),
                h("td", {}, h("a", { href: `#/incident/${i.incident_id}` }, i.incident_number || i.incident_id)),
                h("td", {}, i.call_type),
                h("td", {}, i.address || ""),
                h("td", {}, i.state),
                h("td", { class: "num" }, i.alerted),
                h("td", { class: "num" }, i.accepted),
                h("td", { class: "num" }, i.on_scene),
              ),
            ),
          ),
        ),
        page.next_cursor ? h("p", {}, h("button", { type: "button", onclick: () => load(page.next_cursor) }, "Older")) : null,
      );
    } catch (err) {
      clear(out);
      showRefusal(form, err);
    }
  };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    load(null);
  });
  clear(main).append(h("h1", {}, "Incidents"), form, out);
  await load(null);
}
