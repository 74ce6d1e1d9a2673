// New alerts reach the open app by polling /v1/me/alerts; each is acknowledged once
// (de-duplicated by alert id) and opened.

import { call, session } from "./api.js";

const POLL_MS = 1000;
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

export class AlertFeed {
  constructor(onAlert) {
    this.onAlert = onAlert;
    this.timer = null;
    this.acked = new Set();
  }

  start() {
    if (this.timer !== null) return;
    this.timer = setInterval(() => this.poll(), POLL_MS);
    this.poll();
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }

  poke() {
    if (this.timer !== null) this.poll();
  }

  async poll() {
    if (!session() || this.busy) return;
    this.busy = true;
    try {
      const { alerts } = await call("GET", "me/alerts");
      const known = seen();
      for (const alert of alerts) {
        if (!alert.open || known.has(alert.alert_id)) continue;
        known.add(alert.alert_id);
        remember(known);
        this.acknowledge(alert.alert_id);
        this.onAlert(alert.alert_id);
        break;
      }
    } catch {
      // The next poll tries again.
    } finally {
      this.busy = false;
    }
  }

  // Tells the server this device has the alert, so it does not fall back to a text.
  acknowledge(alertId) {
    if (this.acked.has(alertId)) return;
    this.acked.add(alertId);
    call("POST", `alerts/${alertId}/ack`).catch(() => this.acked.delete(alertId));
  }
}
