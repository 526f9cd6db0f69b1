// Billing: small enhancements for the invoice pages. Every page works without this file.
(function () {
  "use strict";

  // "Print" buttons (the browser's own menu prints the same page without JavaScript).
  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-print]")) window.print();
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
