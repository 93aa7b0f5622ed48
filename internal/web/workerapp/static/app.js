// Vigil worker app. Plain script, no build step, no inline handlers: the
// page's CSP allows only scripts from /app/. User and server text goes into
// the page with textContent only.
//
// State lives in IndexedDB ("vigil-app"): "kv" holds the phone's device
// credentials and who signed in; "queue" holds device events until the
// device API acknowledges them (2xx), in order, with their original ids
// and times.
(function () {
  "use strict";

  // A pairing link from the console's QR code: /app/#device=...&secret=...
  // Read it and take it out of the address bar at once (history, screen).
  let linked = null;
  if (location.hash.length > 1) {
    const f = new URLSearchParams(location.hash.slice(1));
    if (f.get("device") && f.get("secret")) {
      linked = { id: f.get("device"), secret: f.get("secret") };
    }
    history.replaceState(null, "", location.pathname + location.search);
  }

  const $ = (id) => document.getElementById(id);
  const HOLD_MS = 3000;
  const BATCH = 100;

  const st = {
    db: null,
    device: null, // {id, secret, org, org_name}
    user: null, // {email, person_id, orgs: [{id, name}]}
    presets: [],
    session: null,
    alarm: null, // {sent: Date, seen: bool, acked: bool, alertId}
    watch: null,
    lastPos: null,
    lastPosSent: 0,
    flushing: false,
    credsRefused: false,
    pollTimer: null,
    needLoad: false,
    batch: BATCH,
    lastSent: 0,
    battery: null, // "percent/charging" last queued
  };

  // --- IndexedDB ------------------------------------------------------------

  function openDB() {
    return new Promise((resolve, reject) => {
      const req = indexedDB.open("vigil-app", 1);
      req.onupgradeneeded = () => {
        const db = req.result;
        db.createObjectStore("kv");
        db.createObjectStore("queue", { keyPath: "seq", autoIncrement: true });
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }

  function tx(store, mode, fn) {
    return new Promise((resolve, reject) => {
      const t = st.db.transaction(store, mode);
      const s = t.objectStore(store);
      let out;
      const r = fn(s);
      if (r) r.onsuccess = () => { out = r.result; };
      t.oncomplete = () => resolve(out);
      t.onerror = () => reject(t.error);
      t.onabort = () => reject(t.error);
    });
  }

  const kvGet = (k) => tx("kv", "readonly", (s) => s.get(k));
  const kvPut = (k, v) => tx("kv", "readwrite", (s) => s.put(v, k));
  const kvDel = (k) => tx("kv", "readwrite", (s) => s.delete(k));
  const queueAll = () => tx("queue", "readonly", (s) => s.getAll());
  const queueAdd = (ev) => tx("queue", "readwrite", (s) => s.add({ ev: ev, added: Date.now() }));
  function queueDelete(seqs) {
    return tx("queue", "readwrite", (s) => { seqs.forEach((q) => s.delete(q)); return null; });
  }

  // --- small helpers --------------------------------------------------------

  function show(id, on) { $(id).hidden = !on; }

  function say(id, text) {
    const e = $(id);
    e.textContent = text || "";
    e.hidden = !text;
  }

  function log(text, bad) {
    const li = document.createElement("li");
    li.textContent = new Date().toLocaleTimeString() + " " + text;
    if (bad) li.className = "bad";
    const ul = $("log");
    ul.insertBefore(li, ul.firstChild);
    while (ul.children.length > 30) ul.removeChild(ul.lastChild);
  }

  function hhmm(iso) {
    const d = new Date(iso);
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  // api calls the JSON API with the session cookie. It resolves with
  // {status, body}; a network failure rejects.
  async function api(method, path, body) {
    const init = { method: method, credentials: "same-origin", headers: {} };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(path, init);
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (resp.status === 401 && st.user && !path.startsWith("/api/v1/auth/")) signedOut();
    return { status: resp.status, body: data };
  }

  // signedOut: the sign-in ended (expired, or ended elsewhere). The phone
  // stays paired: SOS and the queue need no sign-in, sessions do.
  function signedOut() {
    st.user = null;
    kvDel("user").catch(() => {});
    log("Signed out: sign in again to start or change sessions.", true);
    showSignIn();
  }

  function paired() {
    return !!(st.device && st.device.org);
  }

  function errOf(r) {
    return (r.body && r.body.error) || { code: "error", message: "request failed (" + r.status + ")" };
  }

  function orgName() {
    return (st.device && (st.device.org_name || st.device.org)) || "your organisation";
  }

  // --- the event queue --------------------------------------------------------

  function newEvent(type, body) {
    const ev = { v: 1, id: crypto.randomUUID(), ts: new Date().toISOString(), type: type };
    Object.assign(ev, body);
    return ev;
  }

  async function enqueue(ev) {
    await queueAdd(ev);
    await showQueue();
    flush();
  }

  async function showQueue() {
    const all = await queueAll();
    $("queue-status").textContent = all.length === 0 ? "nothing waiting" : all.length + " waiting to send";
  }

  function isAlarm(ev) {
    return ev.type === "button" && ev.button && (ev.button.kind === "sos" || ev.button.kind === "duress");
  }

  function describe(ev) {
    if (ev.type === "button") return ev.button.kind === "checkin" ? "check-in" : ev.button.kind;
    return ev.type;
  }

  // flush sends the queue to the device API: alarms first, then the
  // backlog oldest first. An event leaves the queue only on a 2xx, or
  // when the server refuses that event itself (400 naming it).
  async function flush() {
    if (st.flushing || !st.device || st.credsRefused || !navigator.onLine) return;
    st.flushing = true;
    try {
      for (;;) {
        const all = await queueAll();
        if (all.length === 0) break;
        const alarms = all.filter((q) => isAlarm(q.ev));
        const rest = all.filter((q) => !isAlarm(q.ev));
        const batch = alarms.concat(rest).slice(0, st.batch);
        let resp;
        try {
          resp = await fetch("/api/v1/devices/" + encodeURIComponent(st.device.id) + "/events", {
            method: "POST",
            credentials: "omit",
            headers: { "Content-Type": "application/json", "Authorization": "Bearer " + st.device.secret },
            body: JSON.stringify({ events: batch.map((q) => q.ev) }),
          });
        } catch (e) {
          break; // network gone: kept, retried on "online" and by the timer
        }
        if (resp.ok) {
          st.lastSent = Date.now();
          st.batch = BATCH;
          await queueDelete(batch.map((q) => q.seq));
          // Button presses only; a silent alarm leaves no trace here.
          batch.forEach((q) => {
            if (q.ev.type === "button" && q.ev.button.kind !== "duress") log("Sent: " + describe(q.ev));
          });
          continue;
        }
        let err = {};
        try { err = ((await resp.json()) || {}).error || {}; } catch (e) { err = {}; }
        if (resp.status === 401) {
          // Credentials refused: the phone needs pairing again. The queue
          // stays and goes out with the new device.
          st.credsRefused = true;
          st.device = null;
          await kvDel("device");
          log("This phone's credentials were refused: pair it again.", true);
          if (st.user) showPair(); else showSignIn();
          break;
        }
        if (resp.status === 413 && batch.length > 1) {
          st.batch = Math.max(1, Math.floor(batch.length / 2));
          continue;
        }
        if ((resp.status === 400 && err.code === "invalid_event") || resp.status === 413) {
          const m = /^events\[(\d+)\]/.exec(err.field || "");
          const bad = (m ? [batch[Number(m[1])]] : batch).filter(Boolean);
          if (bad.length === 0) break;
          await queueDelete(bad.map((q) => q.seq));
          bad.forEach((q) => log("Dropped a " + describe(q.ev) + " event: " + (err.message || "refused") +
            (err.field ? " (" + err.field + ")" : ""), true));
          continue;
        }
        break; // 5xx, 413, 503: kept for the next try
      }
    } finally {
      st.flushing = false;
      showQueue();
    }
  }

  // --- geolocation: only while a session or an alarm is active ----------------

  function wantLocation() {
    return !!(st.device && (st.session || st.alarm));
  }

  function updateLocation() {
    const want = wantLocation();
    if (want && st.watch === null && navigator.geolocation) {
      st.watch = navigator.geolocation.watchPosition(onPosition, () => {
        log("Location is not available.", true);
      }, { enableHighAccuracy: true, maximumAge: 10000, timeout: 60000 });
    } else if (!want && st.watch !== null) {
      navigator.geolocation.clearWatch(st.watch);
      st.watch = null;
      st.lastPos = null;
    }
    // A silent alarm says no more than that location is shared.
    let why = " while your session is active";
    if (st.alarm && st.alarm.silent) why = st.session ? why : "";
    else if (st.alarm) why = " while your alarm is open";
    say("geo-banner", want ? "Sharing your location with " + orgName() + why + "." : "");
  }

  function positionOf(p) {
    const c = p.coords;
    if (!isFinite(c.latitude) || !isFinite(c.longitude) || (c.latitude === 0 && c.longitude === 0)) return null;
    const pos = { lat: c.latitude, lon: c.longitude, accuracy_m: Math.min(100000, Math.max(1, c.accuracy || 1)) };
    if (c.speed !== null && c.speed >= 0 && c.speed <= 350) pos.speed_mps = c.speed;
    if (c.heading !== null && c.heading >= 0 && c.heading < 360) pos.heading_deg = c.heading;
    if (c.altitude !== null && c.altitude >= -1000 && c.altitude <= 20000) pos.altitude_m = c.altitude;
    return pos;
  }

  function onPosition(p) {
    if (!wantLocation()) return;
    const pos = positionOf(p);
    if (!pos) return;
    st.lastPos = pos;
    const now = Date.now();
    if (now - st.lastPosSent < 15000) return;
    st.lastPosSent = now;
    enqueue(newEvent("position", { position: pos }));
  }

  // tick runs every few seconds: retry the queue, and while a session or
  // an alarm is active send a heartbeat after a minute of silence.
  function tick() {
    checkPreAlert();
    if (navigator.onLine && wantLocation() && Date.now() - st.lastSent > 60000 && !st.flushing) {
      st.lastSent = Date.now();
      enqueue(newEvent("heartbeat", {}));
      return;
    }
    flush();
  }

  // watchBattery queues the battery level when it changes (where the
  // browser tells it).
  function watchBattery() {
    if (!navigator.getBattery || st.batteryWatched) return;
    st.batteryWatched = true;
    navigator.getBattery().then((b) => {
      const send = () => {
        if (!st.device) return;
        const pct = Math.max(0, Math.min(100, Math.round(b.level * 100)));
        const key = pct + "/" + b.charging;
        if (key === st.battery) return;
        st.battery = key;
        enqueue(newEvent("battery", { battery: { percent: pct, charging: !!b.charging } }));
      };
      b.addEventListener("levelchange", send);
      b.addEventListener("chargingchange", send);
      send();
    }).catch(() => {});
  }

  // --- alarms -------------------------------------------------------------------

  function raise(kind) {
    const body = { button: { kind: kind } };
    if (st.lastPos) body.position = st.lastPos;
    st.alarm = { sent: new Date(), seen: false, acked: false, alertId: null, silent: kind === "duress" };
    say("cancel-result", "");
    enqueue(newEvent("button", body));
    renderAlarm();
    updateLocation();
    pollAlerts();
  }

  function renderAlarm() {
    const a = st.alarm;
    show("alarm-state", !!a && !a.silent);
    show("help-btn", !!a && !!a.pre);
    if (!a || a.silent) return;
    $("alarm-state").classList.toggle("acked", a.acked);
    $("alarm-state").classList.toggle("pre", !!a.pre);
    if (a.pre) {
      $("alarm-text").textContent = "Are you OK? " + (a.kindText || "An alarm") + " goes to your supervisor at " +
        a.until.toLocaleTimeString() + " unless you cancel it with your PIN.";
      return;
    }
    $("alarm-text").textContent = a.acked ? "Help is being arranged." :
      "Alarm sent at " + a.sent.toLocaleTimeString() + ". Stay where it is safe; someone is being alerted.";
  }

  // checkPreAlert looks, while a session is active, for a pre-alert of
  // this worker that the server started (a detected fall, man-down or no
  // movement: the pending stage before it is raised) and offers to cancel
  // it with the PIN. The server's command for it goes over MQTT, which a
  // phone app does not speak, so the app asks the alerts API instead.
  async function checkPreAlert() {
    if (!st.session || !st.device || !st.user || (st.alarm && !st.alarm.pre) || !navigator.onLine || st.preChecking) return;
    if (Date.now() - (st.preChecked || 0) < 5000) return;
    st.preChecking = true;
    st.preChecked = Date.now();
    let r;
    try {
      r = await api("GET", "/api/v1/alerts?open=true&org=" + encodeURIComponent(st.device.org));
    } catch (e) {
      return;
    } finally {
      st.preChecking = false;
    }
    if (r.status !== 200) return;
    const pre = (r.body.alerts || []).find((x) => x.state === "pending" && (!st.user.person_id || x.person_id === st.user.person_id));
    if (!pre) {
      if (st.alarm && st.alarm.pre) {
        st.alarm = null; // raised by now (a supervisor is told) or cancelled elsewhere
        renderAlarm();
        updateLocation();
      }
      return;
    }
    if (st.alarm && st.alarm.pre && st.alarm.alertId === pre.id) return;
    const kinds = { fall: "A fall alarm", man_down: "A man-down alarm", no_motion: "A no-movement alarm" };
    st.alarm = { pre: true, alertId: pre.id, sent: new Date(), seen: true, acked: false, silent: false,
      until: pre.pending_until ? new Date(pre.pending_until) : new Date(), kindText: kinds[pre.kind] || "An alarm" };
    say("cancel-result", "");
    log("Pre-alert: cancel it with your PIN if you are OK.");
    renderAlarm();
    updateLocation();
  }

  // pollAlerts follows the open alarm: acknowledged means help is being
  // arranged; once gone from the open list it is over.
  async function pollAlerts() {
    clearTimeout(st.pollTimer);
    if (!st.alarm || !st.device) return;
    st.pollTimer = setTimeout(pollAlerts, 4000);
    if (!navigator.onLine) return;
    let r;
    try {
      r = await api("GET", "/api/v1/alerts?open=true&org=" + encodeURIComponent(st.device.org));
    } catch (e) {
      return;
    }
    if (r.status !== 200 || !st.alarm) return;
    // The alarms this phone raises: SOS and duress alerts of its wearer.
    const mine = (r.body.alerts || []).filter((x) => (x.kind === "sos" || x.kind === "duress" || x.id === st.alarm.alertId) &&
      (!st.user || !st.user.person_id || x.person_id === st.user.person_id));
    if (mine.length === 0) {
      if (st.alarm.seen) {
        st.alarm = null;
        log("The alarm is closed.");
        renderAlarm();
        updateLocation();
      }
      return;
    }
    const al = mine[0];
    st.alarm.seen = true;
    st.alarm.alertId = al.id;
    const acked = al.state === "acknowledged";
    if (acked && !st.alarm.acked) log("A supervisor acknowledged: help is being arranged.");
    st.alarm.acked = acked;
    renderAlarm();
  }

  // The SOS control: a deliberate 3-second hold, pointer or keyboard.
  function setupSOS() {
    const btn = $("sos-btn");
    const bar = $("sos-progress");
    let start = 0;
    let frame = 0;
    const tick = () => {
      if (!start) return;
      const held = Date.now() - start;
      bar.value = Math.min(HOLD_MS, held);
      if (held >= HOLD_MS) {
        stop();
        raise("sos");
        return;
      }
      frame = requestAnimationFrame(tick);
    };
    const begin = () => {
      if (start) return;
      start = Date.now();
      btn.classList.add("holding");
      frame = requestAnimationFrame(tick);
    };
    const stop = () => {
      start = 0;
      cancelAnimationFrame(frame);
      bar.value = 0;
      btn.classList.remove("holding");
    };
    btn.addEventListener("pointerdown", (e) => { e.preventDefault(); btn.setPointerCapture(e.pointerId); begin(); });
    btn.addEventListener("pointerup", stop);
    btn.addEventListener("pointercancel", stop);
    btn.addEventListener("lostpointercapture", stop);
    btn.addEventListener("contextmenu", (e) => e.preventDefault());
    btn.addEventListener("keydown", (e) => {
      if (e.key === " " || e.key === "Enter") {
        e.preventDefault();
        if (!e.repeat) begin();
      }
    });
    btn.addEventListener("keyup", (e) => { if (e.key === " " || e.key === "Enter") { e.preventDefault(); stop(); } });
    btn.addEventListener("blur", stop);
    btn.addEventListener("click", (e) => e.preventDefault());

    // The discreet alternative: a plain button, two presses within 800 ms.
    const silent = $("silent-btn");
    let armed = 0;
    silent.addEventListener("click", () => {
      const now = Date.now();
      if (armed && now - armed < 800) {
        armed = 0;
        silent.classList.remove("armed");
        raise("duress");
        // Subtle feedback only: the button's border changes for a moment.
        silent.classList.add("sent");
        setTimeout(() => silent.classList.remove("sent"), 2000);
        return;
      }
      armed = now;
      silent.classList.add("armed");
      setTimeout(() => { if (armed === now) { armed = 0; silent.classList.remove("armed"); } }, 800);
    });
  }

  // Cancel with the PIN. The answer looks the same for the duress PIN:
  // "Cancelled".
  // askHelp answers a pre-alert with "I need help": the server raises it
  // at once instead of at the end of the cancel window.
  function askHelp() {
    const a = st.alarm;
    if (!a || !a.pre) return;
    const body = { button: { kind: "help" } };
    if (st.lastPos) body.position = st.lastPos;
    enqueue(newEvent("button", body));
    st.alarm = { sent: new Date(), seen: false, acked: false, alertId: a.alertId, silent: false };
    say("cancel-result", "");
    log("Help asked: your supervisor is being alerted.");
    renderAlarm();
    updateLocation();
    pollAlerts();
  }

  async function cancelAlarm(e) {
    e.preventDefault();
    const code = $("pin").value;
    $("pin").value = "";
    const a = st.alarm;
    let viaDevice = true;
    if (a && a.alertId && navigator.onLine) {
      try {
        const r = await api("POST", "/api/v1/alerts/" + encodeURIComponent(a.alertId) + "/cancel", { code: code });
        viaDevice = false;
        if (r.status !== 200) {
          const err = errOf(r);
          say("cancel-result", "");
          log(err.code === "cancel_window_passed" ? "Too late to cancel here: a supervisor will contact you." :
            "Not cancelled: " + err.message, true);
          return;
        }
      } catch (err) {
        viaDevice = true;
      }
    }
    if (viaDevice) await enqueue(newEvent("button", { button: { kind: "cancel", code: code } }));
    st.alarm = null;
    clearTimeout(st.pollTimer);
    renderAlarm();
    updateLocation();
    say("cancel-result", "Cancelled.");
    log("Alarm cancelled.");
  }

  // --- sessions -------------------------------------------------------------------

  async function loadPresets() {
    const r = await api("GET", "/api/v1/orgs/" + encodeURIComponent(st.device.org) + "/session-presets");
    if (r.status !== 200) return;
    st.presets = r.body.presets || [];
    const sel = $("preset");
    sel.textContent = "";
    st.presets.forEach((p) => {
      const o = document.createElement("option");
      o.value = p.name;
      o.textContent = p.name + " — check in every " + Math.round(p.checkin_interval_s / 60) + " min";
      sel.appendChild(o);
    });
    presetChosen();
  }

  function presetChosen() {
    const p = st.presets.find((x) => x.name === $("preset").value);
    if (p) $("duration").value = Math.round(p.duration_s / 60);
  }

  async function loadSession() {
    const r = await api("GET", "/api/v1/sessions?active=true&org=" + encodeURIComponent(st.device.org));
    if (r.status !== 200) return;
    const mine = (r.body.sessions || []).filter((s) => !st.user || !st.user.person_id || s.person_id === st.user.person_id);
    st.session = mine.length ? mine[0] : null;
    renderSession();
  }

  function renderSession() {
    const s = st.session;
    // Kept for an offline start: the phone still knows its session.
    if (st.db) kvPut("session", s || null).catch(() => {});
    show("session-form", !s && !!st.user);
    show("session-signedout", !s && !st.user);
    show("session-active", !!s);
    if (s) {
      $("session-info").textContent = "Session until " + hhmm(s.expected_end) + (s.note ? " · " + s.note : "");
      $("session-due").textContent = s.next_checkin_due ? "Next check-in by " + hhmm(s.next_checkin_due) : "";
    }
    updateLocation();
  }

  async function startSession(e) {
    e.preventDefault();
    say("session-error", "");
    say("duration-error", "");
    say("note-error", "");
    const body = { preset: $("preset").value, note: $("note").value, device_id: st.device.id };
    const mins = Number($("duration").value);
    if ($("duration").value !== "") {
      if (!(mins >= 1 && mins <= 1440)) {
        say("duration-error", "Enter 1 to 1440 minutes.");
        return;
      }
      body.duration = mins * 60;
    }
    let r;
    try {
      r = await api("POST", "/api/v1/sessions?org=" + encodeURIComponent(st.device.org), body);
    } catch (err) {
      say("session-error", "No network: the session could not start. Try again when you are online.");
      return;
    }
    if (r.status !== 201) {
      const err = errOf(r);
      const where = { duration: "duration-error", note: "note-error" }[err.field] || "session-error";
      say(where, err.message);
      return;
    }
    st.session = r.body;
    $("note").value = "";
    log("Session started.");
    renderSession();
  }

  async function sessionAction(path, body, done) {
    say("session-error", "");
    if (!st.session) return;
    let r;
    try {
      r = await api("POST", "/api/v1/sessions/" + encodeURIComponent(st.session.id) + path, body);
    } catch (err) {
      say("session-error", "No network: try again when you are online.");
      return;
    }
    if (r.status !== 200) {
      say("session-error", errOf(r).message);
      return;
    }
    st.session = r.body.state === "active" || r.body.state === "overdue" ? r.body : null;
    log(done);
    renderSession();
  }

  // "I'm OK" is a device event: it is kept while offline and reaches the
  // server with the time it was pressed.
  async function checkIn() {
    await enqueue(newEvent("button", { button: { kind: "checkin" } }));
    log(navigator.onLine ? "Check-in sent." : "Check-in saved: it is sent when you are back online.");
    if (navigator.onLine) setTimeout(() => loadSession().catch(() => {}), 1500);
  }

  // --- sign-in and pairing ----------------------------------------------------------

  async function afterSignIn() {
    const r = await api("GET", "/api/v1/auth/me");
    if (r.status !== 200 || !r.body.mfa) {
      showSignIn();
      return;
    }
    const orgs = (r.body.orgs || []).filter((m) => m.role === "worker");
    const names = {};
    try {
      const o = await api("GET", "/api/v1/orgs");
      (o.body && o.body.orgs || []).forEach((x) => { names[x.id] = x.name; });
    } catch (e) { /* names are a nicety */ }
    st.user = { email: r.body.email, person_id: r.body.person_id, orgs: orgs.map((m) => ({ id: m.org_id, name: names[m.org_id] || m.org_id })) };
    await kvPut("user", st.user);
    if (st.device && !st.device.org) {
      // Paired by the console's QR code: the device is of the worker's
      // organisation.
      if (st.user.orgs.length > 0) {
        st.device.org = st.user.orgs[0].id;
        st.device.org_name = st.user.orgs[0].name;
        await kvPut("device", st.device);
      }
    }
    if (st.device && st.device.org) {
      startMain();
      return;
    }
    showPair();
  }

  // showSignIn shows the sign-in form; a paired phone keeps its SOS
  // control on screen below it.
  function showSignIn() {
    show("loading", false);
    show("main", paired());
    show("pair", false);
    show("signin", true);
    if (paired()) renderSession();
    show("login-form", true);
    show("totp-form", false);
    $("email").focus();
  }

  async function login(e) {
    e.preventDefault();
    say("signin-error", "");
    let r;
    try {
      r = await api("POST", "/api/v1/auth/login", { email: $("email").value, password: $("password").value });
    } catch (err) {
      say("signin-error", "No network: sign in when you are online.");
      return;
    }
    if (r.status !== 200) {
      say("signin-error", r.status === 401 ? "Wrong e-mail or password." : errOf(r).message);
      return;
    }
    if (r.body.must_enrol) {
      say("signin-error", "Set up your second factor in the console first, then sign in here.");
      return;
    }
    $("password").value = "";
    show("login-form", false);
    show("totp-form", true);
    $("code").focus();
  }

  async function totp(e) {
    e.preventDefault();
    say("signin-error", "");
    let r;
    try {
      r = await api("POST", "/api/v1/auth/totp", { code: $("code").value.trim() });
    } catch (err) {
      say("signin-error", "No network: sign in when you are online.");
      return;
    }
    $("code").value = "";
    if (r.status !== 200) {
      say("signin-error", r.status === 401 ? "Wrong or already used code: wait for the next one." : errOf(r).message);
      return;
    }
    show("signin", false);
    await afterSignIn();
  }

  function showPair() {
    show("loading", false);
    show("signin", false);
    show("main", false);
    show("pair", true);
    const sel = $("pair-org");
    sel.textContent = "";
    st.user.orgs.forEach((o) => {
      const opt = document.createElement("option");
      opt.value = o.id;
      opt.textContent = o.name;
      sel.appendChild(opt);
    });
    if (st.user.orgs.length === 0) say("pair-error", "Your account is not a worker of any organisation.");
  }

  async function pair(e) {
    e.preventDefault();
    say("pair-error", "");
    const org = $("pair-org").value;
    let r;
    try {
      r = await api("POST", "/api/v1/me/device", { org: org, name: $("pair-name").value });
    } catch (err) {
      say("pair-error", "No network: pair when you are online.");
      return;
    }
    if (r.status !== 201) {
      say("pair-error", errOf(r).message);
      return;
    }
    const o = st.user.orgs.find((x) => x.id === org);
    st.device = { id: r.body.device_id, secret: r.body.secret, org: org, org_name: o ? o.name : org };
    st.battery = null;
    st.credsRefused = false;
    await kvPut("device", st.device);
    log("This phone is paired.");
    startMain();
  }

  async function signOut() {
    try { await api("POST", "/api/v1/auth/logout", {}); } catch (e) { /* offline: the cookie ends by itself */ }
    // The phone stays paired and a running session keeps running (and
    // sharing location): "I'm OK" and SOS need no sign-in.
    await kvDel("user");
    st.user = null;
    showSignIn();
  }

  async function startMain() {
    show("loading", false);
    show("signin", !st.user);
    show("pair", false);
    show("main", true);
    $("who").textContent = (st.user ? st.user.email : "") + " · " + orgName();
    renderAlarm();
    renderSession();
    showQueue();
    flush();
    watchBattery();
    if (st.user) await loadSessionState();
  }

  // loadSessionState reads presets and the active session from the JSON
  // API when online (offline: again when the network is back).
  async function loadSessionState() {
    if (!st.device || !st.device.org) return;
    if (!navigator.onLine) {
      st.needLoad = true;
      log("Offline: sessions load when the network is back.");
      return;
    }
    st.needLoad = false;
    try {
      await loadPresets();
      await loadSession();
    } catch (e) {
      st.needLoad = true;
    }
  }

  function netStatus() {
    const on = navigator.onLine;
    const e = $("net-status");
    e.textContent = on ? "online" : "offline";
    e.classList.toggle("offline", !on);
    if (on) {
      flush();
      if (st.needLoad && st.user) loadSessionState();
    }
  }

  async function init() {
    $("login-form").addEventListener("submit", login);
    $("totp-form").addEventListener("submit", totp);
    $("pair-form").addEventListener("submit", pair);
    $("session-form").addEventListener("submit", startSession);
    $("preset").addEventListener("change", presetChosen);
    $("checkin-btn").addEventListener("click", checkIn);
    $("extend-btn").addEventListener("click", () => sessionAction("/extend", { by: "30m" }, "Session extended by 30 minutes."));
    $("end-btn").addEventListener("click", () => sessionAction("/end", {}, "Session ended."));
    $("cancel-form").addEventListener("submit", cancelAlarm);
    $("help-btn").addEventListener("click", askHelp);
    $("signout-btn").addEventListener("click", signOut);
    window.addEventListener("online", netStatus);
    window.addEventListener("offline", netStatus);
    setupSOS();
    netStatus();
    setInterval(tick, 5000);
    if ("serviceWorker" in navigator) {
      navigator.serviceWorker.register("/app/sw.js", { scope: "/app/" }).catch(() => {});
    }

    st.db = await openDB();
    if (linked) {
      st.device = { id: linked.id, secret: linked.secret, org: "", org_name: "" };
      await kvPut("device", st.device);
      linked = null;
    } else {
      st.device = (await kvGet("device")) || null;
    }
    st.user = (await kvGet("user")) || null;
    st.session = (await kvGet("session")) || null;
    showQueue();
    if (!st.user) {
      if (paired()) startMain();
      showSignIn();
      return;
    }
    if (!navigator.onLine && paired()) {
      startMain(); // offline start: the SOS and the queue work without the JSON API
      return;
    }
    try {
      await afterSignIn();
    } catch (e) {
      if (paired()) startMain(); else showSignIn();
    }
  }

  init();
})();
