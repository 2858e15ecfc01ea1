// wasmsched dashboard: the pages work without this script; it only shows
// times in the reader's time zone (UTC stays in the title, on hover).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const format = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
  });
  for (const element of document.querySelectorAll("time[datetime]")) {
    const at = new Date(element.getAttribute("datetime"));
    if (!Number.isNaN(at.getTime())) element.textContent = format.format(at);
  }
});

// The live events page: tail /api/events/stream for the pattern, newest
// first (at most 200 shown); "Pause view" holds new events until resumed.
document.addEventListener("DOMContentLoaded", () => {
  const list = document.getElementById("events");
  if (!list) return;
  const status = document.getElementById("tail-status");
  const pauseButton = document.getElementById("pause-view");
  const pattern = list.dataset.pattern || "**";
  let paused = false;
  let held = [];
  const show = (event) => {
    const item = document.createElement("li");
    const topic = document.createElement("code");
    topic.textContent = event.topic;
    const data = document.createElement("pre");
    data.textContent = JSON.stringify(event.data);
    item.append(topic, " ", event.id, data);
    list.prepend(item);
    while (list.children.length > 200) list.lastElementChild.remove();
  };
  const source = new EventSource("/api/events/stream?pattern=" + encodeURIComponent(pattern));
  source.onopen = () => { status.textContent = "Watching " + pattern + "…"; };
  source.onerror = () => { status.textContent = "Disconnected; retrying…"; };
  source.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (paused) held.push(event); else show(event);
  };
  pauseButton.addEventListener("click", () => {
    paused = !paused;
    pauseButton.textContent = paused ? "Resume view" : "Pause view";
    pauseButton.setAttribute("aria-pressed", String(paused));
    if (!paused) { held.forEach(show); held = []; }
  });
});
