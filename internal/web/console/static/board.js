// board.js: the live board and the wall screen (board.html, wall.html),
// and the locked console they turn into when the sign-in session ends.
//
// Live: the alarm queue and the sessions are server-rendered fragments,
// fetched again on every feed event (the API's server-sent events) and on
// every (re)connection, and swapped in through htmx; the map's markers
// come as JSON every 15 s and on feed events. Countdowns tick every second
// from data-due (server time; data-now gives the server's clock, so a
// skewed client clock does not matter).
//
// Locked: when a fragment or the positions answer 401 (session idle or
// ended), everything personal is cleared from the page and a lock screen
// polls the locked alarms (lock cookie only) every 2 s: count, kind,
// severity, state and time; nothing else. New alarms still sound and
// notify there. Once the browser is signed in again (another tab), the
// page reloads into the full board.
//
// Sound needs a user gesture first: the button says "Click to enable
// sound" until then. Notifications carry the kind and time only.
(function () {
  "use strict";
  var root = document.getElementById("board");
  if (!root) {
    return;
  }
  var feedURL = root.getAttribute("data-feed");
  var queueURL = root.getAttribute("data-queue");
  var sessionsURL = root.getAttribute("data-sessions");
  var positionsURL = root.getAttribute("data-positions");
  var lockedURL = root.getAttribute("data-locked");
  var status = document.getElementById("feed-status");
  var queueEl = document.getElementById("board-queue");
  var sessionsEl = document.getElementById("board-sessions");
  var soundBtn = document.getElementById("board-sound");
  var notifyBtn = document.getElementById("board-notify");
  var noMark = document.getElementById("board-nomark");
  var lockScreen = document.getElementById("lock-screen");
  var lockCount = document.getElementById("lock-count");
  var lockList = document.getElementById("lock-alarms");

  // offset is server time minus client time, in ms.
  var offset = 0;
  function syncClock(iso) {
    var t = Date.parse(iso || "");
    if (!isNaN(t)) {
      offset = t - Date.now();
    }
  }
  syncClock(root.getAttribute("data-now"));

  var locked = false;
  var alarming = false; // some alarm raised and not acknowledged
  var seen = null; // keys of alarms already announced (null: first look)

  // ---- sound ----
  var audio = null;
  var soundOn = false;
  var beeps = 0;
  function soundLabel() {
    if (!audio) {
      soundBtn.textContent = "Click to enable sound";
      soundBtn.classList.toggle("attention", alarming);
    } else {
      soundBtn.textContent = soundOn ? "Sound on" : "Sound off";
      soundBtn.classList.remove("attention");
    }
    soundBtn.setAttribute("aria-pressed", soundOn ? "true" : "false");
  }
  soundBtn.addEventListener("click", function () {
    var AC = window.AudioContext || window.webkitAudioContext;
    if (!AC) {
      soundBtn.textContent = "No sound in this browser";
      soundBtn.disabled = true;
      return;
    }
    if (!audio) {
      audio = new AC();
      soundOn = true;
    } else {
      soundOn = !soundOn;
    }
    if (audio.state === "suspended") {
      audio.resume();
    }
    soundLabel();
    if (soundOn && alarming) {
      beep();
    }
  });
  function beep() {
    if (!audio || !soundOn) {
      return;
    }
    var t = audio.currentTime;
    [0, 0.35].forEach(function (d) {
      var o = audio.createOscillator();
      var g = audio.createGain();
      o.type = "square";
      o.frequency.value = 880;
      g.gain.setValueAtTime(0.0001, t + d);
      g.gain.exponentialRampToValueAtTime(0.3, t + d + 0.02);
      g.gain.exponentialRampToValueAtTime(0.0001, t + d + 0.25);
      o.connect(g);
      g.connect(audio.destination);
      o.start(t + d);
      o.stop(t + d + 0.3);
    });
    beeps++;
    soundBtn.setAttribute("data-beeps", String(beeps));
  }
  setInterval(function () {
    if (alarming) {
      beep();
    }
  }, 3000);

  // ---- notifications ----
  var notified = 0;
  function notifyLabel() {
    if (!("Notification" in window)) {
      notifyBtn.hidden = true;
      return;
    }
    var p = Notification.permission;
    notifyBtn.textContent = p === "granted" ? "Notifications on" : p === "denied" ? "Notifications blocked" : "Enable notifications";
    notifyBtn.disabled = p !== "default";
  }
  notifyBtn.addEventListener("click", function () {
    if ("Notification" in window) {
      Promise.resolve(Notification.requestPermission()).then(notifyLabel, notifyLabel);
    }
  });
  notifyLabel();
  function notify(kind, raised) {
    notified++;
    root.setAttribute("data-notified", String(notified));
    if (!("Notification" in window) || Notification.permission !== "granted") {
      return;
    }
    try {
      // Minimal information: the kind and the time, never a name.
      new Notification("Vigil: new alarm", { body: kind + " at " + shortTime(raised), tag: "vigil-" + kind + "-" + raised });
    } catch (e) {
      // Some browsers allow notifications only from a service worker.
    }
  }
  function shortTime(iso) {
    return String(iso || "").replace("T", " ").replace("Z", " UTC");
  }

  // announce updates the alarm state from a list of {key, kind, raised,
  // state}: sound while one is raised, a notification per new one.
  function announce(list) {
    alarming = list.some(function (a) {
      return a.state === "raised";
    });
    var first = seen === null;
    var now = {};
    list.forEach(function (a) {
      now[a.key] = true;
      if (!first && !seen[a.key]) {
        notify(a.kind, a.raised);
      }
    });
    seen = now;
    soundLabel();
  }
  function announceQueue() {
    var rows = queueEl.querySelectorAll("tr[data-alert]");
    announce(
      Array.prototype.map.call(rows, function (r) {
        return {
          key: r.getAttribute("data-kind") + "|" + r.getAttribute("data-raised"),
          kind: r.getAttribute("data-kind"),
          raised: r.getAttribute("data-raised"),
          state: r.getAttribute("data-state"),
        };
      })
    );
  }

  // ---- map ----
  var mapEl = document.getElementById("board-map");
  var map = window.VigilMap && mapEl ? window.VigilMap.create(mapEl) : null;
  var fitted = false;

  // ---- fetching ----
  function get(url) {
    return fetch(url, { credentials: "same-origin", cache: "no-store", headers: { "HX-Request": "true" } }).then(function (r) {
      if (r.status === 401) {
        lock();
        throw new Error("locked");
      }
      if (!r.ok) {
        throw new Error("HTTP " + r.status);
      }
      return r;
    });
  }
  function swap(el, html) {
    if (window.htmx && window.htmx.swap) {
      window.htmx.swap(el, html, { swapStyle: "innerHTML" });
    } else {
      // Without htmx the fragment is still the server's escaped HTML.
      var doc = new DOMParser().parseFromString(html, "text/html");
      el.replaceChildren.apply(el, Array.prototype.slice.call(doc.body.childNodes));
    }
  }
  // seq numbers each element's requests: an older answer arriving after a
  // newer one is dropped.
  var seq = {};
  function fragment(url, el, after) {
    if (!url || !el || locked) {
      return Promise.resolve();
    }
    var n = (seq[el.id] = (seq[el.id] || 0) + 1);
    return get(url)
      .then(function (r) {
        return r.text();
      })
      .then(function (html) {
        if (locked || n !== seq[el.id]) {
          return;
        }
        swap(el, html);
        var inner = el.querySelector("[data-now]");
        if (inner) {
          syncClock(inner.getAttribute("data-now"));
        }
        if (after) {
          after();
        }
      })
      .catch(function () {});
  }
  function refreshQueue() {
    return fragment(queueURL, queueEl, announceQueue);
  }
  function refreshSessions() {
    return fragment(sessionsURL, sessionsEl, tick);
  }
  function refreshPositions() {
    if (!positionsURL || locked) {
      return Promise.resolve();
    }
    var n = (seq.positions = (seq.positions || 0) + 1);
    return get(positionsURL)
      .then(function (r) {
        return r.json();
      })
      .then(function (data) {
        if (locked || n !== seq.positions) {
          return;
        }
        syncClock(data.now);
        var ms = data.markers || [];
        if (noMark) {
          noMark.hidden = ms.length > 0;
        }
        root.setAttribute("data-markers", String(ms.length));
        if (map) {
          map.setMarkers(ms);
          if (!fitted && ms.length > 0) {
            map.fit();
            fitted = true;
          }
        }
      })
      .catch(function () {});
  }
  function refreshAll() {
    refreshQueue();
    refreshSessions();
    refreshPositions();
  }

  // An acknowledgement from the queue: show the new state at once.
  document.body.addEventListener("htmx:afterRequest", function (ev) {
    var elt = ev.detail && ev.detail.elt;
    if (!elt || !queueEl.contains(elt)) {
      return;
    }
    if (ev.detail.xhr && ev.detail.xhr.status === 401) {
      lock();
      return;
    }
    refreshQueue();
  });

  // ---- countdowns ----
  function two(n) {
    return (n < 10 ? "0" : "") + n;
  }
  function span(ms) {
    var s = Math.floor(Math.abs(ms) / 1000);
    var h = Math.floor(s / 3600);
    var m = Math.floor((s % 3600) / 60);
    return (h > 0 ? h + ":" + two(m) : String(m)) + ":" + two(s % 60);
  }
  function tick() {
    if (!sessionsEl || locked) {
      return;
    }
    var now = Date.now() + offset;
    sessionsEl.querySelectorAll(".countdown[data-due]").forEach(function (el) {
      var due = Date.parse(el.getAttribute("data-due"));
      if (isNaN(due)) {
        return;
      }
      var left = due - now;
      el.textContent = left >= 0 ? "in " + span(left) : "overdue by " + span(left);
      el.classList.toggle("late", left < 0);
    });
  }
  tick();
  var ticker = setInterval(tick, 1000);

  // ---- live feed and polling ----
  var es = null;
  var timers = [setInterval(refreshPositions, 15000)];
  if (!feedURL || typeof EventSource === "undefined") {
    timers.push(setInterval(function () {
      refreshQueue();
      refreshSessions();
    }, 15000));
  }
  function connect() {
    if (!feedURL || typeof EventSource === "undefined" || locked) {
      return;
    }
    es = new EventSource(feedURL);
    ["raised", "reminder", "acknowledged", "resolved", "cancelled", "exhausted", "resync"].forEach(function (name) {
      es.addEventListener(name, refreshAll);
    });
    es.addEventListener("open", function () {
      status.textContent = "live";
      refreshAll();
    });
    es.addEventListener("error", function () {
      if (locked) {
        return;
      }
      status.textContent = "reconnecting…";
      // A feed refused (session ended) closes for good: find out why.
      var closed = es.readyState === EventSource.CLOSED;
      refreshQueue().then(function () {
        if (closed && !locked) {
          setTimeout(connect, 5000);
        }
      });
    });
  }
  announceQueue();
  refreshPositions();
  connect();

  // ---- the locked console ----
  var lockTimer = null;
  function lock() {
    if (locked) {
      return;
    }
    locked = true;
    if (es) {
      es.close();
    }
    timers.forEach(clearInterval);
    clearInterval(ticker);
    // Nothing personal stays on a locked screen.
    queueEl.replaceChildren();
    if (sessionsEl) {
      sessionsEl.replaceChildren();
    }
    if (map) {
      map.setMarkers([]);
    }
    var nav = document.querySelector("nav.menu");
    if (nav) {
      nav.replaceChildren();
    }
    document.body.classList.add("locked");
    root.hidden = true;
    lockScreen.hidden = false;
    document.title = "Locked · Vigil console";
    // The lock screen keeps the sound button (and its state) visible.
    lockScreen.insertBefore(soundBtn, lockCount);
    pollLocked();
    lockTimer = setInterval(pollLocked, 2000);
  }
  var polls = 0;
  function pollLocked() {
    // Signed in again (in another tab): back to the full board.
    if (++polls % 5 === 0) {
      fetch(queueURL, { credentials: "same-origin", cache: "no-store", headers: { "HX-Request": "true" } })
        .then(function (r) {
          if (r.ok) {
            window.location.reload();
          }
        })
        .catch(function () {});
    }
    fetch(lockedURL, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) {
          clearInterval(lockTimer);
          alarming = false;
          soundLabel();
          lockList.replaceChildren();
          lockCount.textContent = "Signed out: sign in again to watch alarms.";
          lockCount.classList.remove("alarm");
          return null;
        }
        return r.ok ? r.json() : null;
      })
      .then(function (data) {
        if (!data) {
          return;
        }
        var list = data.alarms || [];
        lockList.replaceChildren();
        list.forEach(function (a) {
          var li = document.createElement("li");
          li.className = "state-" + String(a.state).replace(/[^a-z_]/g, "");
          li.textContent = a.kind + " · " + a.severity + " · " + a.state + " · " + shortTime(a.raised_at);
          lockList.appendChild(li);
        });
        var n = data.count || 0;
        lockCount.textContent = n === 0 ? "No open alarms." : n === 1 ? "1 open alarm" : n + " open alarms";
        lockCount.classList.toggle("alarm", n > 0);
        announce(
          list.map(function (a) {
            return { key: a.kind + "|" + a.raised_at, kind: a.kind, raised: a.raised_at, state: a.state };
          })
        );
      })
      .catch(function () {
        lockCount.textContent = "Server unreachable; retrying…";
      });
  }
})();
