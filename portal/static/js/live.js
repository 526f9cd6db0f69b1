// Case pages: a conversation that follows the case, and focus that follows htmx swaps.
// Loaded from the page's content (boosted visits keep the old <head>), so it guards against
// running twice. Every page works without it: "Check for new messages" reloads.
(function () {
  "use strict";
  if (window.doorstepLive) return;
  window.doorstepLive = true;

  // One polite region that tells screen readers what changed (created once, never moved).
  function announce(text) {
    var region = document.getElementById("hx-announcer");
    if (!region) {
      region = document.createElement("div");
      region.id = "hx-announcer";
      region.className = "visually-hidden";
      region.setAttribute("aria-live", "polite");
      region.setAttribute("role", "status");
      document.body.appendChild(region);
    }
    region.textContent = "";
    window.setTimeout(function () { region.textContent = text; }, 50);
  }

  // A poll sends the tag its region holds; the server answers 304 when nothing changed.
  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail.elt;
    if (elt && elt.hasAttribute("data-live") && elt.getAttribute("data-etag")) {
      event.detail.headers["If-None-Match"] = elt.getAttribute("data-etag");
    }
  });

  var before = null;
  document.addEventListener("htmx:beforeSwap", function (event) {
    var detail = event.detail;
    if (detail.xhr.status === 304) {
      detail.shouldSwap = false;
      detail.isError = false;
      return;
    }
    var target = detail.target;
    if (!target || !target.id) { before = null; return; }
    before = {
      id: target.id,
      live: target.hasAttribute("data-live"),
      hadFocus: target.contains(document.activeElement),
      messages: target.querySelectorAll(".message").length,
      status: (target.querySelector(".case-status") || {}).textContent || ""
    };
  });

  document.addEventListener("htmx:afterSettle", function () {
    var was = before;
    before = null;
    if (!was) return;
    var now = document.getElementById(was.id);
    if (!now) return;
    if (was.live) {
      // A poll never takes the focus (the person may be typing a reply): it only tells.
      var added = now.querySelectorAll(".message").length - was.messages;
      var status = (now.querySelector(".case-status") || {}).textContent || "";
      var parts = [];
      if (added > 0) {
        var last = now.querySelectorAll(".message");
        var meta = last[last.length - 1].querySelector(".message-meta strong");
        parts.push(added === 1 ? "New message" + (meta ? " from " + meta.textContent.trim() : "") : added + " new messages");
      }
      if (status.trim() !== was.status.trim()) parts.push(status.trim().replace(/\s+/g, " "));
      if (parts.length) announce(parts.join(". ") + ".");
      return;
    }
    // What the person was working in was replaced: put focus on what they need next —
    // the first field with an error, else the new content's heading or message.
    if (!was.hadFocus && document.activeElement !== document.body) return;
    var goal = now.querySelector("[aria-invalid='true']") ||
      now.querySelector("[data-focus], h1, h2, h3, [role='alert'], .flash, caption") || now;
    if (!goal.matches("input, select, textarea, button, a[href]")) goal.setAttribute("tabindex", "-1");
    goal.focus();
    var error = now.querySelector(".error, [role='alert']");
    announce((error || goal).textContent.trim().replace(/\s+/g, " "));
  });
})();
