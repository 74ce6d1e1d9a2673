// Position sharing while on duty, and the small geometry the alert screen needs.

export const SEND_EVERY_MS = 30_000;
export const SEND_WHEN_MOVED_M = 50;
// Standing still, the position is re-sent now and then so the agency's freshness limit
// does not drop it while the volunteer is on duty with the app open.
export const KEEP_ALIVE_MS = 5 * 60_000;

const EARTH_M = 6_371_008.8;
const rad = (d) => (d * Math.PI) / 180;

export function distanceM(a, b) {
  const dLat = rad(b.lat - a.lat);
  const dLon = rad(b.lon - a.lon);
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(rad(a.lat)) * Math.cos(rad(b.lat)) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_M * Math.asin(Math.min(1, Math.sqrt(h)));
}

export function bearingDeg(a, b) {
  const y = Math.sin(rad(b.lon - a.lon)) * Math.cos(rad(b.lat));
  const x = Math.cos(rad(a.lat)) * Math.sin(rad(b.lat)) - Math.sin(rad(a.lat)) * Math.cos(rad(b.lat)) * Math.cos(rad(b.lon - a.lon));
  return ((Math.atan2(y, x) * 180) / Math.PI + 360) % 360;
}

export function compassPoint(deg) {
  return ["N", "NE", "E", "SE", "S", "SW", "W", "NW"][Math.round(deg / 45) % 8];
}

// Send a new fix when none was sent yet, when it moved more than 50 m from the last one
// sent, or when 30 s have passed since; a fix seen again only as a keep-alive.
export function shouldSend(lastSent, fix, nowMs, isNewFix = true) {
  if (!lastSent) return true;
  const elapsed = nowMs - lastSent.sentAt;
  if (distanceM(lastSent, fix) > SEND_WHEN_MOVED_M) return true;
  if (isNewFix) return elapsed >= SEND_EVERY_MS;
  return elapsed >= KEEP_ALIVE_MS;
}

export class DutyTracker {
  constructor(send, onChange) {
    this.send = send;
    this.onChange = onChange;
    this.watch = null;
    this.timer = null;
    this.latest = null;
    this.lastSent = null;
    this.fresh = false;
    this.sending = false;
    this.error = null;
  }

  get active() {
    return this.watch !== null;
  }

  start() {
    if (this.active || !("geolocation" in navigator)) return;
    this.watch = navigator.geolocation.watchPosition(
      (pos) => this.fix(pos),
      (err) => {
        this.error = err.code;
        this.onChange(this);
      },
      { enableHighAccuracy: true, maximumAge: 10_000, timeout: 60_000 },
    );
    this.timer = setInterval(() => this.consider(), SEND_EVERY_MS);
  }

  stop() {
    if (this.watch !== null) navigator.geolocation.clearWatch(this.watch);
    clearInterval(this.timer);
    this.watch = null;
    this.timer = null;
    this.latest = null;
    this.lastSent = null;
    this.fresh = false;
    this.onChange(this);
  }

  fix(pos) {
    this.error = null;
    this.latest = {
      lat: pos.coords.latitude,
      lon: pos.coords.longitude,
      accuracy_m: Math.max(0, Math.round(pos.coords.accuracy || 0)),
    };
    this.fresh = true;
    this.consider();
  }

  // A fix not sent yet (too soon after the last) goes at the next 30 s tick.
  async consider() {
    const fix = this.latest;
    if (!fix || !this.active || this.sending) return;
    const now = Date.now();
    if (!shouldSend(this.lastSent, fix, now, this.fresh)) return;
    this.fresh = false;
    const sent = { ...fix, sentAt: now };
    this.sending = true;
    try {
      await this.send(fix);
      this.lastSent = sent;
    } catch {
      this.fresh = true; // tried again on the next fix or tick
    } finally {
      this.sending = false;
    }
    this.onChange(this);
  }
}
