// zones.js: the zone editor. Draws the organisation's zones (GeoJSON from
// the page's data-zones: polygons, and circles as a Point with
// properties.radius_m) on the map (map.js), and, for editors, draws a new
// shape: a circle (click the centre, the radius comes from the form) or a
// polygon (click the vertices, then Finish). The shape goes into the
// form's hidden "geometry" field as GeoJSON, so saving is a plain form
// POST. Names only ever reach the page as text (tooltips get a text node).
(function () {
  "use strict";
  var el = document.getElementById("zones-map");
  if (!el || !window.VigilMap || typeof L === "undefined") {
    return;
  }
  var vm = window.VigilMap.create(el);
  var map = vm.map;
  // The layout may settle after the map was made: size it again.
  window.addEventListener("load", function () {
    map.invalidateSize();
    if (bounds) {
      map.fitBounds(bounds.pad(0.2), { maxZoom: 17 });
    }
  });
  var bounds = null;

  function extend(b) {
    if (b && b.isValid()) {
      bounds = bounds ? bounds.extend(b) : L.latLngBounds(b.getSouthWest(), b.getNorthEast());
    }
  }
  function ring(coords) {
    return (coords || []).map(function (p) {
      return [p[1], p[0]];
    });
  }
  function label(layer, name) {
    if (name) {
      var t = document.createElement("span");
      t.textContent = name;
      layer.bindTooltip(t);
    }
  }

  // named makes a drawn zone a named keyboard stop: Chromium lets Tab
  // reach it anyway (its tooltip listens for focus), so it must say what
  // it is; the tooltip opens on focus.
  function named(path, name) {
    if (path) {
      path.setAttribute("tabindex", "0");
      path.setAttribute("role", "img");
      path.setAttribute("aria-label", name);
    }
  }

  // shapeOf is a Leaflet layer for a GeoJSON geometry (radius for Points).
  function shapeOf(g, radius, opts) {
    if (!g || typeof g !== "object") {
      return null;
    }
    if (g.type === "Point" && Array.isArray(g.coordinates)) {
      return L.circle([g.coordinates[1], g.coordinates[0]], L.extend({ radius: radius || 1 }, opts));
    }
    if (g.type === "Polygon" && Array.isArray(g.coordinates)) {
      return L.polygon(g.coordinates.map(ring), opts);
    }
    if (g.type === "MultiPolygon" && Array.isArray(g.coordinates)) {
      return L.polygon(
        g.coordinates.map(function (poly) {
          return poly.map(ring);
        }),
        opts
      );
    }
    return null;
  }

  // The organisation's zones.
  var zones = { features: [] };
  try {
    zones = JSON.parse(el.getAttribute("data-zones") || "{}") || zones;
  } catch (e) {
    zones = { features: [] };
  }
  var editing = (document.querySelector('#zone-form input[name="id"]') || {}).value || "";
  var shown = L.layerGroup().addTo(map);
  (zones.features || []).forEach(function (f) {
    if (!f || f.id === editing) {
      return;
    }
    var p = f.properties || {};
    var rule = p.rule === "must_stay_inside" ? "must_stay_inside" : "must_not_enter";
    var layer = shapeOf(f.geometry, p.radius_m, { className: "zone-shape rule-" + rule });
    if (layer) {
      label(layer, p.name || f.id);
      layer.addTo(shown);
      named(layer.getElement(), "Zone " + (p.name || f.id) + " (" + rule.replace(/_/g, " ") + ")");
      extend(layer.getBounds());
    }
  });

  // Drawing (only with the editing form on the page).
  var form = document.getElementById("zone-form");
  var geom = document.getElementById("geometry");
  if (!form || !geom) {
    if (bounds) {
      map.fitBounds(bounds.pad(0.2), { maxZoom: 17 });
    }
    return;
  }
  var hint = document.getElementById("draw-hint");
  var radius = document.getElementById("zone-radius");
  var tools = {
    circle: document.getElementById("tool-circle"),
    polygon: document.getElementById("tool-polygon"),
  };
  var finish = document.getElementById("tool-finish");
  var clear = document.getElementById("tool-clear");
  var draft = L.layerGroup().addTo(map);
  var mode = null;
  var verts = [];
  var centre = null;

  function round(x) {
    return Math.round(x * 1e7) / 1e7;
  }
  function say(s) {
    if (hint) {
      hint.textContent = s;
    }
  }
  function setMode(m) {
    mode = m;
    Object.keys(tools).forEach(function (k) {
      tools[k].setAttribute("aria-pressed", String(k === m));
    });
    finish.disabled = m !== "polygon";
    el.classList.toggle("drawing", m !== null);
    if (m) {
      map.doubleClickZoom.disable();
    } else {
      map.doubleClickZoom.enable();
    }
  }
  function currentRadius() {
    var r = parseFloat(radius && radius.value);
    return r > 0 ? r : 100;
  }
  function redraw() {
    draft.clearLayers();
    if (centre) {
      L.circle(centre, { radius: currentRadius(), className: "zone-draft", interactive: false }).addTo(draft);
    }
    if (verts.length > 0) {
      var shape = verts.length >= 3 ? L.polygon(verts, { className: "zone-draft", interactive: false }) : L.polyline(verts, { className: "zone-draft", interactive: false });
      shape.addTo(draft);
      verts.forEach(function (v) {
        L.circleMarker(v, { radius: 5, className: "zone-vertex", interactive: false }).addTo(draft);
      });
    }
  }
  function store() {
    if (centre) {
      geom.value = JSON.stringify({ type: "Point", coordinates: [round(centre.lng), round(centre.lat)] });
    } else if (verts.length >= 3) {
      var r = verts.map(function (v) {
        return [round(v.lng), round(v.lat)];
      });
      r.push(r[0]);
      geom.value = JSON.stringify({ type: "Polygon", coordinates: [r] });
    } else {
      geom.value = "";
    }
  }
  function reset() {
    centre = null;
    verts = [];
    redraw();
    store();
  }

  tools.circle.addEventListener("click", function () {
    reset();
    setMode("circle");
    say("Click the centre of the circle on the map; set its radius in the form.");
  });
  tools.polygon.addEventListener("click", function () {
    reset();
    setMode("polygon");
    say("Click each corner of the polygon on the map, then Finish polygon.");
  });
  finish.addEventListener("click", function () {
    setMode(null);
    say(verts.length >= 3 ? "Polygon of " + verts.length + " corners ready: name it and save." : "A polygon needs at least 3 corners.");
  });
  clear.addEventListener("click", function () {
    reset();
    setMode(null);
    say("Cleared. Choose a tool to draw a new zone.");
  });
  if (radius) {
    radius.addEventListener("input", redraw);
  }
  map.on("click", function (e) {
    if (mode === "circle") {
      centre = e.latlng;
      setMode(null);
      say("Circle placed: set its radius, name it and save.");
    } else if (mode === "polygon") {
      verts.push(e.latlng);
      say(verts.length + (verts.length === 1 ? " corner" : " corners") + (verts.length >= 3 ? ": Finish polygon, or add more." : ": keep clicking."));
    } else {
      return;
    }
    redraw();
    store();
  });

  // A zone being edited (or a shape sent back with an error) is the draft.
  if (geom.value) {
    try {
      var g = JSON.parse(geom.value);
      if (g.type === "Point") {
        centre = L.latLng(g.coordinates[1], g.coordinates[0]);
      } else if (g.type === "Polygon") {
        verts = ring(g.coordinates[0]).slice(0, -1).map(function (p) {
          return L.latLng(p[0], p[1]);
        });
      } else {
        // A MultiPolygon keeps its shape unless redrawn.
        var layer = shapeOf(g, 0, { className: "zone-draft", interactive: false });
        if (layer) {
          layer.addTo(map);
          extend(layer.getBounds());
        }
      }
      redraw();
      draft.eachLayer(function (l) {
        if (l.getBounds) {
          extend(l.getBounds());
        }
      });
    } catch (e) {
      geom.value = "";
    }
  }
  if (bounds) {
    map.fitBounds(bounds.pad(0.2), { maxZoom: 17 });
  }
})();
