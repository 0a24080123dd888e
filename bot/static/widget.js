/*! Clinic chat widget. One file, no dependencies, no cookies, no requests to anyone but the bot.
 *
 *   <script src="https://BOT/widget.js" defer data-title="Ask our assistant" data-color="#14606e"
 *           data-position="right" data-greeting="Hi! How can we help?"></script>
 *
 * Everything lives in a shadow root styled by a constructable stylesheet, so the page's CSS cannot reach
 * in and ours cannot leak out. Every piece of text is inserted with textContent; links are http(s) or tel.
 * Icons: Material Icons paths (Apache License 2.0).
 */
(() => {
  "use strict";
  if (window.clinicChatWidget) return; // pasted twice: one widget

  const script = document.currentScript ||
    Array.prototype.find.call(document.scripts, (s) => /\/widget\.js(?:[?#]|$)/.test(s.src));
  if (!script || !script.src) return;

  // The bot's base URL is wherever this file came from (works behind a path prefix too).
  const BASE = new URL(".", script.src);
  const url = (path) => new URL(path, BASE).href;
  const STORE_KEY = "clinic-chat:v1:" + BASE.href;
  const TIMEOUT_MS = 30000;
  const MAX_ITEMS = 60;
  const STREAM_UNSUPPORTED = new Set([404, 405, 406, 415, 501]);

  // ---- options -------------------------------------------------------------------------------------
  const data = script.dataset || {};
  const clean = (value, max) => (typeof value === "string" ? value.replace(/\s+/g, " ").trim().slice(0, max) : "");
  const TITLE = clean(data.title, 60) || "Chat with us";
  const GREETING = clean(data.greeting, 400);
  const POSITION = data.position === "left" ? "left" : "right";
  const ACCENT = /^#(?:[0-9a-f]{3}|[0-9a-f]{6})$/i.test(data.color || "") ? data.color : "#14606e";

  function luminance(hex) {
    let h = hex.slice(1);
    if (h.length === 3) h = h.replace(/./g, "$&$&");
    const ch = [0, 2, 4].map((i) => parseInt(h.slice(i, i + 2), 16) / 255)
      .map((c) => (c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4)));
    return 0.2126 * ch[0] + 0.7152 * ch[1] + 0.0722 * ch[2];
  }
  const contrast = (a, b) => (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  // Text on the accent colour: whichever of white or near-black reads better (>= 4.5:1 for any sane colour).
  const ACCENT_FG = contrast(luminance(ACCENT), 1) >= contrast(luminance(ACCENT), luminance("#111111"))
    ? "#ffffff" : "#111111";

  // ---- styles --------------------------------------------------------------------------------------
  // px everywhere (never rem): the page's root font-size must not scale the widget.
  const CSS = `
:host { all: initial !important; display: block !important; position: static !important;
  width: 0 !important; height: 0 !important; visibility: visible !important; }
.root { all: initial; display: block; font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue",
  Arial, sans-serif; font-size: 15px; line-height: 1.45; color: #1b1e21; font-weight: 400; font-style: normal;
  letter-spacing: normal; word-spacing: normal; text-transform: none; text-align: left; direction: ltr;
  -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
.root *, .root *::before, .root *::after { box-sizing: border-box; }
button, input, textarea { font: inherit; color: inherit; letter-spacing: inherit; margin: 0; }
button { cursor: pointer; }
a { color: #0b4f8a; }
p { margin: 0; }
svg { display: block; fill: currentColor; flex: none; }
.sr { position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px; overflow: hidden;
  clip: rect(0 0 0 0); white-space: nowrap; border: 0; }

.launcher { position: fixed; bottom: 20px; right: 20px; z-index: 2147483000; display: inline-flex;
  align-items: center; gap: 8px; min-height: 50px; padding: 0 20px 0 16px; border: 0; border-radius: 25px;
  background: ${ACCENT}; color: ${ACCENT_FG}; font-size: 16px; font-weight: 600;
  box-shadow: 0 4px 14px rgba(0, 0, 0, 0.28); }
.launcher svg { width: 24px; height: 24px; }
.left .launcher { right: auto; left: 20px; }

.panel { position: fixed; bottom: 84px; right: 20px; z-index: 2147483001; display: flex;
  flex-direction: column; width: 380px; max-width: calc(100vw - 40px); height: 640px;
  max-height: calc(100vh - 108px); background: #ffffff; color: #1b1e21; border: 1px solid #c9ced4;
  border-radius: 14px; box-shadow: 0 12px 40px rgba(0, 0, 0, 0.3); overflow: hidden; }
.panel[hidden] { display: none; }
.left .panel { right: auto; left: 20px; }

.header { display: flex; align-items: center; gap: 8px; padding: 10px 8px 10px 16px; background: ${ACCENT};
  color: ${ACCENT_FG}; flex: none; }
.heading { flex: 1; min-width: 0; }
.title { margin: 0; font-size: 16px; font-weight: 700; line-height: 1.3; }
.subtitle { font-size: 12px; line-height: 1.3; }
.hbtn { background: transparent; color: inherit; border: 1px solid currentColor; border-radius: 6px;
  padding: 4px 8px; font-size: 13px; min-height: 32px; white-space: nowrap; }
.close { border: 0; width: 36px; height: 36px; padding: 6px; border-radius: 18px; }
.close svg { width: 24px; height: 24px; }

.log { flex: 1; overflow-y: auto; padding: 14px; background: #f4f5f7; display: flex; flex-direction: column;
  gap: 10px; overscroll-behavior: contain; }
.msg { max-width: 88%; padding: 10px 12px; border-radius: 12px; overflow-wrap: anywhere; }
.msg .text { white-space: pre-wrap; }
.user { align-self: flex-end; background: ${ACCENT}; color: ${ACCENT_FG}; border-bottom-right-radius: 4px; }
.bot { align-self: flex-start; background: #ffffff; color: #1b1e21; border: 1px solid #d5d9de;
  border-bottom-left-radius: 4px; }
.bot.emergency { border: 3px solid #b00020; background: #fff4f4; max-width: 100%; }
.urgent { display: flex; align-items: center; gap: 6px; margin-bottom: 6px; color: #9c001c; font-weight: 700;
  font-size: 14px; text-transform: uppercase; letter-spacing: 0.04em; }
.urgent svg { width: 20px; height: 20px; }
.bot.error { border: 2px solid #8a4b00; background: #fff8e8; }
.note, .disclaimer { font-size: 12px; line-height: 1.4; color: #454b52; }
.disclaimer { margin-top: 8px; }
.intro-note { align-self: stretch; padding: 0 4px; }
.sources { margin-top: 8px; font-size: 13px; color: #454b52; }
.sources ul { margin: 2px 0 0; padding: 0 0 0 18px; }
.sources li { margin: 2px 0; color: #1b1e21; }
.actions { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 10px; }
.action { display: inline-flex; align-items: center; gap: 6px; min-height: 36px; padding: 6px 14px;
  border-radius: 18px; border: 0; background: ${ACCENT}; color: ${ACCENT_FG}; text-decoration: none;
  font-size: 14px; font-weight: 600; }
.action svg { width: 18px; height: 18px; }
.action.emergency { background: #b00020; color: #ffffff; }
.action.secondary { background: #ffffff; color: #1b1e21; border: 1px solid #5b6670; }
.chips { display: flex; flex-wrap: wrap; gap: 6px; align-self: flex-start; }
.chip { background: #ffffff; color: #1b1e21; border: 1px solid #5b6670; border-radius: 16px; padding: 6px 12px;
  font-size: 13px; line-height: 1.3; min-height: 32px; text-align: left; }
.chip:hover { background: #e9ecef; }
.feedback { display: flex; flex-wrap: wrap; align-items: center; gap: 6px; margin-top: 8px; font-size: 12px;
  color: #454b52; }
.fb { display: inline-flex; align-items: center; justify-content: center; background: #ffffff; color: #2f353b;
  border: 1px solid #8b949e; border-radius: 6px; width: 34px; height: 30px; padding: 0; }
.fb svg { width: 18px; height: 18px; }
.fb[aria-pressed="true"] { background: #e3ecf6; border-color: #0b4f8a; color: #0b4f8a; }
.fbform { display: flex; gap: 6px; width: 100%; margin-top: 4px; }
.fbform input { flex: 1; min-width: 0; border: 1px solid #6b7580; border-radius: 6px; padding: 4px 8px;
  font-size: 13px; background: #ffffff; }
.fbform button { border: 1px solid #5b6670; background: #ffffff; border-radius: 6px; padding: 4px 10px;
  font-size: 13px; }
.typing { align-self: flex-start; display: inline-flex; gap: 5px; padding: 12px 14px; background: #ffffff;
  border: 1px solid #d5d9de; border-radius: 12px; }
.typing span { width: 8px; height: 8px; border-radius: 4px; background: #5b6670; }
.composer { display: flex; align-items: flex-end; gap: 8px; padding: 10px; border-top: 1px solid #d5d9de;
  background: #ffffff; flex: none; }
.composer textarea { flex: 1; min-width: 0; resize: none; height: 42px; max-height: 120px; padding: 10px 12px;
  border: 1px solid #6b7580; border-radius: 8px; background: #ffffff; color: #1b1e21; font-size: 15px;
  line-height: 1.4; }
.composer textarea::placeholder { color: #5d646b; opacity: 1; }
.send { display: inline-flex; align-items: center; justify-content: center; width: 44px; height: 42px;
  border: 0; border-radius: 8px; background: ${ACCENT}; color: ${ACCENT_FG}; }
.send svg { width: 22px; height: 22px; }
.send:disabled { cursor: default; opacity: 0.55; }
.foot { padding: 0 12px 8px; background: #ffffff; font-size: 11px; color: #454b52; text-align: center; flex: none; }

@media (prefers-reduced-motion: no-preference) {
  .panel.opening { animation: ccw-in 160ms ease-out; }
  .typing span { animation: ccw-dot 1.2s infinite ease-in-out; }
  .typing span:nth-child(2) { animation-delay: 0.15s; }
  .typing span:nth-child(3) { animation-delay: 0.3s; }
}
@keyframes ccw-in { from { opacity: 0; transform: translateY(12px); } to { opacity: 1; transform: none; } }
@keyframes ccw-dot { 0%, 80%, 100% { opacity: 0.3; } 40% { opacity: 1; } }

@media (max-width: 480px) {
  .panel, .left .panel { top: 0; right: 0; bottom: 0; left: 0; width: 100%; max-width: none; height: 100%;
    max-height: none; border: 0; border-radius: 0; }
  .launcher { bottom: 14px; right: 14px; }
  .left .launcher { left: 14px; }
  .msg { max-width: 92%; }
}
/* Last and specific, so it wins over every component's own box-shadow: a white-and-black ring shows on any colour. */
.root :focus { outline: none; }
.root :focus-visible { outline: 2px solid transparent; box-shadow: 0 0 0 2px #ffffff, 0 0 0 5px #111111; }
@media (forced-colors: active) { .msg, .chip, .action, .launcher, .send { border: 1px solid CanvasText; } }
`;

  // ---- small DOM helpers (textContent only: no HTML is ever parsed) ------------------------------------
  const SVG_NS = "http://www.w3.org/2000/svg";
  const ICONS = {
    chat: "M20 2H4c-1.1 0-2 .9-2 2v18l4-4h14c1.1 0 2-.9 2-2V4c0-1.1-.9-2-2-2z",
    close: "M19 6.41 17.59 5 12 10.59 6.41 5 5 6.41 10.59 12 5 17.59 6.41 19 12 13.41 17.59 19 19 17.59 13.41 12z",
    send: "M2.01 21 23 12 2.01 3 2 10l15 2-15 2z",
    phone: "M6.62 10.79c1.44 2.83 3.76 5.14 6.59 6.59l2.2-2.2c.27-.27.67-.36 1.02-.24 1.12.37 2.33.57 3.57.57.55 0 " +
      "1 .45 1 1V20c0 .55-.45 1-1 1-9.39 0-17-7.61-17-17 0-.55.45-1 1-1h3.5c.55 0 1 .45 1 1 0 1.25.2 2.45.57 " +
      "3.57.11.35.03.74-.25 1.02l-2.2 2.2z",
    warn: "M1 21h22L12 2 1 21zm12-3h-2v-2h2v2zm0-4h-2v-4h2v4z",
    thumb: "M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 1 7.59 " +
      "7.59C7.22 7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z",
  };

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text != null) node.textContent = String(text);
    return node;
  }

  function icon(name, rotate) {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", ICONS[name]);
    if (rotate) path.setAttribute("transform", "rotate(180 12 12)");
    svg.appendChild(path);
    return svg;
  }

  // Only http(s) and tel links, ever; anything else (javascript:, data:, relative junk) is not a link.
  function safeHref(value) {
    if (typeof value !== "string" || !value) return null;
    try {
      const parsed = new URL(value);
      return ["http:", "https:", "tel:"].includes(parsed.protocol) ? parsed.href : null;
    } catch (_) {
      return null;
    }
  }

  // A citation of an article page of ours comes as "/articles/<slug>": it lives beside widget.js (even behind
  // a path prefix); an article published elsewhere comes as its absolute URL.
  function articleHref(value) {
    if (typeof value !== "string" || !value) return null;
    try {
      return new URL(value.replace(/^\/(?!\/)/, ""), BASE).href;
    } catch (_) {
      return null;
    }
  }

  function link(href, cls, text) {
    const a = el("a", cls, text);
    a.href = href;
    if (!href.startsWith("tel:")) {
      a.target = "_blank";
      a.rel = "noopener noreferrer";
    }
    return a;
  }

  // ---- storage (sessionStorage may be missing or throw: the widget still works, just forgets) ------
  function load() {
    try {
      const saved = JSON.parse(window.sessionStorage.getItem(STORE_KEY) || "null");
      return saved && saved.v === 1 && Array.isArray(saved.items) ? saved : null;
    } catch (_) {
      return null;
    }
  }

  function save() {
    try {
      window.sessionStorage.setItem(STORE_KEY, JSON.stringify({
        v: 1, sessionId: state.sessionId, open: state.open, items: state.items.slice(-MAX_ITEMS),
        config: state.config,
      }));
    } catch (_) { /* private mode or full: keep going without memory */ }
  }

  function forget() {
    try { window.sessionStorage.removeItem(STORE_KEY); } catch (_) { /* nothing stored */ }
  }

  const saved = load();
  const state = {
    open: false,
    busy: false,
    sessionId: saved ? saved.sessionId || null : null,
    items: saved ? saved.items : [],
    config: saved ? saved.config || null : null,
  };

  // ---- build the widget ----------------------------------------------------------------------------
  const host = document.createElement("div");
  host.id = "clinic-chat-widget";
  host.setAttribute("data-clinic-chat", "");
  const shadow = host.attachShadow({ mode: "open" });
  if ("adoptedStyleSheets" in Document.prototype && "replaceSync" in CSSStyleSheet.prototype) {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    shadow.adoptedStyleSheets = [sheet];
  } else { // older browsers: a <style> inside the shadow root (may be blocked by a strict page CSP)
    shadow.appendChild(el("style", null, CSS));
  }

  const root = el("div", "root " + POSITION);
  const launcher = el("button", "launcher");
  launcher.type = "button";
  launcher.setAttribute("aria-expanded", "false");
  launcher.setAttribute("aria-controls", "ccw-panel");
  launcher.setAttribute("aria-haspopup", "dialog");
  launcher.append(icon("chat"), el("span", null, TITLE));

  const panel = el("div", "panel");
  panel.id = "ccw-panel";
  panel.hidden = true;
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-modal", "false");
  panel.setAttribute("aria-labelledby", "ccw-title");

  const header = el("div", "header");
  const heading = el("div", "heading");
  const title = el("h2", "title", TITLE);
  title.id = "ccw-title";
  heading.append(title, el("div", "subtitle", "Automated assistant, answers from our articles"));
  const resetBtn = el("button", "hbtn", "New conversation");
  resetBtn.type = "button";
  const closeBtn = el("button", "hbtn close");
  closeBtn.type = "button";
  closeBtn.setAttribute("aria-label", "Close chat");
  closeBtn.appendChild(icon("close"));
  header.append(heading, resetBtn, closeBtn);

  const log = el("div", "log");
  log.setAttribute("role", "log");
  log.setAttribute("aria-live", "polite");
  log.setAttribute("aria-relevant", "additions");
  log.setAttribute("aria-label", "Conversation");
  log.tabIndex = 0; // scrollable region reachable by keyboard

  const form = el("form", "composer");
  form.setAttribute("novalidate", "");
  const input = el("textarea");
  input.rows = 1;
  input.id = "ccw-input";
  input.placeholder = "Type your question";
  input.setAttribute("aria-label", "Your message");
  input.setAttribute("enterkeyhint", "send");
  input.autocomplete = "off";
  input.maxLength = 2000;
  const sendBtn = el("button", "send");
  sendBtn.type = "submit";
  sendBtn.setAttribute("aria-label", "Send");
  sendBtn.appendChild(icon("send"));
  form.append(input, sendBtn);
  const foot = el("div", "foot", "Please don't share personal details.");
  function showConfig(cfg) {
    input.maxLength = cfg.max_message_chars || 2000;
    if (cfg.emergency_number) {
      foot.textContent = "Please don't share personal details. In an emergency call " + cfg.emergency_number + ".";
    }
  }

  panel.append(header, log, form, foot);
  root.append(panel, launcher);
  shadow.appendChild(root);

  // ---- rendering -----------------------------------------------------------------------------------
  const reducedMotion = () => window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  function scrollDown() {
    log.scrollTo({ top: log.scrollHeight, behavior: reducedMotion() ? "auto" : "smooth" });
  }
  // A long answer is read from its first line (with the question above it when both fit), not its last.
  function scrollToMessage(node) {
    const room = log.clientHeight - 16;
    if (node.offsetHeight + 60 <= room) {
      scrollDown();
      return;
    }
    const prev = node.previousElementSibling;
    const start = prev && prev.classList.contains("user") && node.offsetTop + node.offsetHeight - prev.offsetTop <= room
      ? prev : node;
    log.scrollTo({ top: start.offsetTop - log.offsetTop - 8, behavior: reducedMotion() ? "auto" : "smooth" });
  }

  function renderUser(text) {
    const node = el("div", "msg user");
    node.appendChild(el("span", "sr", "You said: "));
    node.appendChild(el("p", "text", text));
    return node;
  }

  function renderIntro(item) {
    const frag = document.createDocumentFragment();
    const bubble = el("div", "msg bot intro");
    bubble.appendChild(el("p", "text", item.greeting));
    frag.appendChild(bubble);
    if (item.disclaimer) frag.appendChild(el("p", "note intro-note", item.disclaimer)); // once a conversation
    return frag;
  }

  function renderActions(actions) {
    const allowed = (Array.isArray(actions) ? actions : [])
      .map((a, i) => ({ a, i, href: safeHref(a && a.value) }))
      .filter((x) => x.href && typeof x.a.label === "string")
      // emergency first, otherwise as the core ordered them
      .sort((x, y) => (x.a.type === "emergency" ? 0 : 1) - (y.a.type === "emergency" ? 0 : 1) || x.i - y.i);
    if (!allowed.length) return null;
    const box = el("div", "actions");
    for (const { a, href } of allowed) {
      const cls = "action" + (a.type === "emergency" ? " emergency" : a.type === "link" ? " secondary" : "");
      const node = link(href, cls, null);
      node.setAttribute("data-type", a.type);
      if (href.startsWith("tel:")) node.appendChild(icon("phone"));
      node.appendChild(el("span", null, a.label));
      box.appendChild(node);
    }
    return box;
  }

  function renderCitations(citations) {
    const list = (Array.isArray(citations) ? citations : []).filter((c) => c && c.title);
    if (!list.length) return null;
    const box = el("div", "sources");
    box.appendChild(el("span", null, list.length > 1 ? "From our articles:" : "From our article:"));
    const ul = el("ul");
    const seen = new Set();
    for (const c of list) {
      const key = c.title + "|" + (c.url || "");
      if (seen.has(key)) continue;
      seen.add(key);
      const li = el("li", "citation");
      const href = safeHref(articleHref(c.url));
      if (href && !href.startsWith("tel:")) li.appendChild(link(href, null, c.title));
      else li.appendChild(el("span", null, c.title));
      if (c.snippet) li.title = String(c.snippet);
      ul.appendChild(li);
    }
    box.appendChild(ul);
    return box;
  }

  function renderFeedback(item) {
    const box = el("div", "feedback");
    if (item.rated) {
      box.appendChild(el("span", null, "Thanks for your feedback."));
      return box;
    }
    box.appendChild(el("span", null, "Was this helpful?"));
    const up = el("button", "fb");
    up.type = "button";
    up.setAttribute("aria-label", "Yes, helpful");
    up.setAttribute("aria-pressed", "false");
    up.appendChild(icon("thumb"));
    const down = el("button", "fb");
    down.type = "button";
    down.setAttribute("aria-label", "No, not helpful");
    down.setAttribute("aria-pressed", "false");
    down.appendChild(icon("thumb", true));
    box.append(up, down);
    up.addEventListener("click", () => rate(item, box, "up", null));
    down.addEventListener("click", () => {
      if (box.querySelector(".fbform")) return;
      down.setAttribute("aria-pressed", "true");
      const f = el("form", "fbform");
      const comment = el("input");
      comment.type = "text";
      comment.maxLength = 1000;
      comment.placeholder = "What was missing? (optional)";
      comment.setAttribute("aria-label", "What was missing? (optional)");
      const go = el("button", null, "Send");
      go.type = "submit";
      f.append(comment, go);
      f.addEventListener("submit", (e) => {
        e.preventDefault();
        rate(item, box, "down", comment.value.trim() || null);
      });
      box.appendChild(f);
      comment.focus();
    });
    return box;
  }

  async function rate(item, box, rating, comment) {
    const focusWasInside = box.contains(shadow.activeElement);
    box.replaceChildren(el("span", null, "Sending..."));
    let ok = false;
    try {
      const body = { reply_id: item.r.reply_id, rating };
      if (comment) body.comment = comment.slice(0, 1000);
      const resp = await request("feedback", body, "application/json");
      ok = resp.ok;
    } catch (_) { ok = false; }
    if (ok) {
      item.rated = rating;
      save();
      box.replaceChildren(el("span", null, "Thanks for your feedback."));
    } else {
      box.replaceChildren(el("span", null, "Sorry, your feedback could not be sent."));
    }
    if (focusWasInside) input.focus();
  }

  function renderBot(item) {
    const r = item.r;
    const emergency = r.kind === "emergency";
    const node = el("div", "msg bot kind-" + (r.kind || "answer") + (emergency ? " emergency" : ""));
    node.setAttribute("data-kind", r.kind || "");
    if (emergency) {
      node.setAttribute("role", "alert");
      const label = el("div", "urgent");
      label.append(icon("warn"), el("span", null, "Get help now"));
      node.appendChild(label);
    }
    node.appendChild(el("p", "text", r.reply || ""));
    const sources = renderCitations(r.citations);
    if (sources) node.appendChild(sources);
    const actions = renderActions(r.actions);
    if (actions) node.appendChild(actions);
    if (r.kind === "answer" && r.disclaimer) node.appendChild(el("p", "disclaimer", r.disclaimer));
    if (r.kind === "answer" && r.reply_id) node.appendChild(renderFeedback(item));
    return node;
  }

  function renderChips(questions) {
    const list = (Array.isArray(questions) ? questions : []).filter((q) => typeof q === "string" && q).slice(0, 4);
    if (!list.length) return null;
    const box = el("div", "chips");
    box.setAttribute("role", "group");
    box.setAttribute("aria-label", "Suggested questions");
    for (const q of list) {
      const chip = el("button", "chip", q);
      chip.type = "button";
      chip.addEventListener("click", () => send(q));
      box.appendChild(chip);
    }
    return box;
  }

  function removeTransient() {
    log.querySelectorAll(".chips, .error").forEach((n) => n.remove());
  }

  function suggestionsOf(item) {
    if (!item) return [];
    if (item.t === "intro") return item.suggestions;
    if (item.t === "bot") return item.r.suggestions;
    return [];
  }

  function renderAll() {
    log.replaceChildren();
    for (const item of state.items) {
      if (item.t === "user") log.appendChild(renderUser(item.text));
      else if (item.t === "intro") log.appendChild(renderIntro(item));
      else if (item.t === "bot") log.appendChild(renderBot(item));
    }
    const chips = renderChips(suggestionsOf(state.items[state.items.length - 1]));
    if (chips) log.appendChild(chips);
  }

  let typing = null;
  function showTyping() {
    if (typing) return;
    typing = el("div", "typing");
    typing.setAttribute("role", "status");
    typing.append(el("span"), el("span"), el("span"), el("span", "sr", "The assistant is typing"));
    log.appendChild(typing);
    scrollDown();
  }
  function hideTyping() {
    if (typing) typing.remove();
    typing = null;
  }

  function showError(err, retryText) {
    const box = el("div", "msg bot error");
    box.setAttribute("role", "alert");
    const phone = state.config && state.config.phone;
    let text;
    if (err && err.detail && err.status >= 400 && err.status < 500) {
      text = err.detail; // the API says what to fix ("please shorten it", "wait 10 s")
    } else {
      text = "Sorry, I can't reach the assistant right now. Please try again in a moment" +
        (phone ? ", or call the clinic at " + phone + "." : ".");
    }
    box.appendChild(el("p", "text", text));
    const buttons = el("div", "actions");
    const canRetry = !err || !err.status || err.status >= 500 || err.status === 429 || err.status === 408;
    if (canRetry) {
      const retry = el("button", "action retry", "Retry");
      retry.type = "button";
      retry.addEventListener("click", () => {
        box.remove();
        if (retryText == null) start();
        else send(retryText, { again: true });
      });
      buttons.appendChild(retry);
    }
    const tel = state.config && safeHref(state.config.phone_tel);
    if (tel) {
      const call = link(tel, "action secondary", null);
      call.append(icon("phone"), el("span", null, "Call the clinic"));
      buttons.appendChild(call);
    }
    if (buttons.childNodes.length) box.appendChild(buttons);
    log.appendChild(box);
    scrollDown();
    return box;
  }

  // ---- network -------------------------------------------------------------------------------------
  class HttpError extends Error {
    constructor(status, detail) {
      super("HTTP " + status);
      this.status = status;
      this.detail = detail;
    }
  }

  function request(path, body, accept, signal) {
    return fetch(url(path), {
      method: body === undefined ? "GET" : "POST",
      headers: body === undefined ? { Accept: accept } : { "Content-Type": "application/json", Accept: accept },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit", // no cookies, ever
      cache: "no-store",
      mode: "cors",
      referrerPolicy: "no-referrer",
      signal,
    });
  }

  async function httpError(resp) {
    let detail = null;
    try {
      const body = await resp.json();
      if (body && typeof body.detail === "string") detail = body.detail;
    } catch (_) { /* not JSON */ }
    return new HttpError(resp.status, detail);
  }

  async function readStream(resp, onSentence) {
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let reply = null;
    const handle = (block) => {
      let event = "message";
      const lines = [];
      for (const line of block.split(/\r\n|\r|\n/)) {
        if (!line || line.startsWith(":")) continue; // keep-alive comments
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") event = value;
        else if (field === "data") lines.push(value);
      }
      if (!lines.length) return;
      const payload = JSON.parse(lines.join("\n"));
      if (event === "sentence" && payload && typeof payload.text === "string") onSentence(payload.text);
      else if (event === "reply") reply = payload;
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let match;
      while ((match = /\r\n\r\n|\n\n|\r\r/.exec(buffer))) {
        handle(buffer.slice(0, match.index));
        buffer = buffer.slice(match.index + match[0].length);
      }
    }
    if (buffer.trim()) handle(buffer);
    if (!reply || typeof reply.reply !== "string") throw new Error("the stream ended early");
    return reply;
  }

  // The reply to one message: streamed when the browser and server can, else one POST /chat.
  async function ask(text, onSentence) {
    const body = { message: text, session_id: state.sessionId };
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
    try {
      if (window.ReadableStream && window.TextDecoder) {
        let resp = null;
        try {
          resp = await request("chat/stream", body, "text/event-stream", controller.signal);
        } catch (e) {
          if (e && e.name === "AbortError") throw e;
          resp = null; // network error on the stream: one plain attempt below
        }
        if (resp) {
          const type = resp.headers.get("content-type") || "";
          if (resp.ok && resp.body && type.startsWith("text/event-stream")) return await readStream(resp, onSentence);
          if (!resp.ok && !STREAM_UNSUPPORTED.has(resp.status)) throw await httpError(resp);
        }
      }
      const resp = await request("chat", body, "application/json", controller.signal);
      if (!resp.ok) throw await httpError(resp);
      const reply = await resp.json();
      if (!reply || typeof reply.reply !== "string") throw new Error("unexpected reply");
      return reply;
    } finally {
      clearTimeout(timer);
    }
  }

  async function loadConfig() {
    const resp = await request("widget/config", undefined, "application/json");
    if (!resp.ok) throw await httpError(resp);
    state.config = await resp.json();
    showConfig(state.config);
    save();
    return state.config;
  }

  // ---- behaviour -----------------------------------------------------------------------------------
  function pick(reply) { // what we keep of a Reply (and re-render after a reload)
    return {
      kind: reply.kind, reply: reply.reply, citations: reply.citations || [], actions: reply.actions || [],
      suggestions: reply.suggestions || [], disclaimer: reply.disclaimer || null, reply_id: reply.reply_id || null,
    };
  }

  function push(item) {
    state.items.push(item);
    if (state.items.length > MAX_ITEMS) state.items.splice(0, state.items.length - MAX_ITEMS);
    save();
  }

  function setBusy(busy) {
    state.busy = busy;
    sendBtn.disabled = busy;
    log.setAttribute("aria-busy", busy ? "true" : "false");
  }

  async function send(raw, opts) {
    const text = String(raw || "").trim();
    if (!text || state.busy) return;
    const max = (state.config && state.config.max_message_chars) || 2000;
    if (text.length > max) {
      showError(new HttpError(422, "Your message is " + text.length + " characters; please keep it under " +
        max + "."), null);
      return;
    }
    removeTransient();
    if (!(opts && opts.again)) {
      push({ t: "user", text });
      log.appendChild(renderUser(text));
      input.value = "";
      input.style.height = "";
    }
    setBusy(true);
    showTyping();
    let bubble = null;
    let para = null;
    try {
      const reply = await ask(text, (sentence) => {
        hideTyping();
        if (!bubble) {
          bubble = el("div", "msg bot streaming");
          para = el("p", "text");
          bubble.appendChild(para);
          log.appendChild(bubble);
        }
        para.textContent = (para.textContent ? para.textContent + " " : "") + sentence;
        scrollDown();
      });
      hideTyping();
      if (reply.session_id) state.sessionId = reply.session_id;
      const item = { t: "bot", r: pick(reply), rated: null };
      push(item);
      const node = renderBot(item);
      if (bubble) bubble.replaceWith(node); else log.appendChild(node);
      const chips = renderChips(item.r.suggestions);
      if (chips) log.appendChild(chips);
      setBusy(false);
      scrollToMessage(node);
    } catch (err) {
      hideTyping();
      if (bubble) bubble.remove(); // half an answer about health is worse than none
      setBusy(false);
      showError(err, text);
    }
  }

  // The greeting, the disclaimer (once a conversation) and suggested questions.
  async function start() {
    if (state.items.length) return;
    showTyping();
    try {
      const cfg = state.config || (await loadConfig());
      hideTyping();
      if (state.items.length) return;
      const item = {
        t: "intro", greeting: GREETING || cfg.greeting, disclaimer: cfg.disclaimer || null,
        suggestions: (cfg.suggested_questions || []).slice(0, 4),
      };
      push(item);
      renderAll();
    } catch (err) {
      hideTyping();
      showError(err, null);
    }
  }

  function open(focus) {
    if (state.open && !panel.hidden) {
      if (focus !== false) input.focus();
      return;
    }
    state.open = true;
    panel.hidden = false;
    panel.classList.add("opening");
    launcher.setAttribute("aria-expanded", "true");
    save();
    if (!state.items.length) start();
    if (!state.config) loadConfig().catch(() => { /* the error shows when it matters */ });
    scrollDown();
    if (focus !== false) input.focus();
  }

  function close(returnFocus) {
    state.open = false;
    panel.hidden = true;
    panel.classList.remove("opening");
    launcher.setAttribute("aria-expanded", "false");
    save();
    if (returnFocus !== false) launcher.focus();
  }

  function reset() {
    state.sessionId = null;
    state.items = [];
    forget();
    hideTyping();
    log.replaceChildren();
    save();
    start();
    input.focus();
  }

  launcher.addEventListener("click", () => (state.open ? close() : open()));
  closeBtn.addEventListener("click", () => close());
  resetBtn.addEventListener("click", reset);
  root.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && state.open) {
      e.preventDefault();
      e.stopPropagation();
      close();
    }
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    send(input.value);
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send(input.value);
    }
  });
  input.addEventListener("input", () => { // grow with the text, up to max-height
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight + 2, 120) + "px";
  });

  function mount() {
    if (state.config) showConfig(state.config);
    document.body.appendChild(host);
    if (state.items.length) renderAll();
    if (saved && saved.open) open(false); // the conversation carries on after a navigation, focus stays put
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount, { once: true });

  // A tiny API for the clinic's own "Chat with us" links: clinicChatWidget.open().
  window.clinicChatWidget = Object.freeze({ open: () => open(), close: () => close(false), reset });
})();
