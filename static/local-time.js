// Show each event's time in the visitor's own zone beside the event's zone.
(function () {
  var fmt = { weekday: "long", day: "numeric", month: "long", hour: "2-digit", minute: "2-digit", timeZoneName: "short" };
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  document.querySelectorAll(".local-time[data-start]").forEach(function (el) {
    var start = new Date(el.dataset.start);
    // Same zone as the event: the line above already says it.
    if (isNaN(start) || (zone && el.dataset.zone === zone)) return;
    // In the page's language (its lang attribute), with the words the page gave (data-label).
    var lang = document.documentElement.lang || undefined;
    el.textContent = (el.dataset.label || "Your time:") + " " + start.toLocaleString(lang, fmt) + (zone ? " (" + zone + ")" : "");
    el.hidden = false;
  });
  // Pre-fill timezone inputs marked for it with the browser's zone.
  document.querySelectorAll("input[data-browser-timezone]").forEach(function (el) {
    if (zone && !el.dataset.touched && (!el.value || el.dataset.browserTimezone === "replace")) el.value = zone;
  });
})();
