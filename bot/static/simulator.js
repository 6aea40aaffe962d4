// DealerCare owner simulator. Every piece of owner, bot or staff text goes into the page with
// textContent, never innerHTML: an owner may well type "<script>".
"use strict";

(function () {
  const POLL_MS = 1500;
  const dealer = document.body.dataset.dealer || "demo";
  const api = {
    owners: () => `/simulator/api/owners?dealer=${encodeURIComponent(dealer)}`,
    history: (owner, after) =>
      `/simulator/api/messages?dealer=${encodeURIComponent(dealer)}&owner=${owner}` +
      (after == null ? "" : `&after=${after}`),
    send: "/simulator/api/messages",
  };
  const STATUS_LABELS = {
    bot: "机器人 Bot",
    waiting_staff: "等待人工 Waiting for staff",
    staff: "人工服务中 Staff",
    closed: "已结束 Closed",
  };
  const CHANNEL_LABELS = { simulator: "模拟器", wechat: "微信 WeChat", sms: "短信 SMS", console: "控制台" };

  const $ = (id) => document.getElementById(id);
  const els = {
    search: $("owner-search"),
    ownersStatus: $("owners-status"),
    ownerList: $("owner-list"),
    title: $("chat-title"),
    sub: $("chat-sub"),
    status: $("conversation-status"),
    messages: $("messages"),
    pending: $("pending"),
    typing: $("typing"),
    samples: $("samples"),
    form: $("composer"),
    text: $("text"),
    send: $("send"),
    error: $("error"),
    nluList: $("nlu-list"),
    nluTemplate: $("nlu-entry"),
  };

  const state = {
    owners: [],
    owner: null, // the selected owner object
    lastId: null, // highest message id shown
    seen: new Set(),
    buttons: new Map(), // reply message id -> button labels from the send response
    inflight: null, // the running poll, if any
    again: false,
    sending: 0,
    generation: 0, // bumps on owner change, so late answers for the old owner are dropped
  };

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  async function getJSON(url, options) {
    const response = await fetch(url, options);
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const detail = body && body.detail;
      const message = typeof detail === "string" ? detail : detail ? JSON.stringify(detail) : response.statusText;
      throw new Error(`${response.status}: ${message}`);
    }
    return body;
  }

  // kind "poll" marks a refresh error, which the next successful refresh clears
  function showError(message, kind) {
    els.error.textContent = message || "";
    els.error.dataset.kind = kind || "";
    els.error.hidden = !message;
  }

  // -- owners ------------------------------------------------------------------------------------

  function ownerLabel(owner) {
    const plates = owner.vehicles.map((v) => `${v.plate} ${v.model}`).join(" / ");
    return { name: owner.name, meta: `${owner.phone_masked} · ${plates || "无车辆 no car"}` };
  }

  function renderOwners() {
    const query = els.search.value.trim().toLowerCase();
    const items = state.owners.filter((owner) => {
      if (!query) return true;
      const haystack = [owner.name, owner.phone_masked, ...owner.vehicles.map((v) => `${v.plate} ${v.model}`)]
        .join(" ")
        .toLowerCase();
      return haystack.includes(query);
    });
    els.ownerList.replaceChildren(
      ...items.map((owner) => {
        const label = ownerLabel(owner);
        const button = el("button");
        button.type = "button";
        button.dataset.owner = String(owner.id);
        if (state.owner && state.owner.id === owner.id) button.classList.add("selected");
        button.append(el("span", "owner-name", label.name));
        if (owner.language && owner.language !== "zh") button.append(el("span", "owner-lang", owner.language.toUpperCase()));
        button.append(el("span", "owner-meta", label.meta));
        const item = el("li");
        item.append(button);
        return item;
      })
    );
    els.ownersStatus.textContent = items.length ? "" : "没有匹配的车主 No match";
    els.ownersStatus.hidden = items.length > 0;
  }

  async function loadOwners() {
    try {
      state.owners = await getJSON(api.owners());
    } catch (error) {
      els.ownersStatus.textContent = `无法加载车主 Could not load owners (${error.message})`;
      return;
    }
    renderOwners();
    const wanted = Number(new URLSearchParams(location.hash.slice(1)).get("owner")) ||
      Number(sessionStorage.getItem(`sim:${dealer}:owner`));
    const first = state.owners.find((o) => o.id === wanted) || state.owners[0];
    if (first) selectOwner(first);
  }

  function selectOwner(owner) {
    state.generation += 1;
    state.owner = owner;
    state.lastId = null;
    state.seen.clear();
    state.buttons.clear();
    els.messages.replaceChildren();
    els.pending.replaceChildren();
    els.nluList.replaceChildren();
    els.status.hidden = true;
    showError("");
    const label = ownerLabel(owner);
    els.title.textContent = label.name;
    els.sub.textContent = label.meta;
    els.text.disabled = false;
    els.send.disabled = false;
    sessionStorage.setItem(`sim:${dealer}:owner`, String(owner.id));
    history.replaceState(null, "", `#owner=${owner.id}`);
    renderOwners();
    poll();
    els.text.focus();
  }

  // -- messages ----------------------------------------------------------------------------------

  function senderLabel(message) {
    if (message.direction === "in") return "车主 Owner";
    if (message.sender === "bot") return "机器人 Bot";
    if (message.sender === "scheduler") return "提醒 Reminder";
    if (message.sender.startsWith("staff")) return `客服 Staff${message.sender_name ? " · " + message.sender_name : ""}`;
    return message.sender;
  }

  function timeLabel(iso) {
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString("zh-CN", { hour: "2-digit", minute: "2-digit" });
  }

  function renderButtons(labels) {
    const box = el("div", "buttons");
    for (const label of labels) {
      const chip = el("button", "chip", label);
      chip.type = "button";
      chip.dataset.text = label;
      box.append(chip);
    }
    return box;
  }

  function renderMessage(message) {
    const kind = message.direction === "in" ? "in" : "out";
    const sender = message.sender.startsWith("staff") ? "staff" : message.sender;
    const item = el("li", `msg ${kind} ${sender}`);
    item.dataset.id = String(message.id);
    item.append(el("span", "who", senderLabel(message)));
    item.append(el("div", "bubble", message.text));
    const buttons = message.buttons && message.buttons.length ? message.buttons : state.buttons.get(message.id);
    if (buttons && buttons.length) item.append(renderButtons(buttons));
    const channel = message.channel !== "simulator" ? ` · ${CHANNEL_LABELS[message.channel] || message.channel}` : "";
    item.append(el("span", "meta", `${timeLabel(message.created_at)}${channel}`));
    return item;
  }

  function nearBottom() {
    const box = els.messages;
    return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  }

  function appendMessages(messages) {
    const stick = nearBottom() || state.lastId == null;
    for (const message of messages) {
      if (state.seen.has(message.id)) continue;
      state.seen.add(message.id);
      state.lastId = Math.max(state.lastId ?? 0, message.id);
      els.messages.append(renderMessage(message));
      if (message.direction === "in" && message.parse) addUnderstanding(message.text, message.parse);
    }
    if (stick) els.messages.scrollTop = els.messages.scrollHeight;
  }

  async function fetchNew() {
    const owner = state.owner;
    const generation = state.generation;
    try {
      const messages = await getJSON(api.history(owner.id, state.lastId));
      if (generation !== state.generation) return;
      appendMessages(messages);
      if (els.error.dataset.kind === "poll") showError("");
    } catch (error) {
      if (generation === state.generation) showError(`无法刷新 Could not refresh (${error.message})`, "poll");
    }
  }

  // One request at a time; a poll asked for while one runs makes it fetch once more before it ends.
  function poll() {
    if (!state.owner || document.hidden) return Promise.resolve();
    if (state.inflight) {
      state.again = true;
      return state.inflight;
    }
    state.inflight = (async () => {
      do {
        state.again = false;
        await fetchNew();
      } while (state.again && state.owner);
    })().finally(() => {
      state.inflight = null;
    });
    return state.inflight;
  }

  async function send(text) {
    const owner = state.owner;
    if (!owner || !text.trim()) return;
    showError("");
    const generation = state.generation;
    const messageId = (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random()).replace(/[^A-Za-z0-9-]/g, "");
    const pending = renderMessage({ id: -1, direction: "in", sender: "owner", text, created_at: new Date().toISOString(), channel: "simulator" });
    pending.classList.add("pending");
    els.pending.append(pending);
    els.messages.scrollTop = els.messages.scrollHeight;
    state.sending += 1;
    els.typing.hidden = false;
    try {
      const result = await getJSON(api.send, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ dealer, owner: owner.id, text, message_id: messageId }),
      });
      if (generation !== state.generation) return;
      for (const reply of result.replies) {
        if (reply.id != null && reply.buttons.length) state.buttons.set(reply.id, reply.buttons);
      }
      showStatus(result.conversation);
      await poll();
      pending.remove();
    } catch (error) {
      pending.classList.remove("pending");
      pending.classList.add("failed");
      pending.querySelector(".meta").textContent = `发送失败 Not sent: ${error.message}`;
    } finally {
      state.sending -= 1;
      els.typing.hidden = state.sending === 0;
    }
  }

  function showStatus(conversation) {
    if (!conversation) return;
    els.status.textContent = STATUS_LABELS[conversation.status] || conversation.status;
    els.status.className = `status ${conversation.status}`;
    els.status.hidden = false;
  }

  // -- understanding -----------------------------------------------------------------------------

  function percent(value) {
    return `${Math.round((Number(value) || 0) * 100)}%`;
  }

  function addUnderstanding(text, parse) {
    const entry = els.nluTemplate.content.firstElementChild.cloneNode(true);
    const intent = parse.intent || {};
    const selector = parse.response_selector && parse.response_selector.default;
    const subIntent = selector && selector.response && selector.response.intent_response_key;
    entry.querySelector(".nlu-text").textContent = `“${text}”`;
    entry.querySelector(".intent-name").textContent = subIntent || intent.name || "?";
    entry.querySelector(".intent-score").textContent = percent(intent.confidence);
    entry.querySelector(".intent-meter").value = Number(intent.confidence) || 0;

    const entities = entry.querySelector(".nlu-entities");
    if (parse.entities && parse.entities.length) {
      for (const entity of parse.entities) {
        const value = typeof entity.value === "string" ? entity.value : JSON.stringify(entity.value);
        entities.append(el("li", null, `${entity.entity} = ${value}`));
      }
    } else {
      entities.append(el("li", "none", "无 none"));
    }

    const ranking = entry.querySelector(".nlu-ranking");
    for (const candidate of (parse.intent_ranking || []).slice(0, 3)) {
      ranking.append(el("li", null, `${candidate.name}  ${percent(candidate.confidence)}`));
    }

    for (const old of els.nluList.querySelectorAll(".latest")) old.classList.remove("latest");
    entry.classList.add("latest");
    els.nluList.prepend(entry);
  }

  // -- wiring ------------------------------------------------------------------------------------

  els.search.addEventListener("input", renderOwners);
  els.ownerList.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-owner]");
    if (!button) return;
    const owner = state.owners.find((o) => String(o.id) === button.dataset.owner);
    if (owner && (!state.owner || owner.id !== state.owner.id)) selectOwner(owner);
  });
  els.form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = els.text.value;
    if (!text.trim()) return;
    els.text.value = "";
    send(text);
  });
  els.text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      els.form.requestSubmit();
    }
  });
  // quick replies: sample phrases under the chat and buttons under bot messages
  document.addEventListener("click", (event) => {
    const chip = event.target.closest(".chip[data-text]");
    if (chip && state.owner) send(chip.dataset.text);
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) poll();
  });

  setInterval(poll, POLL_MS);
  loadOwners();
})();
