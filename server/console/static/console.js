// Tableau Steward console: shows new and changed requests without a reload.
// Polls a small JSON version of the request list; when it changes, fetches the server-rendered list
// (already escaped by the server) and swaps it in, keeping any reason being typed, and announces it
// through the aria-live region. Nothing here decides anything: the forms post as they would without it.
(function () {
  "use strict";
  var POLL_MS = 2000;
  var main = document.getElementById("main");
  if (!main || !main.getAttribute("data-state-url")) { return; }
  var stateUrl = main.getAttribute("data-state-url");
  var fragmentUrl = main.getAttribute("data-fragment-url");
  var version = main.getAttribute("data-version");
  var live = document.getElementById("live");
  var known = pendingIds();

  function pendingIds() {
    var ids = {};
    document.querySelectorAll("article.request h3 .rid")
      .forEach(function (el) { ids[el.textContent] = true; });
    return ids;
  }

  function typedValues() {
    var values = {};
    document.querySelectorAll("#requests input[name=reason]").forEach(function (el) {
      if (el.value) { values[el.id] = el.value; }
    });
    return values;
  }

  function announce(message) {
    if (live) { live.textContent = message; }
  }

  function swap(html) {
    var box = document.getElementById("requests");
    if (!box) { return; }
    var values = typedValues();
    var focused = document.activeElement && document.activeElement.id;
    box.innerHTML = html;
    Object.keys(values).forEach(function (id) {
      var el = document.getElementById(id);
      if (el) { el.value = values[id]; }
    });
    if (focused) {
      var again = document.getElementById(focused);
      if (again) { again.focus(); }
    }
  }

  function poll() {
    fetch(stateUrl, { credentials: "same-origin", cache: "no-store" }).then(function (reply) {
      if (reply.status === 401) {
        announce("Your session has ended. Reload the page to sign in again.");
        return null;
      }
      return reply.ok ? reply.json() : null;
    }).then(function (state) {
      if (!state) { return; }
      if (state.version === version) { setTimeout(poll, POLL_MS); return; }
      return fetch(fragmentUrl, { credentials: "same-origin", cache: "no-store" }).then(function (reply) {
        return reply.ok ? reply.text() : null;
      }).then(function (html) {
        if (html !== null) {
          swap(html);
          version = state.version;
          var fresh = state.pending_ids.filter(function (id) { return !known[id]; });
          known = {};
          state.pending_ids.forEach(function (id) { known[id] = true; });
          announce(fresh.length ? "New request waiting: " + fresh.join(", ") + "." :
            "Requests updated: " + state.pending + " waiting.");
        }
        setTimeout(poll, POLL_MS);
      });
    }).catch(function () { setTimeout(poll, POLL_MS * 3); });
  }

  setTimeout(poll, POLL_MS);
})();
