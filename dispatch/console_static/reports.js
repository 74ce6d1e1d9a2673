// Reports: activation rates by month, times by hour of day, the coverage map, exports.
import { barChart } from "./charts.js";
import { agencyPath, api, clear, errorBox, fmtPct, fmtSeconds, h } from "./dom.js";

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

export async function reportsPage(main) {
  const to = new Date();
  const from = new Date(to.getTime() - 365 * 86400 * 1000);
  const form = h(
    "form",
    { class: "filters", id: "report-range" },
    h("label", {}, "From ", h("input", { type: "date", name: "from", value: isoDay(from) })),
    h("label", {}, "To ", h("input", { type: "date", name: "to", value: isoDay(new Date(to.getTime() + 86400 * 1000)) })),
    h("button", { type: "submit" }, "Show"),
  );
  const out = h("div", { id: "report" });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    show(form, out);
  });
  clear(main).append(h("h1", {}, "Reports"), form, out);
  await show(form, out);
}

async function show(form, out) {
  const params = new URLSearchParams();
  for (const [k, v] of new FormData(form)) if (v) params.set(k, v);
  clear(out).append(h("p", {}, "Loading…"));
  try {
    const report = await api(agencyPath(`/reports/activations?${params}`));
    clear(out).append(...activations(report, params));
    out.append(await coverage());
  } catch (err) {
    clear(out).append(errorBox(err));
  }
}

function activations(report, params) {
  const months = report.by_month || [];
  const hours = report.by_hour || [];
  const t = report.totals || report;
  const csv = agencyPath(`/reports/activations?${params}&format=csv`);
  return [
    h(
      "div",
      { class: "panel" },
      h("h2", {}, "Totals"),
      h(
        "dl",
        { class: "metrics", id: "report-totals" },
        h("dt", {}, "Activations"), h("dd", {}, t.activations ?? "–"),
        h("dt", {}, "Alerts sent"), h("dd", {}, t.alerts_sent ?? "–"),
        h("dt", {}, "Acceptance rate"), h("dd", {}, fmtPct(t.acceptance_rate)),
        h("dt", {}, "Volunteer on scene"), h("dd", {}, fmtPct(t.volunteer_on_scene_rate)),
        h("dt", {}, "Volunteer before EMS"), h("dd", {}, fmtPct(t.volunteer_before_ems_rate)),
      ),
      h(
        "p",
        {},
        h("a", { href: csv, download: "activations.csv", id: "export-activations-csv" }, "Export CSV"),
        " · ",
        h("a", { href: agencyPath(`/reports/activations?${params}`), id: "export-activations-json" }, "JSON"),
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
      h("h2", {}, "Median times by hour of day (from CAD receipt)"),
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

async function coverage() {
  return h("div", { class: "panel" }, h("h2", {}, "Coverage"));
}
