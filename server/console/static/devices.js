// Live device list and device page: the admin event stream says which screen changed, and
// only that screen's row (or panel) is fetched again, at most once a second.
(function () {
  "use strict";
  var rows = document.querySelector("[data-live-rows]");
  var page = document.querySelector("[data-device-page]");
  var note = document.querySelector("[data-live-status]");
  if (!rows && !page) return;
  var pageId = page ? page.getAttribute("data-device-page") : null;
  var dirty = new Set();
  var everything = false;
  var timer = null;

  function say(text) { if (note) note.textContent = text; }

  function swapRows(ids) {
    var url = "/devices/rows" + (ids.length ? "?" + ids.map(function (id) {
      return "id=" + encodeURIComponent(id);
    }).join("&") : "");
    return fetch(url, { credentials: "same-origin" }).then(function (r) {
      if (r.status === 401) { window.location.reload(); return null; }
      return r.ok ? r.text() : null;
    }).then(function (html) {
      if (html === null) return;
      var holder = document.createElement("tbody");
      holder.innerHTML = html;
      var seen = new Set();
      Array.prototype.forEach.call(holder.querySelectorAll("tr[data-device]"), function (tr) {
        var id = tr.getAttribute("data-device");
        seen.add(id);
        var old = document.getElementById("device-" + id);
        if (old) old.replaceWith(tr); else rows.append(tr);
      });
      var gone = ids.length ? ids : Array.prototype.map.call(
        rows.querySelectorAll("tr[data-device]"), function (tr) { return tr.getAttribute("data-device"); });
      gone.forEach(function (id) {
        if (!seen.has(id)) { var tr = document.getElementById("device-" + id); if (tr) tr.remove(); }
      });
      var empty = document.getElementById("no-devices");
      if (empty && rows.querySelector("tr[data-device]")) empty.remove();
    });
  }

  function refreshPanel() {
    var panel = document.querySelector("[data-live-panel]");
    return fetch("/devices/" + encodeURIComponent(pageId) + "/panel", { credentials: "same-origin" })
      .then(function (r) {
        if (r.status === 404) { say("This screen was revoked."); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html === null) return;
        panel.innerHTML = html;
        var at = panel.querySelector("[data-screenshot-at]");
        var stamp = at ? at.getAttribute("data-screenshot-at") : "";
        var img = document.getElementById("screenshot");
        if (stamp && img && img.getAttribute("data-shown") !== stamp) {
          img.src = "/devices/" + encodeURIComponent(pageId) + "/screenshot.png?t=" + encodeURIComponent(stamp);
          img.setAttribute("data-shown", stamp);
          img.hidden = false;
          var none = document.getElementById("no-screenshot");
          if (none) none.remove();
        }
      });
  }

  function flush() {
    timer = null;
    var ids = Array.from(dirty);
    var all = everything;
    dirty.clear();
    everything = false;
    if (rows) swapRows(all ? [] : ids);
    if (page && (all || ids.indexOf(pageId) >= 0)) refreshPanel();
  }

  function mark(id) {
    if (id === null) everything = true; else dirty.add(id);
    if (timer === null) timer = setTimeout(flush, 1000);
  }

  if (page) {
    var img = document.getElementById("screenshot");
    var at = document.querySelector("[data-screenshot-at]");
    if (img && at) img.setAttribute("data-shown", at.getAttribute("data-screenshot-at"));
  }

  var source = new EventSource("/console/events");
  source.addEventListener("open", function () {
    say("Live: updates as screens report.");
    mark(null); // (re)connected: whatever happened while away is fetched once
  });
  source.addEventListener("error", function () { say("Live updates interrupted; reconnecting…"); });
  // Signed out (here or in another tab), expired, or a new admin token: back to sign-in.
  source.addEventListener("signed-out", function () { source.close(); window.location.reload(); });
  ["device", "heartbeat", "screenshot", "command_result"].forEach(function (name) {
    source.addEventListener(name, function (event) {
      try { mark(JSON.parse(event.data).device_id); } catch (e) { mark(null); }
    });
  });
  window.addEventListener("pagehide", function () { source.close(); });
})();
