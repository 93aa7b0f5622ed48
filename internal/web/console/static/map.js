// map.js: the console's one map module over Leaflet (vendor/leaflet.js),
// shared by the board, the alert view and the zone editor. No inline
// script: pages mark a container and their own script calls
// VigilMap.create(el).
//
// The container's data-tiles is a tile URL template ({z}/{x}/{y}); empty
// means the tile-less mode: a plain grid with a scale bar, so positions
// still show with no tile server (and no third party learns where anyone
// is). data-attribution is the tiles' attribution text.
//
//   var m = VigilMap.create(el);
//   m.setMarkers([{id, lat, lon, acc, state, label, href}]);
//       state: ok | overdue | alarm | offline | low_battery | zone
//       acc: accuracy radius in metres (a circle is drawn when > 0)
//   m.setTrail([[lat, lon], ...]);   // a line, oldest first
//   m.fit();                          // zoom to everything shown
//   m.map                             // the Leaflet map, for drawing
(function () {
  "use strict";
  if (typeof L === "undefined") {
    return;
  }

  // The grid of the tile-less mode: one canvas per tile, lines at the
  // tile's edges and quarter lines, so distances read against the scale.
  var Grid = L.GridLayer.extend({
    createTile: function (coords) {
      var tile = document.createElement("canvas");
      var size = this.getTileSize();
      tile.width = size.x;
      tile.height = size.y;
      var ctx = tile.getContext("2d");
      ctx.fillStyle = "#f4f6f8";
      ctx.fillRect(0, 0, size.x, size.y);
      ctx.strokeStyle = "#d5dbe1";
      ctx.lineWidth = 1;
      for (var i = 1; i < 4; i++) {
        var p = (size.x * i) / 4 + 0.5;
        ctx.beginPath();
        ctx.moveTo(p, 0);
        ctx.lineTo(p, size.y);
        ctx.moveTo(0, p);
        ctx.lineTo(size.x, p);
        ctx.stroke();
      }
      ctx.strokeStyle = "#aab4bf";
      ctx.strokeRect(0.5, 0.5, size.x, size.y);
      return tile;
    },
  });

  // reachable makes a marker a keyboard stop with a name: Tab reaches
  // it (its tooltip opens on focus) and Enter opens its page, as a click
  // does. Chromium makes a marker focusable anyway (Leaflet's tooltip
  // listens for focus), so it must say what it is.
  function reachable(path, m, state) {
    if (!path) {
      return;
    }
    var name = (m.label ? m.label + ": " : "") + state.replace("_", " ");
    path.setAttribute("tabindex", "0");
    path.setAttribute("role", m.href ? "link" : "img");
    path.setAttribute("aria-label", name);
    if (m.href) {
      L.DomEvent.on(path, "keydown", function (e) {
        if (e.key === "Enter") {
          window.location.assign(m.href);
        }
      });
    }
  }

  function create(el) {
    var tiles = el.getAttribute("data-tiles") || "";
    var map = L.map(el, { zoomControl: true, attributionControl: tiles !== "" });
    // Leaflet makes the container a tab stop (arrow keys pan, + and -
    // zoom): give it a role and a name.
    if (!el.hasAttribute("role")) {
      el.setAttribute("role", "group");
    }
    if (!el.hasAttribute("aria-label")) {
      el.setAttribute("aria-label", "Map (arrow keys move it, plus and minus zoom)");
    }
    if (tiles) {
      L.tileLayer(tiles, { maxZoom: 19, attribution: el.getAttribute("data-attribution") || "" }).addTo(map);
    } else {
      new Grid({ maxZoom: 22 }).addTo(map);
      el.classList.add("tileless");
    }
    L.control.scale({ imperial: false }).addTo(map);
    var lat = parseFloat(el.getAttribute("data-lat") || "51.5");
    var lon = parseFloat(el.getAttribute("data-lon") || "-0.12");
    map.setView([lat, lon], parseInt(el.getAttribute("data-zoom") || "12", 10));

    var markers = L.layerGroup().addTo(map);
    var trail = L.layerGroup().addTo(map);
    var bounds = null;

    function setMarkers(list) {
      markers.clearLayers();
      bounds = null;
      (list || []).forEach(function (m) {
        if (typeof m.lat !== "number" || typeof m.lon !== "number") {
          return;
        }
        var state = m.state || "ok";
        if (m.acc > 0) {
          L.circle([m.lat, m.lon], { radius: m.acc, className: "acc acc-" + state, interactive: false }).addTo(markers);
        }
        var dot = L.circleMarker([m.lat, m.lon], { radius: 8, className: "dot dot-" + state });
        if (m.label) {
          // Leaflet sets tooltip content as text when given a DOM node.
          var t = document.createElement("span");
          t.textContent = m.label;
          dot.bindTooltip(t);
        }
        if (m.href) {
          dot.on("click", function () {
            window.location.assign(m.href);
          });
        }
        dot.addTo(markers);
        reachable(dot.getElement(), m, state);
        var ll = L.latLng(m.lat, m.lon);
        bounds = bounds ? bounds.extend(ll) : L.latLngBounds(ll, ll);
      });
    }

    function setTrail(points) {
      trail.clearLayers();
      if (points && points.length > 1) {
        L.polyline(points, { className: "trail" }).addTo(trail);
        points.forEach(function (p) {
          var ll = L.latLng(p[0], p[1]);
          bounds = bounds ? bounds.extend(ll) : L.latLngBounds(ll, ll);
        });
      }
    }

    function fit() {
      if (bounds) {
        map.fitBounds(bounds.pad(0.3), { maxZoom: 17 });
      }
    }

    return { map: map, setMarkers: setMarkers, setTrail: setTrail, fit: fit };
  }

  window.VigilMap = { create: create };
})();
