// The reports page's charts (uPlot, vendored): it fetches the month's
// report as JSON from the console (data-src of #chart-within) and draws
// the share acknowledged within each limit against the targets, and the
// alerts and false alarms per kind. The tables on the page carry the same numbers, so the
// charts add nothing a screen reader misses. No inline script or style:
// sizes are set from here.
(function () {
  "use strict";
  var within = document.getElementById("chart-within");
  if (!within || typeof uPlot === "undefined") {
    return;
  }
  var kindsEl = document.getElementById("chart-kinds");

  function width(el) {
    return Math.max(320, Math.min(960, el.clientWidth || 640));
  }

  function pct(v) {
    return v === null || v === undefined ? null : Math.round(v * 1000) / 10;
  }

  function drawWithin(rep) {
    var total = rep.total || {};
    var aw = total.acknowledged_within || [];
    var xs = aw.map(function (w) { return w.within_s; });
    var got = aw.map(function (w) { return pct(w.share); });
    var want = xs.map(function (x) {
      var t = (total.targets || []).filter(function (t) { return t.within_s === x; })[0];
      return t ? Math.round(t.want * 1000) / 10 : null;
    });
    var opts = {
      title: "Acknowledged within (% of raised alerts)",
      width: width(within),
      height: 260,
      scales: { x: { time: false }, y: { range: [0, 100] } },
      axes: [
        { label: "acknowledged within (seconds)", splits: function () { return xs; },
          values: function (u, vals) { return vals.map(function (v) { return v + " s"; }); } },
        { label: "%" }
      ],
      series: [
        { label: "within", value: function (u, v) { return v === null ? "--" : v + " s"; } },
        { label: "got (%)", stroke: "#12355b", width: 2, points: { size: 8, fill: "#12355b" } },
        { label: "target (%)", stroke: "#a30000", width: 0, points: { size: 10, fill: "#a30000" }, paths: function () { return null; } }
      ]
    };
    return new uPlot(opts, [xs, got, want], within);
  }

  function drawKinds(rep) {
    var kinds = rep.kinds || [];
    if (!kindsEl) {
      return;
    }
    if (kinds.length === 0) {
      var p = document.createElement("p");
      p.className = "empty";
      p.textContent = "No alerts in this month.";
      kindsEl.appendChild(p);
      return;
    }
    var names = kinds.map(function (k) { return k.kind; });
    var xs = names.map(function (_, i) { return i; });
    function col(f) { return kinds.map(function (k) { return k[f]; }); }
    // Two bars a kind, side by side: alerts (left of the tick) and false
    // alarms (right); the table below has every other number.
    function s(label, colour, align) {
      var o = { label: label, stroke: colour, fill: colour, width: 1, points: { show: false } };
      if (uPlot.paths && uPlot.paths.bars) {
        o.paths = uPlot.paths.bars({ size: [0.3, 48], align: align });
      }
      return o;
    }
    var opts = {
      title: "Alerts and false alarms by kind",
      width: width(kindsEl),
      height: 260,
      scales: { x: { time: false, range: [-0.5, names.length - 0.5] }, y: { range: function (u, min, max) { return [0, Math.max(1, max)]; } } },
      axes: [
        { splits: function () { return xs; }, values: function (u, vals) { return vals.map(function (v) { return names[v] || ""; }); } },
        { label: "alerts" }
      ],
      series: [
        { label: "kind", value: function (u, v) { return v === null ? "--" : names[v] || ""; } },
        s("alerts", "#12355b", -1),
        s("false alarms and cancellations", "#a30000", 1)
      ]
    };
    var falseOnes = kinds.map(function (k) { return (k.false_alarms || 0) + (k.cancelled || 0); });
    return new uPlot(opts, [xs, col("alerts"), falseOnes], kindsEl);
  }

  fetch(within.getAttribute("data-src"), { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (r) {
      if (!r.ok) {
        throw new Error("report " + r.status);
      }
      return r.json();
    })
    .then(function (rep) {
      drawWithin(rep);
      drawKinds(rep);
    })
    .catch(function () {
      var p = document.createElement("p");
      p.className = "error";
      p.textContent = "The charts could not be drawn; the tables below have every number.";
      within.appendChild(p);
    });
})();
