// SVG drawings: the incident map in a local projection, the timeline, bar charts.
import { fmtSeconds, s } from "./dom.js";

const M_PER_DEG = 111320;

// Metres east/north of an origin: exact enough across the few kilometres of one scene.
export function project(origin, lat, lon) {
  const east = (lon - origin.lon) * M_PER_DEG * Math.cos((origin.lat * Math.PI) / 180);
  const north = (lat - origin.lat) * M_PER_DEG;
  return { east, north };
}

function niceStep(span, target) {
  const raw = span / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const f of [1, 2, 5, 10]) if (f * mag >= raw) return f * mag;
  return 10 * mag;
}

// Responders not on the way have no position: drawn at their alerted distance on an even
// spread of bearings, which says how far they were and nothing about where.
function spreadBearing(i, n) {
  return (2 * Math.PI * (i + 0.5)) / Math.max(n, 1) - Math.PI / 2;
}

// An agency's tile server under a map, when it has one: Web Mercator tiles at the zoom
// closest to the map's scale, placed around the map's origin (near enough to our local
// projection across a few kilometres).
function tileLayer(template, origin, scale, size) {
  const g = s("g", { class: "tiles" });
  if (!template) return g;
  const phi = (origin.lat * Math.PI) / 180;
  const z = Math.max(0, Math.min(19, Math.round(Math.log2(156543.03392 * Math.cos(phi) * scale))));
  const n = 256 * 2 ** z;
  const ox = ((origin.lon + 180) / 360) * n;
  const oy = ((1 - Math.log(Math.tan(phi) + 1 / Math.cos(phi)) / Math.PI) / 2) * n;
  const k = ((156543.03392 * Math.cos(phi)) / 2 ** z) * scale;
  const half = size / 2;
  const span = half / k;
  const last = 2 ** z - 1;
  for (let tx = Math.floor((ox - span) / 256); tx <= Math.floor((ox + span) / 256); tx++) {
    for (let ty = Math.floor((oy - span) / 256); ty <= Math.floor((oy + span) / 256); ty++) {
      if (tx < 0 || ty < 0 || tx > last || ty > last) continue;
      const href = template.replace("{z}", z).replace("{x}", tx).replace("{y}", ty);
      g.append(
        s("image", {
          href,
          class: "tile",
          x: half + (tx * 256 - ox) * k,
          y: half + (ty * 256 - oy) * k,
          width: 256 * k,
          height: 256 * k,
          preserveAspectRatio: "none",
        }),
      );
    }
  }
  return g;
}

export function sceneMap(scene, size = 560, tileUrl = null) {
  const svg = s("svg", {
    viewBox: `0 0 ${size} ${size}`,
    width: size,
    height: size,
    role: "img",
    "aria-label": "Incident map",
    id: "scene-map",
  });
  svg.append(s("rect", { x: 0, y: 0, width: size, height: size, fill: "#fbfbfc" }));
  if (!scene.location) {
    svg.append(s("text", { x: 20, y: 30 }, "No location for this incident"));
    return svg;
  }
  const origin = scene.location;
  let reach = 200;
  for (const w of scene.waves) reach = Math.max(reach, w.radius_m || 0);
  for (const r of scene.responders) {
    reach = Math.max(reach, r.alerted_distance_m || 0);
    if (r.position) reach = Math.max(reach, r.position.distance_m);
  }
  for (const a of scene.aeds) reach = Math.max(reach, a.distance_m);
  reach *= 1.12;
  const half = size / 2;
  const scale = (half - 16) / reach;
  const at = (east, north) => [half + east * scale, half - north * scale];
  svg.append(tileLayer(tileUrl, origin, scale, size));

  const step = niceStep(reach, 3);
  for (let r = step; r < reach; r += step) {
    svg.append(s("circle", { cx: half, cy: half, r: r * scale, class: "gridline", fill: "none" }));
    svg.append(s("text", { x: half + 3, y: half - r * scale - 3, class: "lane-label" }, `${r} m`));
  }
  for (const w of scene.waves) {
    const g = s("g", { class: "wave-ring", "data-wave": w.wave });
    g.append(s("circle", { cx: half, cy: half, r: w.radius_m * scale, class: "wave" }));
    g.append(
      s(
        "text",
        { x: half + w.radius_m * scale * 0.71 + 4, y: half + w.radius_m * scale * 0.71 },
        `wave ${w.wave} · ${Math.round(w.radius_m)} m`,
      ),
    );
    svg.append(g);
  }
  for (const a of scene.aeds) {
    const p = project(origin, a.lat, a.lon);
    const [x, y] = at(p.east, p.north);
    const g = s("g", { class: "aed-marker" });
    g.append(s("rect", { x: x - 5, y: y - 5, width: 10, height: 10, class: "aed" }));
    g.append(s("title", {}, `AED ${a.name} · ${a.distance_m} m`));
    svg.append(g);
  }
  svg.append(
    s("path", {
      d: `M${half - 7} ${half - 2}h5v-5h4v5h5v4h-5v5h-4v-5h-5z`,
      class: "patient",
    }),
  );
  const still = scene.responders.filter((r) => !r.position);
  scene.responders.forEach((r) => {
    let x;
    let y;
    if (r.position) {
      const p = project(origin, r.position.lat, r.position.lon);
      [x, y] = at(p.east, p.north);
    } else {
      const angle = spreadBearing(still.indexOf(r), still.length);
      x = half + Math.cos(angle) * r.alerted_distance_m * scale;
      y = half + Math.sin(angle) * r.alerted_distance_m * scale;
    }
    const kind = r.position ? "moving" : r.state === "on_scene" ? "arrived" : "still";
    const distance = r.position ? r.position.distance_m : r.alerted_distance_m;
    const g = s("g", {
      class: `responder ${kind}`,
      "data-marker": r.marker,
      "data-state": r.state,
      "data-role": r.role,
    });
    g.append(s("circle", { cx: x, cy: y, r: 7 }));
    g.append(s("text", { x: x + 9, y: y + 4 }, `${r.marker} ${r.role} · ${r.state} · ${distance} m`));
    g.append(s("title", {}, `${r.marker}: ${r.role}, ${r.state}, ${distance} m`));
    svg.append(g);
  });
  const bar = niceStep(reach, 4);
  svg.append(s("line", { x1: 16, y1: size - 16, x2: 16 + bar * scale, y2: size - 16, stroke: "#1d2430" }));
  svg.append(s("text", { x: 16, y: size - 20 }, `${bar} m`));
  return svg;
}

// One horizontal lane per actor (the incident, each volunteer marker, each EMS unit), all
// on one axis of seconds since our receipt of the CAD call.
export function timelineChart(lanes, width = 900) {
  const laneH = 26;
  const left = 110;
  const top = 24;
  const height = top + lanes.length * laneH + 24;
  let end = 60;
  for (const lane of lanes) for (const e of lane.events) end = Math.max(end, e.t);
  end *= 1.05;
  const x = (t) => left + (Math.max(t, 0) / end) * (width - left - 20);
  const svg = s("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    "aria-label": "Timeline",
    id: "timeline-chart",
  });
  const step = niceStep(end, 8);
  const axis = s("g", { class: "axis" });
  for (let t = 0; t <= end; t += step) {
    axis.append(s("line", { x1: x(t), y1: top - 6, x2: x(t), y2: height - 20, class: "gridline" }));
    axis.append(s("text", { x: x(t) - 10, y: top - 10, class: "tick" }, `+${fmtSeconds(t)}`));
  }
  svg.append(axis);
  lanes.forEach((lane, i) => {
    const y = top + i * laneH + laneH / 2;
    const g = s("g", { class: "lane", "data-lane": lane.label });
    g.append(s("text", { x: 6, y: y + 4, class: "lane-label" }, lane.label));
    g.append(s("line", { x1: left, y1: y, x2: width - 20, y2: y, class: "gridline" }));
    // Events closer together than a label's width share the first one's label; each dot
    // keeps its own tooltip.
    let labelled = -Infinity;
    lane.events.forEach((e) => {
      const cx = x(e.t);
      g.append(
        s(
          "circle",
          { cx, cy: y, r: 5, class: `ev-${lane.kind}` },
          s("title", {}, `+${fmtSeconds(e.t)} ${e.label}`),
        ),
      );
      if (cx - labelled < 70) return;
      labelled = cx;
      const more = lane.events.filter((o) => x(o.t) >= cx && x(o.t) - cx < 70).length - 1;
      g.append(s("text", { x: cx + 7, y: y - 4, class: "tick" }, more > 0 ? `${e.label} +${more}` : e.label));
    });
    svg.append(g);
  });
  return svg;
}

// Bars per category; ``series`` is [{label, values, format}] drawn side by side.
export function barChart(categories, series, { id, width = 640, height = 220, max } = {}) {
  const left = 48;
  const bottom = 36;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", id });
  let top = max || 0;
  for (const ser of series) for (const v of ser.values) if (v !== null && v > top) top = v;
  if (top <= 0) top = 1;
  const plotH = height - bottom - 14;
  const slot = (width - left - 10) / Math.max(categories.length, 1);
  const barW = Math.max(2, (slot * 0.8) / series.length);
  const y = (v) => 14 + plotH - (v / top) * plotH;
  for (const f of [0, 0.5, 1]) {
    svg.append(s("line", { x1: left, x2: width - 10, y1: y(top * f), y2: y(top * f), class: "gridline" }));
    svg.append(s("text", { x: 2, y: y(top * f) + 4, class: "tick" }, series[0].format(top * f)));
  }
  categories.forEach((c, i) => {
    series.forEach((ser, k) => {
      const v = ser.values[i];
      if (v === null || v === undefined) return;
      const bx = left + i * slot + slot * 0.1 + k * barW;
      svg.append(
        s(
          "rect",
          { x: bx, y: y(v), width: barW, height: Math.max(0, y(0) - y(v)), class: k ? "bar alt" : "bar" },
          s("title", {}, `${c} · ${ser.label}: ${ser.format(v)}`),
        ),
      );
    });
    if (categories.length <= 24 || i % 2 === 0) {
      svg.append(s("text", { x: left + i * slot + 2, y: height - bottom + 14, class: "tick" }, c));
    }
  });
  series.forEach((ser, k) => {
    svg.append(s("rect", { x: left + k * 150, y: height - 14, width: 10, height: 10, class: k ? "bar alt" : "bar" }));
    svg.append(s("text", { x: left + k * 150 + 14, y: height - 5 }, ser.label));
  });
  return svg;
}

// Coverage cells (H3 resolution 8, ~460 m across) around their common centre, shaded by how
// many volunteers stand in each; suppressed cells are not in the answer at all.
export function coverageMap(found, size = 560, tileUrl = null) {
  const cells = found.cells || [];
  const svg = s("svg", { viewBox: `0 0 ${size} ${size}`, width: size, height: size, role: "img", id: "coverage-map" });
  svg.append(s("rect", { x: 0, y: 0, width: size, height: size, fill: "#fbfbfc" }));
  if (!cells.length) {
    svg.append(s("text", { x: 20, y: 30 }, "No cell with enough volunteers to show at this hour"));
    return svg;
  }
  const points = cells.flatMap((c) => (c.boundary && c.boundary.length ? c.boundary : [[c.lat, c.lon]]));
  const origin = {
    lat: points.reduce((a, p) => a + p[0], 0) / points.length,
    lon: points.reduce((a, p) => a + p[1], 0) / points.length,
  };
  // At least a few kilometres across, so that one cell is seen in its surroundings.
  let reach = 1500;
  for (const [lat, lon] of points) {
    const p = project(origin, lat, lon);
    reach = Math.max(reach, Math.abs(p.east), Math.abs(p.north));
  }
  reach *= 1.1;
  const half = size / 2;
  const scale = (half - 10) / reach;
  const at = (lat, lon) => {
    const p = project(origin, lat, lon);
    return [half + p.east * scale, half - p.north * scale];
  };
  svg.append(tileLayer(tileUrl, origin, scale, size));
  const top = Math.max(...cells.map((c) => c.volunteers));
  for (const c of cells) {
    const shade = 0.25 + 0.75 * (c.volunteers / top);
    const g = s("g", { class: "coverage-cell", "data-volunteers": c.volunteers });
    const title = s("title", {}, `${c.volunteers} volunteers`);
    if (c.boundary && c.boundary.length) {
      const d = c.boundary.map(([lat, lon], i) => `${i ? "L" : "M"}${at(lat, lon).join(" ")}`).join("") + "Z";
      g.append(s("path", { d, class: "cell bar", "fill-opacity": shade.toFixed(2) }, title));
      const [x, y] = at(c.lat, c.lon);
      g.append(s("text", { x: x - 4, y: y + 4 }, c.volunteers));
    } else {
      const [x, y] = at(c.lat, c.lon);
      g.append(s("circle", { cx: x, cy: y, r: Math.max(3, 230 * scale), class: "cell bar", "fill-opacity": shade.toFixed(2) }, title));
    }
    svg.append(g);
  }
  return svg;
}
