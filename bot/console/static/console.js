// The console's only script (a CSP forbids inline ones): live updates, SLA countdowns, canned replies.
// Every page works without it; this only saves reloads.
(function () {
  "use strict";
  const body = document.body;
  const live = body.dataset.live;

  async function swap(url, target, outer) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (!response.ok) return;
    const html = await response.text();
    const node = document.querySelector(target);
    if (!node) return;
    if (outer) node.outerHTML = html; else node.innerHTML = html;  // our own server's escaped HTML
  }

  function listen(onEvent) {
    const source = new EventSource("/console/api/events");
    source.addEventListener("conversation", (e) => onEvent(JSON.parse(e.data)));
    source.addEventListener("signed_out", () => { source.close(); window.location.reload(); });
    body.dataset.liveReady = "1";  // tests wait for this before they make news
    source.addEventListener("hello", () => { body.dataset.liveConnected = "1"; });
  }

  if (live === "inbox") {
    let pending = null;
    const baseTitle = document.title;
    const rowIds = () => new Set([...document.querySelectorAll("#inbox-rows tr[data-conversation]")].map((r) => r.dataset.conversation));
    let seen = rowIds();
    const mark = () => {
      // new arrivals stand out for a moment; the tab title counts who is waiting
      for (const row of document.querySelectorAll("#inbox-rows tr[data-conversation]")) {
        if (!seen.has(row.dataset.conversation)) row.classList.add("fresh");
      }
      seen = rowIds();
      const waiting = document.querySelector("#waiting-count");
      const count = waiting ? Number(waiting.textContent) : 0;
      document.title = count ? `(${count}) ${baseTitle}` : baseTitle;
    };
    mark();
    listen(() => {
      // a burst of events (a busy minute) is one refresh
      clearTimeout(pending);
      pending = setTimeout(() => swap("/console/inbox/rows", "#inbox-rows", false).then(mark).then(tick), 150);
    });
  } else if (live === "conversation") {
    const id = Number(body.dataset.conversation);
    listen((event) => {
      if (event.conversation_id !== id) return;
      if (event.kind === "status" || event.kind === "assign") {
        const draft = document.querySelector("#reply-text");
        if (!draft || !draft.value.trim()) { window.location.reload(); return; }
      }
      swap(`/console/conversations/${id}/transcript`, "#transcript", true).then(scrollDown);
    });
  }

  function scrollDown() {
    const list = document.querySelector("#transcript");
    if (list) list.scrollTop = list.scrollHeight;
  }
  scrollDown();

  // SLA countdowns: the server renders the figure, this keeps it moving
  function tick() {
    const now = Date.now();
    for (const node of document.querySelectorAll("[data-due]")) {
      if (!node.dataset.due) continue;
      let seconds = Math.round((Date.parse(node.dataset.due) - now) / 1000);
      const overdue = seconds < 0;
      seconds = Math.abs(seconds);
      const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
      const mm = String(m).padStart(2, "0"), ss = String(s).padStart(2, "0");
      node.textContent = (overdue ? "-" : "") + (h ? `${h}:${mm}:${ss}` : `${m}:${ss}`);
      node.classList.toggle("overdue", overdue);
    }
  }
  tick();
  setInterval(tick, 1000);

  // canned replies fill the reply box; staff edit before sending
  for (const select of document.querySelectorAll("select[data-canned-for]")) {
    select.addEventListener("change", () => {
      const box = document.getElementById(select.dataset.cannedFor);
      if (box && select.value) { box.value = select.value; box.focus(); }
      select.value = "";
    });
  }
})();
