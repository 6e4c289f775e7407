// The door's waiting page: count down to the opening, then reload (the door then lets the visitor in).
// Counts from the seconds the server gave, so a wrong clock on this computer does not matter.
(function () {
  var el = document.querySelector("time.countdown[data-seconds]");
  if (!el) return;
  var end = Date.now() + Number(el.dataset.seconds) * 1000;
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function tick() {
    var left = Math.max(0, Math.round((end - Date.now()) / 1000));
    var days = Math.floor(left / 86400), h = Math.floor(left % 86400 / 3600), m = Math.floor(left % 3600 / 60);
    el.textContent = (days ? days + ":" : "") + pad(h) + ":" + pad(m) + ":" + pad(left % 60);
    if (left === 0) { window.location.reload(); return; }
    window.setTimeout(tick, 1000);
  }
  tick();
})();
