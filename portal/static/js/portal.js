// Doorstep's only script: small progressive enhancements. Every page works without it.
(function () {
  "use strict";

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

  // htmx does not swap 4xx/5xx answers: tell the person instead of failing silently.
  document.addEventListener("htmx:responseError", function (event) {
    var flashes = document.getElementById("flashes");
    if (!flashes) return;
    var status = event.detail.xhr.status;
    var message = status === 403 ? "You do not have access to that." :
      status === 404 ? "That could not be found. Reload the page and try again." :
      status === 400 ? "Your form expired. Reload the page and try again." :
      "Something went wrong on our side. Please try again in a moment.";
    var div = document.createElement("div");
    div.className = "flash flash-error";
    div.setAttribute("role", "alert");
    div.textContent = message;
    flashes.replaceChildren(div);
  });
  document.addEventListener("htmx:sendError", function () {
    var flashes = document.getElementById("flashes");
    if (!flashes) return;
    var div = document.createElement("div");
    div.className = "flash flash-error";
    div.setAttribute("role", "alert");
    div.textContent = "The portal could not be reached. Check your connection and try again.";
    flashes.replaceChildren(div);
  });

  // Confirm destructive actions marked with data-confirm (a real <button> in a form).
  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  }, true);
})();
