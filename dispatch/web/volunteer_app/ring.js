// The ring: a two-tone WebAudio alarm and vibration, where the platform allows them.

let context = null;
let beat = null;

// Browsers start audio only after a tap: the duty switch and sign-in taps unlock it.
export function unlockAudio() {
  try {
    context = context || new AudioContext();
    if (context.state === "suspended") context.resume();
  } catch {
    context = null;
  }
}

function tone(freq, at, length) {
  const osc = context.createOscillator();
  const gain = context.createGain();
  osc.type = "square";
  osc.frequency.value = freq;
  gain.gain.setValueAtTime(0.0001, at);
  gain.gain.exponentialRampToValueAtTime(0.3, at + 0.02);
  gain.gain.exponentialRampToValueAtTime(0.0001, at + length);
  osc.connect(gain).connect(context.destination);
  osc.start(at);
  osc.stop(at + length + 0.05);
}

export function ringing() {
  return beat !== null;
}

export function startRing() {
  if (beat !== null) return;
  const once = () => {
    if (navigator.vibrate) navigator.vibrate([400, 200, 400]);
    if (!context) return;
    if (context.state === "suspended") context.resume();
    const now = context.currentTime;
    tone(880, now, 0.35);
    tone(660, now + 0.45, 0.35);
  };
  once();
  beat = setInterval(once, 1500);
}

export function stopRing() {
  clearInterval(beat);
  beat = null;
  if (navigator.vibrate) navigator.vibrate(0);
}
