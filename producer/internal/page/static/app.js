// The producer page: start batches, cancel them, and show each webhook's
// result as it completes. Every value from the server is set as text.
"use strict";

(function () {
  const log = document.getElementById("Messages");
  const batches = document.getElementById("batches");
  const state = document.getElementById("connection");
  const form = document.getElementById("produce");
  const formError = document.getElementById("formError");
  const maxLines = 5000;
  const rows = new Map(); // batch id -> { li, done, n }

  function addLine(text, cls) {
    const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    const div = document.createElement("div");
    div.className = cls;
    div.textContent = text;
    log.appendChild(div);
    while (log.childElementCount > maxLines) log.removeChild(log.firstElementChild);
    if (stick) log.scrollTop = log.scrollHeight;
  }

  function classFor(outcome) {
    switch (outcome) {
      case "accepted": return "ok";
      case "duplicate": return "dup";
      case "cancelled": return "cancelled";
      default: return "fail";
    }
  }

  // Batches that ended: the answer to a POST may come after the batch's
  // end event, and must not list it again.
  const ended = new Set();

  function addBatch(id, size) {
    if (rows.has(id) || ended.has(id)) return;
    const li = document.createElement("li");
    li.dataset.batch = id;
    const label = document.createElement("span");
    label.className = "progress";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "cancel";
    button.textContent = "Cancel";
    button.addEventListener("click", function () {
      button.disabled = true;
      fetch("/batches/" + encodeURIComponent(id) + "/cancel", { method: "POST" });
    });
    li.append(label, button);
    batches.appendChild(li);
    const row = { li: li, label: label, done: 0, n: size, id: id };
    rows.set(id, row);
    showProgress(row);
  }

  function showProgress(row) {
    row.label.textContent = row.id + " — " + row.done + " of " + row.n;
  }

  const source = new EventSource("/events");
  source.onopen = function () { state.textContent = "live"; state.className = "conn conn-live state live"; };
  source.onerror = function () { state.textContent = "reconnecting"; state.className = "conn conn-reconnecting state"; };

  source.addEventListener("start", function (e) {
    const d = JSON.parse(e.data);
    addBatch(d.batchid, d.size);
    addLine("batch " + d.batchid + " started: " + d.size + " tasks, " + d.wait_ms + " ms apart", "summary");
  });
  source.addEventListener("task", function (e) {
    const d = JSON.parse(e.data);
    addLine(d.line, classFor(d.outcome));
    const row = rows.get(d.batchid);
    if (row) { row.done = Math.max(row.done, d.done); showProgress(row); }
  });
  source.addEventListener("retry", function (e) {
    const d = JSON.parse(e.data);
    addLine("  retry: " + d.i + " out of " + d.n + " -- attempt " + d.attempt + " got " +
      (d.status || "no answer") + " -- next in " + d.delay_ms + " ms -- " + d.error, "retry");
  });
  source.addEventListener("end", function (e) {
    const d = JSON.parse(e.data);
    addLine(d.line, "summary");
    ended.add(d.batchid);
    const row = rows.get(d.batchid);
    if (row) { row.li.remove(); rows.delete(d.batchid); }
  });

  // Batches already running when the page opens get their rows too.
  fetch("/batches").then(function (r) { return r.json(); }).then(function (list) {
    for (const b of list) addBatch(b.batchid, b.size);
  }).catch(function () {});

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    formError.textContent = "";
    const body = new URLSearchParams(new FormData(form));
    fetch("/batches", { method: "POST", body: body }).then(function (r) {
      return r.json().then(function (d) {
        if (!r.ok) { formError.textContent = d.error || ("error " + r.status); return; }
        addBatch(d.batchid, d.size);
      });
    }).catch(function (err) { formError.textContent = String(err); });
  });
})();
