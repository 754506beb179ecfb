// The few lines of script the pages use; every page works without them.
"use strict";

// Live regions: a server-sent event "update" carries the region's new HTML.
function followLive(region) {
  if (!window.EventSource) return;
  const source = new EventSource(region.dataset.live);
  source.addEventListener("update", (event) => {
    // Never pull the content from under the keyboard: wait while focus is inside.
    if (region.contains(document.activeElement) && document.activeElement !== document.body) {
      region.dataset.pending = event.data;
      return;
    }
    region.innerHTML = event.data;
    region.dataset.updated = String(Date.now());
  });
  source.addEventListener("error", () => {
    // Closed for good (the session ended, the answer was a page): reload, which signs in again.
    if (source.readyState === EventSource.CLOSED) window.setTimeout(() => window.location.reload(), 5000);
  });
  region.addEventListener("focusout", () => {
    if (region.dataset.pending && !region.contains(document.activeElement)) {
      region.innerHTML = region.dataset.pending;
      delete region.dataset.pending;
    }
  });
}

// A job's progress (the month close): its fragment is fetched again until it is over.
function followProgress(region) {
  const url = region.dataset.progress;
  const tick = async () => {
    try {
      const answer = await fetch(url, { headers: { Accept: "text/html" }, credentials: "same-origin" });
      if (answer.ok) {
        region.innerHTML = await answer.text();
      }
    } catch (error) {
      // The next tick tries again.
    }
    if (region.querySelector("[data-running]")) {
      window.setTimeout(tick, 500);
    }
  };
  window.setTimeout(tick, 300);
}

// A confirmation before a form that cannot be undone (data-confirm holds the question).
function confirmBefore(form) {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live]").forEach(followLive);
  document.querySelectorAll("[data-progress]").forEach(followProgress);
  document.querySelectorAll("form[data-confirm]").forEach(confirmBefore);
});
