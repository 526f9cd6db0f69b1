// Doorstep's only script: small progressive enhancements. Every page works without it.
(function () {
  "use strict";

  // Styles that need the script (the phone menu) key on this class; <html> outlives swaps.
  document.documentElement.classList.add("js");

  // The phone menu: one button opens and closes the main navigation.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-menu-toggle]");
    if (!button) return;
    var nav = button.closest(".mainnav");
    var open = !nav.classList.contains("open");
    nav.classList.toggle("open", open);
    button.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      var first = nav.querySelector("a");
      if (first) first.focus();
    }
  });

  // Show or hide a password (a real button, announced through aria-pressed).
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-toggle-password]");
    if (!button) return;
    var input = document.getElementById(button.getAttribute("data-toggle-password"));
    if (!input) return;
    var show = input.type === "password";
    input.type = show ? "text" : "password";
    button.textContent = show ? "Hide" : "Show";
    button.setAttribute("aria-pressed", show ? "true" : "false");
  });

  function showError(message) {
    var flashes = document.getElementById("flashes");
    if (!flashes) return;
    var div = document.createElement("div");
    div.className = "flash flash-error";
    div.setAttribute("role", "alert");
    div.textContent = message;
    flashes.replaceChildren(div);
  }

  // A boosted link or form that ends on an error page shows that page, as it would without
  // JavaScript; htmx's own setting (responseHandling) would silently keep the old page.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var detail = event.detail;
    var type = detail.xhr.getResponseHeader("Content-Type") || "";
    if (detail.boosted && detail.xhr.status >= 400 && type.indexOf("text/html") === 0) {
      detail.shouldSwap = true;
      detail.isError = false;
    }
  });

  // Other htmx requests do not swap 4xx/5xx answers: tell the person instead of failing silently.
  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr.status;
    showError(
      status === 400 ? "Your form expired. Reload the page and try again." :
      status === 403 ? "You do not have access to that." :
      status === 404 ? "That could not be found. Reload the page and try again." :
      status === 405 ? "That action is not allowed here. Reload the page and try again." :
      status === 413 ? "That upload is too large." :
      status === 429 ? "Too many attempts. Please wait a few minutes and try again." :
      status === 503 ? "We are busy for a moment. Nothing was changed: please try again in a few seconds." :
      "Something went wrong on our side. Please try again in a moment."
    );
  });
  document.addEventListener("htmx:sendError", function () {
    showError("The portal could not be reached. Check your connection and try again.");
  });

  // A table too wide for its box scrolls sideways in it (.table-wrap): that box takes the
  // keyboard focus (arrow keys scroll it) and is a region named after its table, but only
  // while it really scrolls, so a table that fits adds no tab stop.
  function tableName(wrap) {
    var caption = wrap.querySelector("caption");
    if (caption) return caption.textContent;
    var table = wrap.querySelector("table");
    if (table && table.getAttribute("aria-label")) return table.getAttribute("aria-label");
    // Else the nearest heading before it (the heading itself or in a .section-head), else
    // the heading that names the section it sits in.
    var heading = null;
    for (var node = wrap.previousElementSibling; !heading && node; node = node.previousElementSibling) {
      heading = /^H[2-6]$/.test(node.tagName) ? node : node.querySelector("h2, h3, h4, h5, h6");
    }
    var labelled = !heading && wrap.closest("[aria-labelledby]");
    if (labelled) heading = document.getElementById(labelled.getAttribute("aria-labelledby"));
    return heading ? heading.textContent : "Table";
  }

  function markScrollingTables() {
    var names = {};
    document.querySelectorAll(".table-wrap").forEach(function (wrap) {
      var scrolls = wrap.scrollWidth > wrap.clientWidth + 1;
      if (scrolls) {
        // Two regions of one page never share a name (a second "Lines" is "Lines, 2").
        var name = tableName(wrap).replace(/\s+/g, " ").trim();
        names[name] = (names[name] || 0) + 1;
        if (names[name] > 1) name += ", " + names[name];
        wrap.setAttribute("tabindex", "0");
        wrap.setAttribute("role", "region");
        wrap.setAttribute("aria-label", name + " (scrolls sideways)");
        wrap.setAttribute("data-scroll-region", "");
      } else if (wrap.hasAttribute("data-scroll-region")) {
        ["tabindex", "role", "aria-label", "data-scroll-region"].forEach(function (name) {
          wrap.removeAttribute(name);
        });
      }
    });
  }

  var marking = 0;
  function markSoon() {
    cancelAnimationFrame(marking);
    marking = requestAnimationFrame(markScrollingTables);
  }
  document.addEventListener("DOMContentLoaded", markScrollingTables);
  window.addEventListener("load", markSoon);
  document.addEventListener("htmx:afterSettle", markSoon);
  window.addEventListener("resize", markSoon);

  // Confirm destructive actions marked with data-confirm (a real <button> in a form).
  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  }, true);
})();
