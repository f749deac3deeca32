// Counts the shop's deadline down. Only shown: the buttons stay, since a
// provider takes a late payment all the same (the shop refunds it).
"use strict";
(function () {
  const el = document.getElementById("deadline");
  if (!el) return;
  const expiresAt = Number(el.dataset.expiresAtMs);
  const clock = (ms) => {
    const s = Math.floor(ms / 1000);
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  };
  const tick = () => {
    const left = expiresAt - Date.now();
    el.textContent = left > 0
      ? "The shop waits for this payment " + clock(left) + " more."
      : "The shop stopped waiting " + clock(-left) + " ago: pay now and it will refund you.";
    el.className = left > 0 ? "" : "late";
  };
  tick();
  setInterval(tick, 1000);
})();
