// Web Push: with the volunteer's permission, this browser subscribes with the service's
// VAPID key and registers the subscription, so an alert arrives with the app closed.

import { call } from "./api.js";

function keyBytes(base64url) {
  const text = atob(base64url.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

// Called from a tap (the duty switch): browsers ask for permission only then.
export async function subscribePush() {
  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
    return "unsupported";
  }
  let key;
  try {
    key = (await call("GET", "webpush/key", undefined, { auth: false })).public_key;
  } catch {
    return "off"; // this service sends no Web Push
  }
  const permission =
    Notification.permission === "default" ? await Notification.requestPermission() : Notification.permission;
  if (permission !== "granted") return permission;
  const registration = await navigator.serviceWorker.ready;
  let subscription = await registration.pushManager.getSubscription();
  if (!subscription) {
    subscription = await registration.pushManager.subscribe({
      userVisibleOnly: true,
      applicationServerKey: keyBytes(key),
    });
  }
  const { endpoint, keys } = subscription.toJSON();
  await call("PUT", "me/devices", { kind: "web_push", endpoint, keys: { p256dh: keys.p256dh, auth: keys.auth } });
  return "subscribed";
}
