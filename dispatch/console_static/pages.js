// Feeds, rejected documents, the volunteer roster, settings and policy.
import { ApiError, agencyPath, api, clear, fmtTime, h } from "./dom.js";

function table(id, headings, rows) {
  return h(
    "table",
    { id },
    h("thead", {}, h("tr", {}, headings.map((t) => h("th", {}, t)))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: headings.length, class: "muted" }, "Nothing to show"))),
  );
}

export async function feedsPage(main) {
  const { feeds } = await api(agencyPath("/feeds"));
  clear(main).append(
    h("h1", {}, "CAD feeds"),
    table(
      "feeds",
      ["Name", "Status", "Last poll", "Last success", "Result", "Failures", "Items", "Refused", "Last error"],
      feeds.map((f) =>
        h(
          "tr",
          { "data-feed": f.feed_id },
          h("td", {}, f.name, h("br"), h("span", { class: "muted" }, f.url || "")),
          h("td", {}, h("span", { class: `badge ${f.status}` }, f.status)),
          h("td", {}, fmtTime(f.last_poll_at)),
          h("td", {}, fmtTime(f.last_ok_at)),
          h("td", {}, f.last_result || "–"),
          h("td", { class: "num" }, f.consecutive_failures),
          h("td", { class: "num" }, f.items_seen ?? "–"),
          h("td", { class: "num" }, f.items_refused ?? "–"),
          h("td", {}, f.last_error || ""),
        ),
      ),
    ),
  );
}

export async function rejectedPage(main, before = null) {
  const query = before ? `?before=${before}` : "";
  const { documents } = await api(agencyPath(`/rejected-documents${query}`));
  const rows = documents.map((d) =>
    h(
      "tr",
      { "data-document": d.id },
      h("td", {}, fmtTime(d.received_at)),
      h("td", {}, d.endpoint),
      h("td", { class: "num" }, d.status),
      h("td", {}, d.problem_type),
      h("td", {}, d.detail, d.pointer ? h("span", { class: "muted" }, ` at ${d.pointer}`) : null),
      h("td", { class: "num" }, d.size_bytes),
      h("td", {}, d.body ? h("details", {}, h("summary", {}, "body"), h("pre", {}, d.body)) : ""),
    ),
  );
  const last = documents.length ? documents[documents.length - 1].id : null;
  clear(main).append(
    h("h1", {}, "Rejected documents"),
    table("rejected", ["Received", "Endpoint", "Status", "Problem", "Detail", "Bytes", "Document"], rows),
    last && documents.length >= 50
      ? h("p", {}, h("button", { type: "button", onclick: () => rejectedPage(main, last) }, "Older"))
      : null,
  );
}

// --- roster ----------------------------------------------------------------------------

const ROSTER_FILTERS = [
  { name: "tier", label: "Tier", options: ["", "lay", "professional"] },
  { name: "verified", label: "Verified", options: ["", "true", "false"] },
  { name: "on_duty", label: "On duty", options: ["", "true", "false"] },
];

export async function volunteersPage(main) {
  const form = h("form", { class: "filters", id: "roster-filters" });
  for (const f of ROSTER_FILTERS) {
    form.append(
      h(
        "label",
        {},
        `${f.label} `,
        h("select", { name: f.name }, f.options.map((o) => h("option", { value: o }, o || "any"))),
      ),
    );
  }
  form.append(
    h("label", {}, "Certificate expires before ", h("input", { type: "date", name: "certificate_expires_before" })),
    h("button", { type: "submit" }, "Filter"),
  );
  const out = h("div", { id: "roster" });
  const problem = h("span", { class: "field-error" });
  form.append(problem);
  const load = async (cursor) => {
    problem.textContent = "";
    const params = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) params.set(k, v);
    if (cursor) params.set("cursor", cursor);
    try {
      const page = await api(agencyPath(`/volunteers?${params}`));
      const items = page.volunteers || page.items || [];
      clear(out).append(
        table(
          "roster-table",
          ["Id", "Name", "Tier", "Verified", "Available", "On duty", "Certified until"],
          items.map((v) =>
            h(
              "tr",
              { "data-volunteer": v.volunteer_id },
              h("td", { class: "num" }, v.volunteer_id),
              h("td", {}, v.display_name),
              h("td", {}, v.tier),
              h("td", {}, v.verified ? "yes" : "no"),
              h("td", {}, v.available ? "yes" : "no"),
              h("td", {}, v.on_duty ? "yes" : "no"),
              h("td", {}, fmtTime(v.certified_until)),
            ),
          ),
        ),
        page.next_cursor
          ? h("p", {}, h("button", { type: "button", onclick: () => load(page.next_cursor) }, "Next page"))
          : null,
      );
    } catch (err) {
      problem.textContent = err.message;
    }
  };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    load(null);
  });
  clear(main).append(h("h1", {}, "Volunteers"), form, out);
  await load(null);
}

// --- settings and policy ---------------------------------------------------------------

// A refusal names the field by JSON Pointer; its message goes next to that field.
function showProblem(form, err) {
  for (const node of form.querySelectorAll(".field-error")) node.textContent = "";
  const pointer = err instanceof ApiError ? err.problem.pointer || "" : "";
  const field = pointer.split("/")[1] || "";
  const slot = form.querySelector(`.field-error[data-for="${CSS.escape(field)}"]`) || form.querySelector(".field-error.form");
  slot.textContent = pointer && field ? `${err.message} (${pointer})` : err.message;
}

function fieldFor(name, value) {
  const err = h("span", { class: "field-error", "data-for": name });
  let input;
  if (typeof value === "boolean") {
    input = h("input", { type: "checkbox", name, id: `f-${name}`, checked: value, "data-kind": "bool" });
  } else if (typeof value === "number") {
    input = h("input", { type: "number", step: "any", name, id: `f-${name}`, value, "data-kind": "number" });
  } else if (value !== null && typeof value === "object") {
    input = h("textarea", { name, id: `f-${name}`, "data-kind": "json" });
    input.value = JSON.stringify(value, null, 2);
  } else if (name.endsWith("_cert") || (typeof value === "string" && value.includes("\n"))) {
    input = h("textarea", { name, id: `f-${name}`, "data-kind": "text" });
    input.value = value ?? "";
  } else {
    input = h("input", { type: "text", name, id: `f-${name}`, "data-kind": "text" });
    input.value = value ?? "";
  }
  return h("div", { class: "field" }, h("label", { for: `f-${name}` }, name), input, err);
}

function readField(input) {
  switch (input.dataset.kind) {
    case "bool":
      return input.checked;
    case "number":
      return input.value === "" ? null : Number(input.value);
    case "json":
      return JSON.parse(input.value);
    default:
      return input.value === "" ? null : input.value;
  }
}

function editor({ id, title, data, skip, send }) {
  const form = h("form", { class: "panel", id });
  const initial = {};
  form.append(h("h2", {}, title));
  for (const [name, value] of Object.entries(data)) {
    if (skip.includes(name)) continue;
    initial[name] = JSON.stringify(value);
    form.append(fieldFor(name, value));
  }
  const note = h("span", { class: "muted", role: "status" });
  form.append(h("p", {}, h("button", { type: "submit", class: "primary" }, "Save"), " ", note), h("span", { class: "field-error form" }));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    note.textContent = "";
    const values = {};
    for (const input of form.querySelectorAll("[name]")) {
      try {
        values[input.name] = readField(input);
      } catch (_) {
        showProblem(form, new ApiError(422, { pointer: `/${input.name}`, detail: "is not valid JSON" }));
        return;
      }
    }
    try {
      await send(values, initial);
      for (const node of form.querySelectorAll(".field-error")) node.textContent = "";
      note.textContent = "Saved.";
    } catch (err) {
      showProblem(form, err);
    }
  });
  return form;
}

export async function settingsPage(main) {
  const [settings, policy] = await Promise.all([api(agencyPath("/settings")), api(agencyPath("/policy"))]);
  const settingsForm = editor({
    id: "settings-form",
    title: "Agency settings",
    data: settings,
    skip: ["agency_id", "name"],
    send: async (values, initial) => {
      const changed = {};
      for (const [k, v] of Object.entries(values)) if (JSON.stringify(v) !== initial[k]) changed[k] = v;
      if (!Object.keys(changed).length) return;
      const now = await api(agencyPath("/settings"), { method: "PATCH", body: changed });
      for (const [k, v] of Object.entries(now)) initial[k] = JSON.stringify(v);
    },
  });
  const policyForm = editor({
    id: "policy-form",
    title: `Alert policy (version ${policy.version})`,
    data: policy,
    skip: ["version"],
    send: async (values) => {
      const saved = await api(agencyPath("/policy"), { method: "PUT", body: values });
      policyForm.querySelector("h2").textContent = `Alert policy (version ${saved.version})`;
    },
  });
  clear(main).append(h("h1", {}, "Settings and policy"), h("div", { class: "grid2" }, settingsForm, policyForm));
}


