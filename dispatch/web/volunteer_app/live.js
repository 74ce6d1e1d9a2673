// New alerts reach the open app down the live stream (GET /v1/me/stream, Server-Sent
// Events read with fetch) and are acknowledged there at once ({"channel": "live"}), so
// the service holds back the push. While the stream is down the app polls its inbox
// every second; with the stream up, every 30 s as a safety net. Alerts are
// de-duplicated by id, whichever way they came.

import { call, openStream, session } from "./api.js";

const FAST_POLL_MS = 1000;
const SLOW_POLL_MS = 30_000;
const RECONNECT_MS = 3000;
const SEEN = "dispatch.seen-alerts";

function seen() {
  try {
    return new Set(JSON.parse(sessionStorage.getItem(SEEN) || "[]"));
  } catch {
    return new Set();
  }
}

function remember(ids) {
  sessionStorage.setItem(SEEN, JSON.stringify([...ids].slice(-200)));
}

// One SSE event from its lines: {event, data} (comments and unknown fields ignored).
export function parseEvent(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  return { event, data: data.join("\n") };
}

export class AlertFeed {
  constructor(onAlert, onChange, onLive) {
    this.onAlert = onAlert;
    this.onChange = onChange;
    this.onLive = onLive;
    this.timer = null;
    this.pollEvery = null;
    this.acked = new Set();
    this.live = false;
    this.abort = null;
    this.running = false;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.setPolling(FAST_POLL_MS);
    this.poll();
    this.connect();
  }

  stop() {
    this.running = false;
    clearInterval(this.timer);
    this.timer = null;
    this.pollEvery = null;
    if (this.abort) this.abort.abort();
    this.abort = null;
    this.live = false;
  }

  setPolling(every) {
    if (this.pollEvery === every) return;
    clearInterval(this.timer);
    this.pollEvery = every;
    this.timer = setInterval(() => this.poll(), every);
  }

  poke() {
    if (this.running) this.poll();
  }

  async connect() {
    while (this.running && session()) {
      this.abort = new AbortController();
      try {
        const resp = await openStream(this.abort.signal);
        await this.read(resp.body.getReader());
      } catch {
        // Down, refused or cut: poll fast, and try again shortly.
      }
      this.setLive(false);
      if (!this.running) return;
      await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
    }
  }

  setLive(live) {
    this.live = live;
    if (this.onLive) this.onLive(live);
    if (this.running) this.setPolling(live ? SLOW_POLL_MS : FAST_POLL_MS);
  }

  async read(reader) {
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        this.handle(parseEvent(buffer.slice(0, end)));
        buffer = buffer.slice(end + 2);
      }
    }
  }

  handle({ event, data }) {
    if (event === "ready") {
      this.setLive(true);
      return;
    }
    let payload;
    try {
      payload = JSON.parse(data);
    } catch {
      return;
    }
    const alertId = payload.data && payload.data.alert_id;
    if (!alertId) return;
    if (event === "alert" || event === "test") this.arrived(alertId, "live");
    else if (event === "stand_down" && this.onChange) this.onChange(alertId);
  }

  arrived(alertId, channel) {
    const known = seen();
    if (known.has(alertId)) return;
    known.add(alertId);
    remember(known);
    this.acknowledge(alertId, channel);
    this.onAlert(alertId);
  }

  async poll() {
    if (!session() || this.busy) return;
    this.busy = true;
    try {
      const { alerts } = await call("GET", "me/alerts");
      const fresh = alerts.find((a) => a.open && !seen().has(a.alert_id));
      // Found by the open app itself: the live channel, in the service's terms.
      if (fresh) this.arrived(fresh.alert_id, "live");
    } catch {
      // The next poll tries again.
    } finally {
      this.busy = false;
    }
  }

  // Tells the service this device has the alert, so it sends no push or text for it.
  acknowledge(alertId, channel = "live") {
    if (this.acked.has(alertId)) return;
    this.acked.add(alertId);
    call("POST", `alerts/${alertId}/ack`, { channel }).catch(() => this.acked.delete(alertId));
  }
}
