// Back office enhancements; every page works without this file.
(function () {
  "use strict";
  // A real "Print" button (the printable page also works with the browser's own print).
  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-print]")) window.print();
  });
})();
