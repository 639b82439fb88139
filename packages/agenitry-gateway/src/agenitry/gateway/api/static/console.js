// The console's one script. Every page works without it; it only adds live news:
// new pending requests appear without a reload, and deadlines count down.
"use strict";

(function () {
  var POLL_MS = 5000;
  var skew = 0; // the gateway's clock minus this browser's, from the list's data-now

  function formatLeft(ms) {
    if (ms <= 0) return "expired";
    var minutes = Math.floor(ms / 60000);
    var days = Math.floor(minutes / 1440);
    var hours = Math.floor((minutes % 1440) / 60);
    if (days) return days + " d " + hours + " h";
    if (hours) return hours + " h " + (minutes % 60) + " min";
    return minutes ? minutes + " min" : "under a minute";
  }

  function tick() {
    var now = Date.now() + skew;
    document.querySelectorAll(".left[data-expires]").forEach(function (node) {
      var expires = Number(node.getAttribute("data-expires"));
      if (expires) node.textContent = formatLeft(expires - now);
    });
  }

  function readSkew(root) {
    var marked = root.querySelector("[data-now]");
    if (marked) skew = Number(marked.getAttribute("data-now")) - Date.now();
  }

  function ids(root) {
    var list = root.querySelector("[data-ids]");
    return list ? list.getAttribute("data-ids").trim() : "";
  }

  function busy(root) {
    // Someone typing a note must not lose it to an update.
    var active = document.activeElement;
    if (active && root.contains(active) && active.tagName === "INPUT") return true;
    return Array.prototype.some.call(root.querySelectorAll("input[name=note], input[name=reason]"), function (input) {
      return input.value !== "";
    });
  }

  function live(root) {
    var url = root.getAttribute("data-live");
    var waiting = null; // a newer list held back while the owner types

    function show(fresh) {
      root.replaceChildren.apply(root, Array.prototype.slice.call(fresh.childNodes));
      readSkew(root);
      tick();
      var count = root.querySelector("[data-count]");
      if (count) document.title = "Pending (" + count.getAttribute("data-count") + ") · Agenitry";
      var banner = document.getElementById("news");
      if (banner) banner.remove();
    }

    function offer(fresh) {
      waiting = fresh;
      if (document.getElementById("news")) return;
      var banner = document.createElement("p");
      banner.id = "news";
      banner.className = "notice";
      banner.setAttribute("role", "status");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "link";
      button.textContent = "The list changed: show it";
      button.addEventListener("click", function () { if (waiting) show(waiting); waiting = null; });
      banner.appendChild(button);
      root.parentNode.insertBefore(banner, root);
    }

    function poll() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" }, redirect: "manual" })
        .then(function (response) {
          if (response.type === "opaqueredirect" || !response.ok) return null; // signed out: stop quietly
          return response.text();
        })
        .then(function (html) {
          if (html === null) return;
          var fresh = document.createElement("div");
          fresh.innerHTML = html; // the gateway's own page, escaped where it was rendered
          if (ids(fresh) !== ids(root)) {
            if (busy(root)) offer(fresh); else show(fresh);
          }
          window.setTimeout(poll, POLL_MS);
        })
        .catch(function () { window.setTimeout(poll, POLL_MS * 3); });
    }

    window.setTimeout(poll, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    readSkew(document);
    tick();
    window.setInterval(tick, 15000);
    var root = document.querySelector("[data-live]");
    if (root) live(root);
  });
})();
