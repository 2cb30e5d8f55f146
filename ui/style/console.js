// The stage console's countdowns: each fault's seconds left, ticking. The
// console works without it (the numbers are then those of the page load);
// when a fault runs out the page reloads to show what is left in force.
(function () {
  "use strict";
  var loaded = Date.now();
  var cells = Array.prototype.slice.call(document.querySelectorAll("[data-expires-in]")).filter(function (cell) {
    return Number(cell.getAttribute("data-expires-in")) > 0;
  });
  if (cells.length === 0) return;
  var tick = function () {
    var gone = false;
    cells.forEach(function (cell) {
      var left = Math.ceil(Number(cell.getAttribute("data-expires-in")) - (Date.now() - loaded) / 1000);
      if (left <= 0) gone = true;
      cell.textContent = Math.max(left, 0) + " s";
    });
    // Give the app server a moment to drop it, then show what is left.
    if (gone) { window.setTimeout(function () { window.location.replace("/console"); }, 1500); return; }
    window.setTimeout(tick, 500);
  };
  tick();
})();
