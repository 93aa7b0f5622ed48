// alert.js: the alert view. Draws the alert's position (with its accuracy
// circle) and the wearer's recent trail on the map (map.js), and follows
// the organisation's live feed: an event about this alert (or a resync)
// re-renders the state, escalation and timeline part through htmx. No
// inline script (CSP); text from users and devices only ever goes in as
// text (Leaflet tooltips get a text node from map.js).
(function () {
  "use strict";

  var el = document.getElementById("alert-map");
  if (el && window.VigilMap) {
    var m = window.VigilMap.create(el);
    var lat = parseFloat(el.getAttribute("data-lat"));
    var lon = parseFloat(el.getAttribute("data-lon"));
    var acc = parseFloat(el.getAttribute("data-acc") || "0");
    var trail = [];
    try {
      trail = JSON.parse(el.getAttribute("data-trail") || "[]") || [];
    } catch (e) {
      trail = [];
    }
    m.setMarkers([{ id: "alert", lat: lat, lon: lon, acc: acc, state: "alarm", label: el.getAttribute("data-label") || "" }]);
    m.setTrail(trail);
    m.fit();
    // The layout may settle after the map was made: size it again.
    window.addEventListener("load", function () {
      m.map.invalidateSize();
      m.fit();
    });
  }

  var live = document.getElementById("alert-live");
  if (!live || !live.hasAttribute("data-feed") || typeof EventSource === "undefined") {
    return;
  }
  var status = document.getElementById("feed-status");
  var id = live.getAttribute("data-alert");
  var src = live.getAttribute("data-src");
  var history = document.getElementById("alert-history");
  function refresh() {
    if (window.htmx) {
      window.htmx.ajax("GET", src, { target: "#alert-live", swap: "innerHTML" });
      if (history && history.hasAttribute("data-src")) {
        window.htmx.ajax("GET", history.getAttribute("data-src"), { target: "#alert-history", swap: "innerHTML" });
      }
    }
  }
  function onEvent(ev) {
    var data = null;
    try {
      data = JSON.parse(ev.data);
    } catch (e) {
      data = null;
    }
    if (ev.type === "resync" || (data && data.alert_id === id)) {
      refresh();
    }
  }
  var es = new EventSource(live.getAttribute("data-feed"));
  ["raised", "reminder", "acknowledged", "resolved", "cancelled", "exhausted", "resync"].forEach(function (name) {
    es.addEventListener(name, onEvent);
  });
  es.addEventListener("open", function () {
    if (status) {
      status.textContent = "live";
    }
  });
  es.addEventListener("error", function () {
    if (status) {
      status.textContent = "reconnecting…";
    }
  });
})();
