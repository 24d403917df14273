// Chunked, resumable uploads from the media page (the admin API's upload protocol).
// A session survives a cut connection and a page reload: its id is kept per file (name,
// size, modification time), and after an error the server is asked which bytes it has.
(function () {
  "use strict";
  var PARALLEL = 2;
  var MAX_ATTEMPTS = 12;
  var input = document.querySelector("[data-upload-input]");
  var zone = document.querySelector("[data-dropzone]");
  var list = document.querySelector("[data-upload-list]");
  if (!input || !zone || !list) return;
  var CHUNK = parseInt(zone.getAttribute("data-chunk-bytes"), 10) || 1024 * 1024;
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var queue = [];
  var running = 0;

  function HttpError(status, message) {
    this.status = status;
    this.message = message;
  }

  function api(method, url, body, headers) {
    var all = { "X-CSRF-Token": csrf, Accept: "application/json" };
    Object.keys(headers || {}).forEach(function (k) { all[k] = headers[k]; });
    return fetch(url, { method: method, body: body, headers: all, credentials: "same-origin" })
      .then(function (response) {
        var type = response.headers.get("content-type") || "";
        var parsed = type.indexOf("json") >= 0 ? response.json() : Promise.resolve(null);
        return parsed.then(function (data) {
          if (!response.ok) {
            var text = (data && (data.detail || data.title)) || "HTTP " + response.status;
            throw new HttpError(response.status, text);
          }
          return data;
        });
      });
  }

  function retryable(error) {
    // fetch rejects with a TypeError when the connection fails; 5xx and 429 are worth a retry.
    return !(error instanceof HttpError) || error.status >= 500 || error.status === 429;
  }

  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  function firstGap(status) {
    var at = 0;
    for (var i = 0; i < status.received.length; i++) {
      var range = status.received[i];
      if (range[0] > at) return [at, range[0]];
      at = Math.max(at, range[1]);
    }
    return at < status.size ? [at, status.size] : null;
  }

  function keyOf(file) { return "signage-upload:" + file.name + ":" + file.size + ":" + file.lastModified; }

  function session(file) {
    var saved = null;
    try { saved = localStorage.getItem(keyOf(file)); } catch (e) { saved = null; }
    var fresh = function () {
      var body = JSON.stringify({ size: file.size, name: file.name.slice(0, 255) });
      return api("POST", "/media/uploads", body, { "Content-Type": "application/json" })
        .then(function (status) {
          try { localStorage.setItem(keyOf(file), status.upload_id); } catch (e) { /* private mode */ }
          return status;
        });
    };
    if (!saved) return fresh();
    return api("GET", "/media/uploads/" + encodeURIComponent(saved)).catch(function (error) {
      if (error instanceof HttpError && (error.status === 404 || error.status === 410)) return fresh();
      throw error;
    });
  }

  function row(file) {
    var li = document.createElement("li");
    var name = document.createElement("span");
    name.className = "file";
    name.textContent = file.name;
    var bar = document.createElement("progress");
    bar.max = file.size || 1;
    bar.value = 0;
    bar.setAttribute("aria-label", "Upload of " + file.name);
    var state = document.createElement("span");
    state.className = "state";
    state.setAttribute("role", "status");
    state.textContent = "waiting";
    li.append(name, bar, state);
    list.append(li);
    return {
      progress: function (bytes) {
        bar.value = bytes;
        state.textContent = Math.floor((100 * bytes) / (file.size || 1)) + " %";
      },
      say: function (text, kind) {
        state.textContent = text;
        li.className = kind || "";
      },
    };
  }

  async function upload(file, ui) {
    var status = null;
    var attempts = 0;
    var url = null;
    for (;;) {
      try {
        if (status === null) {
          status = await session(file);
          url = "/media/uploads/" + encodeURIComponent(status.upload_id);
          ui.progress(status.received_bytes);
        }
        var gap = status.status === "completed" ? null : firstGap(status);
        if (gap === null) {
          var media = await api("POST", url + "/complete");
          try { localStorage.removeItem(keyOf(file)); } catch (e) { /* private mode */ }
          ui.progress(file.size);
          ui.say("done", "done");
          return media;
        }
        var end = Math.min(gap[1], gap[0] + CHUNK);
        status = await api("PUT", url, file.slice(gap[0], end), {
          "Content-Type": "application/octet-stream",
          "Content-Range": "bytes " + gap[0] + "-" + (end - 1) + "/" + file.size,
        });
        ui.progress(status.received_bytes);
        attempts = 0;
      } catch (error) {
        attempts += 1;
        if (!retryable(error) || attempts > MAX_ATTEMPTS) {
          ui.say("failed: " + error.message, "failed");
          try { localStorage.removeItem(keyOf(file)); } catch (e) { /* private mode */ }
          throw error;
        }
        var wait = Math.min(15000, 500 * Math.pow(2, attempts - 1));
        ui.say("connection lost, resuming in " + Math.ceil(wait / 1000) + " s", "retrying");
        await sleep(wait);
        status = null; // ask the server what it has, then send only the rest
      }
    }
  }

  function refreshLibrary() {
    return fetch("/media/table", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(new Error("HTTP " + r.status)); })
      .then(function (html) { document.querySelector("[data-media-rows]").innerHTML = html; })
      .catch(function () { /* the next upload or a reload refreshes it */ });
  }

  function pump() {
    while (running < PARALLEL && queue.length) {
      var job = queue.shift();
      running += 1;
      upload(job.file, job.ui)
        .catch(function () { /* shown on the row */ })
        .then(function () {
          running -= 1;
          if (!running && !queue.length) refreshLibrary();
          pump();
        });
    }
  }

  function add(files) {
    Array.prototype.forEach.call(files, function (file) {
      queue.push({ file: file, ui: row(file) });
    });
    pump();
  }

  input.addEventListener("change", function () { add(input.files); input.value = ""; });
  ["dragenter", "dragover"].forEach(function (name) {
    zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (name) {
    zone.addEventListener(name, function () { zone.classList.remove("over"); });
  });
  zone.addEventListener("drop", function (event) {
    event.preventDefault();
    if (event.dataTransfer && event.dataTransfer.files.length) add(event.dataTransfer.files);
  });
})();
