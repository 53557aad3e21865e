// Berth chat UI. Plain browser JavaScript, no build step. Talks to Berth over the official
// Socket.IO client served at /socket.io/socket.io.js; see docs PROTOCOL.md for the events.
// Everything the server sends is rendered with textContent (never innerHTML).
(function () {
  "use strict";

  const STORAGE_KEY = "berth.session";
  const ERROR_DEDUP_MS = 3000;

  const $ = (id) => document.getElementById(id);
  const log = $("log");
  const empty = $("empty");
  const thinking = $("thinking");
  const statusBox = $("status");
  const statusText = $("status-text");
  const form = $("composer");
  const input = $("message");
  const sendBtn = $("send");
  const stopBtn = $("stop");
  const resetBtn = $("reset");
  const endBtn = $("end");
  const banner = $("banner");
  const bannerText = $("banner-text");
  const restartBtn = $("restart");

  // ---- persisted session -------------------------------------------------------------------
  function loadSession() {
    try {
      const v = JSON.parse(localStorage.getItem(STORAGE_KEY) || "null");
      if (v && typeof v.sessionId === "string" && v.sessionId) return v;
    } catch (_) { /* corrupt entry: start fresh */ }
    return null;
  }
  function saveSession(sessionId, resumeToken) {
    const prev = loadSession();
    const token = resumeToken || (prev && prev.sessionId === sessionId ? prev.resumeToken : undefined);
    localStorage.setItem(STORAGE_KEY, JSON.stringify({ sessionId, resumeToken: token }));
  }
  function clearSession() { localStorage.removeItem(STORAGE_KEY); }

  // ---- state ---------------------------------------------------------------------------------
  let socket = null;
  let ready = false;
  let ended = false;
  let renderedSomething = false; // transcript holds items from this page's lifetime
  let focusNextApproval = false;
  let systemMessages = 0;
  const calls = new Map(); // callId -> card elements
  const recentErrors = new Map(); // "code|message" -> time shown

  // ---- helpers -------------------------------------------------------------------------------
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function shortId(id) { return typeof id === "string" ? id.slice(0, 12) : ""; }

  function timeLabel(ts) {
    const d = ts ? new Date(ts) : new Date();
    if (isNaN(d.getTime())) return "";
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  // Text with ``` fenced blocks rendered as <pre>; the rest keeps its line breaks.
  function richText(text) {
    const frag = document.createDocumentFragment();
    const parts = String(text).split(/```/);
    parts.forEach((part, i) => {
      if (i % 2 === 1) {
        const body = part.replace(/^[\w+-]*\n/, "").replace(/\n$/, "");
        const pre = el("pre", "code");
        pre.appendChild(el("code", null, body));
        frag.appendChild(pre);
      } else if (part.trim()) {
        frag.appendChild(el("p", "text", part.replace(/^\n+|\n+$/g, "")));
      }
    });
    return frag;
  }

  function pretty(value) {
    if (value === undefined) return "{}";
    if (typeof value === "string") {
      try { return JSON.stringify(JSON.parse(value), null, 2); } catch (_) { return value; }
    }
    try { return JSON.stringify(value, null, 2); } catch (_) { return String(value); }
  }

  function nearBottom() { return log.scrollHeight - log.scrollTop - log.clientHeight < 80; }

  // Follow new content while the reader is at the bottom; stay put once they scroll up.
  let stick = true;
  log.addEventListener("scroll", () => { stick = nearBottom(); }, { passive: true });
  new MutationObserver(() => { if (stick) log.scrollTop = log.scrollHeight; })
    .observe(log, { childList: true, subtree: true, characterData: true });

  function append(node) {
    if (empty.parentNode) empty.remove();
    log.appendChild(node);
    renderedSomething = true;
    return node;
  }

  function clearTranscript() {
    log.replaceChildren(empty);
    stick = true;
    calls.clear();
    renderedSomething = false;
  }

  function setThinking(on) { thinking.hidden = !on; }

  function setStatus(state, text) {
    statusBox.dataset.state = state;
    statusText.textContent = text;
  }

  function setReady(on) {
    ready = on;
    input.disabled = !on;
    sendBtn.disabled = !on;
    resetBtn.disabled = !on;
    endBtn.disabled = !on;
  }

  function showBanner(text) {
    bannerText.textContent = text;
    banner.hidden = false;
  }
  function hideBanner() { banner.hidden = true; }

  // ---- turns in flight and streamed answers -------------------------------------------------
  // activeTurn: the turnId the server is working on (agent:thinking); streams: turnId -> the
  // assistant bubble its agent:delta text goes into until agent:response (or a tool call) ends it.
  let activeTurn = null;
  const streams = new Map();

  function setRunning(turnId) {
    activeTurn = turnId;
    stopBtn.hidden = !turnId;
    stopBtn.disabled = false;
  }

  function streamFor(turnId) {
    let s = streams.get(turnId);
    if (s) return s;
    const item = el("article", "msg msg-assistant is-streaming");
    item.dataset.turnId = turnId;
    item.dataset.deltas = "0";
    const head = el("header", "msg-head");
    head.appendChild(el("span", "msg-who", "Agent"));
    item.appendChild(head);
    const body = el("div", "msg-body");
    const text = el("p", "text", "");
    body.appendChild(text);
    item.appendChild(body);
    s = { item, body, text, content: "" };
    streams.set(turnId, s);
    append(item);
    return s;
  }

  function onDelta(p) {
    if (!p || typeof p.turnId !== "string" || typeof p.text !== "string") return;
    setThinking(false);
    const s = streamFor(p.turnId);
    const stick = nearBottom();
    s.content += p.text;
    s.text.textContent = s.content;
    s.item.dataset.deltas = String(Number(s.item.dataset.deltas) + 1);
    if (stick) log.scrollTop = log.scrollHeight;
  }

  // The streamed bubble of `turnId` becomes a finished message: `final` (agent:response) replaces
  // its text; `note` marks how it ended.
  function endStream(turnId, final, note) {
    const s = turnId && streams.get(turnId);
    if (!s) return false;
    streams.delete(turnId);
    s.item.classList.remove("is-streaming");
    const content = typeof final === "string" ? final : s.content;
    s.body.replaceChildren(richText(content));
    if (note) s.item.appendChild(el("p", "msg-note is-stopped", note));
    if (!content.trim() && !note) s.item.remove();
    return true;
  }

  function stop() {
    if (!socket || !activeTurn || stopBtn.disabled) return;
    stopBtn.disabled = true;
    const turnId = activeTurn;
    socket.emit("agent:cancel", { turnId }, (ack) => {
      if (ack && ack.ok === false) {
        stopBtn.disabled = false;
        // The turn ended on its own meanwhile: nothing to say.
        if (ack.code !== "NO_ACTIVE_TURN") addError(ack.code, ack.message, ack);
      }
    });
  }

  // ---- transcript items ----------------------------------------------------------------------
  function addMessage(role, content, ts) {
    const item = el("article", "msg msg-" + role);
    const who = role === "user" ? "You" : role === "assistant" ? "Agent" : role;
    const head = el("header", "msg-head");
    head.appendChild(el("span", "msg-who", who));
    const t = timeLabel(ts);
    if (t) head.appendChild(el("time", "msg-time", t));
    item.appendChild(head);
    const body = el("div", "msg-body");
    if (role === "assistant") body.appendChild(richText(content));
    else body.appendChild(el("p", "text", content));
    item.appendChild(body);
    return append(item);
  }

  function addSystem(text) {
    return append(el("p", "sys", text));
  }

  function addError(code, message, extra) {
    // Berth may report one refusal both in the ack and as agent:error (with different wording).
    const key = code ? code + "|" + ((extra && extra.callId) || "") : "|" + (message || "");
    const now = Date.now();
    const last = recentErrors.get(key);
    if (last && now - last < ERROR_DEDUP_MS) return null; // same error from ack and event
    recentErrors.set(key, now);
    const box = el("div", "err");
    box.setAttribute("role", "alert");
    box.appendChild(el("span", "err-code", code || "ERROR"));
    let text = message || "Something went wrong.";
    if (extra && extra.retryAfterMs) text += " Try again in " + Math.ceil(extra.retryAfterMs / 1000) + " s.";
    box.appendChild(el("span", "err-text", text));
    return append(box);
  }

  function cardFor(callId, name) {
    let c = calls.get(callId);
    if (c) return c;
    const card = el("section", "call");
    card.dataset.callId = callId;
    const headId = "call-" + callId.replace(/[^A-Za-z0-9_-]/g, "_");
    card.setAttribute("aria-labelledby", headId);
    const head = el("header", "call-head");
    const title = el("h2", "call-title");
    title.id = headId;
    title.appendChild(el("span", "call-kind", "Tool call"));
    title.appendChild(el("code", "call-name", name || "tool"));
    head.appendChild(title);
    const pos = el("span", "call-pos");
    head.appendChild(pos);
    const state = el("span", "call-state");
    head.appendChild(state);
    card.appendChild(head);
    const args = el("pre", "call-args");
    args.hidden = true;
    card.appendChild(args);
    const actions = el("div", "call-actions");
    actions.hidden = true;
    card.appendChild(actions);
    const outputs = el("div", "call-outputs");
    card.appendChild(outputs);
    c = { card, pos, state, args, actions, outputs, name: name || "tool", decided: false };
    calls.set(callId, c);
    append(card);
    return c;
  }

  function setCallState(c, state, text) {
    c.card.dataset.state = state;
    c.state.textContent = text;
  }

  function onApprovalRequired(p) {
    if (!p || typeof p.callId !== "string") return;
    setThinking(false);
    const c = cardFor(p.callId, p.name);
    if (c.decided) return; // repeated notice after a reconnect
    if (typeof p.turnId === "string") c.turnId = p.turnId;
    c.args.textContent = pretty(p.args);
    c.args.hidden = false;
    if (p.queuePosition && p.totalInQueue) {
      c.pos.textContent = p.queuePosition + " of " + p.totalInQueue;
    }
    setCallState(c, "pending", "Waiting for approval");
    c.actions.replaceChildren();
    const approve = el("button", "btn btn-primary", "Approve");
    approve.type = "button";
    approve.setAttribute("aria-label", "Approve " + c.name);
    const reject = el("button", "btn btn-outline", "Reject");
    reject.type = "button";
    reject.setAttribute("aria-label", "Reject " + c.name);
    approve.addEventListener("click", () => decide(p.callId, true));
    reject.addEventListener("click", () => decide(p.callId, false));
    c.actions.append(approve, reject);
    c.actions.hidden = false;
    if (focusNextApproval) {
      focusNextApproval = false;
      approve.focus();
    }
  }

  function decide(callId, approved) {
    const c = calls.get(callId);
    if (!c || c.decided || !socket) return;
    const hadFocus = c.actions.contains(document.activeElement);
    c.decided = true;
    for (const b of c.actions.querySelectorAll("button")) b.disabled = true;
    setCallState(c, approved ? "approved" : "rejected", approved ? "Approved — sending…" : "Rejecting…");
    socket.emit("tool:approval", { callId, approved }, (ack) => {
      c.actions.hidden = true;
      c.actions.replaceChildren();
      if (ack && ack.ok === false) {
        setCallState(c, "error", "Not applied");
        addError(ack.code, ack.message, { callId });
      } else if (approved) {
        if (c.card.dataset.state !== "done" && c.card.dataset.state !== "failed") setCallState(c, "approved", "Approved");
      } else {
        setCallState(c, "rejected", "Rejected");
      }
      if (hadFocus) {
        // Keyboard flow: go on to the next undecided call if it is already here, else wait for it
        // in the message box.
        const next = [...calls.values()].find((o) => !o.decided && !o.actions.hidden);
        const btn = next && next.actions.querySelector("button");
        if (btn) {
          btn.focus();
        } else {
          focusNextApproval = true;
          input.focus();
        }
      }
    });
  }

  function addToolOutput(p, fromHistory) {
    if (!p) return;
    const callId = typeof p.callId === "string" && p.callId ? p.callId : "anon-" + Math.random().toString(36).slice(2);
    const c = cardFor(callId, p.name);
    const out = el("div", "call-output" + (p.isError ? " is-error" : ""));
    const meta = el("div", "call-output-meta");
    meta.appendChild(el("span", null, p.isError ? "Error output" : "Output"));
    if (typeof p.durationMs === "number") meta.appendChild(el("span", "muted", p.durationMs + " ms"));
    out.appendChild(meta);
    const content = typeof p.content === "string" ? p.content : pretty(p.content);
    const pre = el("pre", "call-output-body");
    pre.textContent = content === "" ? "(no output)" : content;
    out.appendChild(pre);
    c.outputs.appendChild(out);
    c.actions.hidden = true;
    if (fromHistory) c.decided = true;
    if (c.card.dataset.state !== "rejected")
      setCallState(c, p.isError ? "failed" : "done", p.isError ? "Failed" : fromHistory ? "Completed" : "Done");
  }

  function renderHistory(history) {
    clearTranscript();
    for (const m of history) {
      if (!m || typeof m !== "object") continue;
      const content = typeof m.content === "string" ? m.content : m.content == null ? "" : pretty(m.content);
      if (m.role === "tool") {
        addToolOutput({ callId: m.callId, name: m.name, content, isError: false }, true);
      } else if (m.role === "user" || m.role === "assistant") {
        if (content.trim()) addMessage(m.role, content, m.ts);
      } else if (content.trim()) {
        addSystem(content);
      }
    }
  }

  // ---- connection ----------------------------------------------------------------------------
  function connect() {
    if (typeof window.io !== "function") {
      setStatus("error", "Socket.IO client failed to load");
      showBanner("The chat client could not be loaded. Reload the page to try again.");
      return;
    }
    ended = false;
    hideBanner();
    const saved = loadSession();
    const query = {};
    if (saved) query.sessionId = saved.sessionId;
    setStatus("connecting", "Connecting…");
    setReady(false);
    socket = window.io({
      query,
      // A function so every (re)connection sends the newest token.
      auth: (cb) => {
        const s = loadSession();
        cb(s && s.resumeToken ? { resumeToken: s.resumeToken } : {});
      },
    });
    const manager = socket.io;

    socket.on("connect", () => {
      // Connection state recovery: the same socket, its missed events replayed, no system:ready.
      if (socket.recovered) {
        setStatus("resumed", "Reconnected");
        setReady(true);
        hideBanner();
        return;
      }
      for (const turnId of [...streams.keys()]) endStream(turnId, undefined, "Interrupted.");
      if (!ready) setStatus("connecting", "Connected, preparing your sandbox…");
    });

    socket.on("system:queued", (p) => {
      const pos = p && p.position ? p.position : "?";
      setStatus("queued", "Queued — position " + pos);
    });

    socket.on("system:ready", (p) => {
      p = p || {};
      if (typeof p.sessionId === "string" && p.sessionId) {
        saveSession(p.sessionId, p.resumeToken);
        manager.opts.query = Object.assign({}, manager.opts.query, { sessionId: p.sessionId });
      }
      const cid = shortId(p.containerId);
      if (p.resumed) {
        setStatus("resumed", "Resumed" + (cid ? " — container " + cid : ""));
        if (Array.isArray(p.history) && !renderedSomething) renderHistory(p.history);
        if (!renderedSomething) addSystem("Session resumed.");
      } else {
        setStatus("ready", "Ready" + (cid ? " — container " + cid : ""));
      }
      statusBox.title = [p.containerId ? "container " + p.containerId : "", p.model ? "model " + p.model : "",
        p.provider ? "provider " + p.provider : ""].filter(Boolean).join(" · ");
      setReady(true);
      hideBanner();
    });

    socket.on("agent:thinking", (p) => {
      setThinking(true);
      setRunning(p && typeof p.turnId === "string" ? p.turnId : "?");
    });

    socket.on("agent:delta", onDelta);

    socket.on("agent:response", (text) => {
      setThinking(false);
      const content = typeof text === "string" ? text : text && typeof text.text === "string" ? text.text : pretty(text);
      if (!endStream(activeTurn, content) && content.trim()) addMessage("assistant", content);
      setRunning(null);
      focusNextApproval = false;
    });

    socket.on("agent:cancelled", (p) => {
      const turnId = p && p.turnId;
      setThinking(false);
      if (!endStream(turnId, undefined, "Stopped.")) addSystem(p && p.queued ? "Queued message cancelled." : "Stopped.");
      if (turnId === activeTurn) setRunning(null);
      // The cancelled turn's calls that were waiting or running did not (and will not) finish.
      for (const c of calls.values()) {
        if (c.turnId && turnId && c.turnId !== turnId) continue;
        if (c.decided && c.card.dataset.state !== "approved") continue;
        c.decided = true;
        c.actions.hidden = true;
        if (c.card.dataset.state === "pending" || c.card.dataset.state === "approved") setCallState(c, "stopped", "Stopped");
      }
    });

    socket.on("tool:approval_required", (p) => {
      // Text streamed before the model asked for a tool stays as a message of its own.
      if (p && p.turnId) endStream(p.turnId);
      onApprovalRequired(p);
    });
    socket.on("tool:output", (p) => addToolOutput(p, false));

    socket.on("agent:error", (e) => {
      setThinking(false);
      focusNextApproval = false;
      if (typeof e === "string") e = { code: "ERROR", message: e };
      e = e || {};
      if (!e.callId && e.turnId) {
        endStream(e.turnId, undefined, "Interrupted.");
        if (e.turnId === activeTurn) setRunning(null);
      }
      addError(e.code, e.message, e);
      if (e.callId && calls.has(e.callId)) {
        const c = calls.get(e.callId);
        c.actions.hidden = true;
        setCallState(c, "failed", "Failed");
      }
    });

    socket.on("system:message", (text) => {
      systemMessages += 1;
      addSystem(typeof text === "string" ? text : pretty(text));
    });

    socket.on("connect_error", (err) => {
      const code = err && err.data && err.data.code;
      setReady(false);
      if (code === "SESSION_FORBIDDEN" || code === "UNAUTHORIZED") {
        setStatus("error", code === "UNAUTHORIZED" ? "Not authorised" : "Session not available");
        showBanner((code || "") + ": " + (err.message || "the saved session cannot be resumed") + ".");
        return;
      }
      if (!socket.active) {
        setStatus("error", "Connection refused");
        showBanner((code ? code + ": " : "") + (err && err.message ? err.message : "connection refused"));
      } else {
        setStatus("reconnecting", "Reconnecting…");
      }
    });

    socket.on("disconnect", (reason) => {
      setReady(false);
      setThinking(false);
      // A stream cut by a lost connection may go on after a recovery (its deltas are replayed);
      // the next connect ends it if the connection was not recovered.
      if (reason === "io server disconnect" || reason === "io client disconnect")
        for (const turnId of [...streams.keys()]) endStream(turnId, undefined, "Interrupted.");
      setRunning(null);
      if (ended) return;
      if (reason === "io server disconnect") {
        setStatus("error", "Disconnected by the server");
        showBanner("The server closed this session.");
      } else {
        setStatus("reconnecting", "Reconnecting…");
      }
    });

    manager.on("reconnect_attempt", (n) => setStatus("reconnecting", "Reconnecting… (attempt " + n + ")"));
  }

  function startOver() {
    if (socket) {
      socket.removeAllListeners();
      socket.io.removeAllListeners();
      socket.disconnect();
      socket = null;
    }
    clearSession();
    clearTranscript();
    setThinking(false);
    connect();
  }

  // ---- user actions ----------------------------------------------------------------------------
  function send() {
    const text = input.value.trim();
    if (!text || !ready || !socket) return;
    input.value = "";
    autosize();
    const item = addMessage("user", text);
    socket.emit("message", text, (ack) => {
      if (ack && ack.ok === false) {
        item.classList.add("is-failed");
        item.appendChild(el("p", "msg-note", "Not accepted"));
        addError(ack.code, ack.message, ack);
      }
    });
  }

  function autosize() {
    input.rows = Math.min(6, Math.max(1, input.value.split("\n").length));
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    send();
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  input.addEventListener("input", autosize);
  stopBtn.addEventListener("click", stop);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && activeTurn && !stopBtn.hidden) {
      e.preventDefault();
      stop();
    }
  });

  resetBtn.addEventListener("click", () => {
    if (!socket || !ready) return;
    resetBtn.disabled = true;
    const before = Array.from(log.children);
    const sysBefore = systemMessages;
    socket.emit("history:reset", (ack) => {
      resetBtn.disabled = !ready;
      if (ack && ack.ok === false) {
        addError(ack.code, ack.message, ack);
        return;
      }
      // Drop what was shown before the reset; keep anything the server sent since.
      for (const node of before) if (node !== empty) node.remove();
      for (const [id, c] of calls) if (!c.card.isConnected) calls.delete(id);
      if (systemMessages === sysBefore) addSystem("History cleared.");
      if (!log.children.length) log.appendChild(empty);
    });
  });

  endBtn.addEventListener("click", () => {
    if (!socket || !ready) return;
    endBtn.disabled = true;
    const s = socket;
    s.emit("session:end", (ack) => {
      if (ack && ack.ok === false) {
        endBtn.disabled = !ready;
        addError(ack.code, ack.message, ack);
        return;
      }
      ended = true;
      clearSession();
      s.removeAllListeners();
      s.io.removeAllListeners();
      s.disconnect();
      socket = null;
      setReady(false);
      setThinking(false);
      setStatus("ended", "Session ended");
      addSystem("Session ended. Its container has been removed.");
      showBanner("This session has ended.");
      restartBtn.focus();
    });
  });

  restartBtn.addEventListener("click", startOver);

  connect();
})();
