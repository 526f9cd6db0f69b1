// Billing: small enhancements for the invoice pages. Every page works without this file:
// a "Print" link reloads its page with ?print=1, which prints once the page (and so this
// file) has loaded; the browser's own print menu prints the same page without JavaScript.
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-print]")) {
      event.preventDefault();
      window.print();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    if (document.querySelector("[data-autoprint]")) window.print();
  });

  // Typing an amount ticks its invoice, so the running total includes what was typed.
  document.addEventListener("input", function (event) {
    var input = event.target;
    if (!input.classList || !input.classList.contains("input-amount") || !input.id) return;
    var match = /^amount-(\d+)$/.exec(input.id);
    if (!match) return;
    var box = document.getElementById("pick-" + match[1]);
    if (box && !box.checked && input.value.trim() !== "") box.checked = true;
  }, true);
})();
