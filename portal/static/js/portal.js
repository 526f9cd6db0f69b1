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

  // Confirm destructive actions marked with data-confirm (a real <button> in a form).
  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  }, true);
})();
