// The console's only script (no inline script: the CSP forbids it). On an
// organisation's page it follows the live feed (server-sent events from
// the JSON API) and re-renders the alarm list through htmx on every event.
(function () {
  "use strict";
  var live = document.getElementById("alerts");
  if (!live || !live.hasAttribute("data-feed") || typeof EventSource === "undefined") {
    return;
  }
  var status = document.getElementById("feed-status");
  var src = live.getAttribute("data-src");
  var events = ["raised", "reminder", "acknowledged", "resolved", "cancelled", "exhausted", "resync"];
  function refresh() {
    if (window.htmx) {
      window.htmx.ajax("GET", src, { target: "#alerts", swap: "innerHTML" });
    }
  }
  var es = new EventSource(live.getAttribute("data-feed"));
  events.forEach(function (name) {
    es.addEventListener(name, refresh);
  });
  es.addEventListener("open", function () {
    status.textContent = "live";
    // Whatever happened between the page's rendering and the subscription.
    refresh();
  });
  es.addEventListener("error", function () {
    status.textContent = "reconnecting…";
  });
})();
