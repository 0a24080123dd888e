/*! Clinic chat widget. One file, no dependencies, no cookies, no requests to anyone but the bot.
 *
 *   <script src="https://BOT/widget.js" defer data-title="Ask our assistant" data-color="#14606e"
 *           data-position="right" data-lang="en" data-remember="30"></script>
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
  const KEY = "clinic-chat:v2:" + BASE.href; // per site (localStorage is per origin) and per bot
  const TIMEOUT_MS = 30000;
  const GIVE_UP_MS = 180000; // keep reconnecting this long before showing Retry
  const MAX_ITEMS = 60;
  const STREAM_UNSUPPORTED = new Set([404, 405, 406, 415, 501]);

  // ---- strings: one table per language -----------------------------------------------------------------
  const STRINGS = {
    en: {
      title: "Chat with us", subtitle: "Automated assistant, answers from our articles",
      reset: "New conversation", close: "Close chat", log: "Conversation", placeholder: "Type your question",
      input: "Your message", send: "Send", foot: "Please don't share personal details.",
      emergencyCall: " In an emergency call {n}.", you: "You said: ", urgent: "Get help now",
      from1: "From our article:", fromN: "From our articles:", helpful: "Was this helpful?",
      yes: "Yes, helpful", no: "No, not helpful", missing: "What was missing? (optional)", sending: "Sending...",
      thanks: "Thanks for your feedback.", fbFailed: "Sorry, your feedback could not be sent.",
      suggested: "Suggested questions", typing: "The assistant is typing",
      unreachable: "Sorry, I can't reach the assistant right now. Please try again in a moment",
      orCall: ", or call the clinic at {p}.", retry: "Retry", call: "Call the clinic",
      reconnecting: "Reconnecting...", retryIn: "Trying again in {s} s.", waiting: "Waiting to send",
      back: "Connected again.", tooLong: "Your message is {n} characters; please keep it under {m}.",
      confirm: "Clear this conversation? It is removed from this device and the assistant forgets it.",
      clear: "Clear conversation", keep: "Keep it", cleared: "Conversation cleared.",
      greeting: "Hi! I'm the clinic's automated assistant. I answer from our articles, or help you book.",
      disclaimer: "This is general information from our clinic's articles, not medical advice.",
    },
    es: {
      title: "Escríbanos", subtitle: "Asistente automático, responde con nuestros artículos",
      reset: "Nueva conversación", close: "Cerrar el chat", log: "Conversación", placeholder: "Escriba su pregunta",
      input: "Su mensaje", send: "Enviar", foot: "Por favor, no comparta datos personales.",
      emergencyCall: " En una emergencia llame al {n}.", you: "Usted dijo: ", urgent: "Pida ayuda ya",
      from1: "De nuestro artículo:", fromN: "De nuestros artículos:", helpful: "¿Le fue útil?",
      yes: "Sí, útil", no: "No, no fue útil", missing: "¿Qué faltó? (opcional)", sending: "Enviando...",
      thanks: "Gracias por su opinión.", fbFailed: "Lo sentimos, no se pudo enviar su opinión.",
      suggested: "Preguntas sugeridas", typing: "El asistente está escribiendo",
      unreachable: "Lo sentimos, ahora no puedo comunicarme con el asistente. Inténtelo de nuevo en un momento",
      orCall: " o llame a la clínica al {p}.", retry: "Reintentar", call: "Llamar a la clínica",
      reconnecting: "Reconectando...", retryIn: "Nuevo intento en {s} s.", waiting: "Pendiente de envío",
      back: "Conectado de nuevo.", tooLong: "Su mensaje tiene {n} caracteres; el máximo es {m}.",
      confirm: "¿Borrar esta conversación? Se elimina de este dispositivo y el asistente la olvida.",
      clear: "Borrar la conversación", keep: "Conservarla", cleared: "Conversación borrada.",
      greeting: "¡Hola! Soy el asistente automático de la clínica. Respondo con nuestros artículos o le ayudo " +
        "a pedir una cita.",
      disclaimer: "Es información general de los artículos de la clínica, no consejo médico.",
    },
  };
  const fill = (s, v) => s.replace(/\{(\w)\}/g, (_, k) => v[k]);

  // ---- options -------------------------------------------------------------------------------------
  const data = script.dataset || {};
  const clean = (value, max) => (typeof value === "string" ? value.replace(/\s+/g, " ").trim().slice(0, max) : "");
  const TITLE = clean(data.title, 60);
  const PAGE_TEXT_LANG = document.documentElement.lang || null; // data-title and data-greeting are in the page's
  const GREETING = clean(data.greeting, 400);
  const POSITION = data.position === "left" ? "left" : "right";
  const ACCENT = /^#(?:[0-9a-f]{3}|[0-9a-f]{6})$/i.test(data.color || "") ? data.color : "#14606e";
  const langOf = (code) => { const c = String(code || "").toLowerCase().slice(0, 2); return STRINGS[c] ? c : null; };
  const PAGE_LANG = langOf(data.lang) ||
    (navigator.languages || [navigator.language]).map(langOf).find(Boolean) || "en";
  // Minutes an idle conversation is kept on this device; data-remember="0" (or "off") keeps nothing.
  const REMEMBER = data.remember === "off" ? 0
    : Math.max(0, Math.min(1440, parseInt(data.remember == null ? "30" : data.remember, 10) || 0));

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
  // px everywhere (never rem): the page's root font-size must not scale the widget. Every target is
  // at least 44 x 44 px (WCAG 2.5.5); the textarea is 16 px so iOS does not zoom on focus.
  const SR = "position:absolute;width:1px;height:1px;padding:0;margin:-1px;overflow:hidden;clip:rect(0 0 0 0);" +
    "white-space:nowrap;border:0";
  const CSS = `
:host { all: initial !important; display: block !important; position: static !important;
  width: 0 !important; height: 0 !important; visibility: visible !important; }
.root { all: initial; display: block; font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue",
  Arial, sans-serif; font-size: 15px; line-height: 1.45; color: var(--fg); font-weight: 400; font-style: normal;
  letter-spacing: normal; word-spacing: normal; text-transform: none; text-align: left; direction: ltr;
  -webkit-text-size-adjust: 100%; text-size-adjust: 100%;
  --bg: #ffffff; --log: #f4f5f7; --fg: #1b1e21; --muted: #454b52; --line: #d5d9de; --edge: #5b6670;
  --link: #0b4f8a; --hover: #e9ecef; --pressed: #e3ecf6; --em-bg: #fff4f4; --em: #b00020; --em-fg: #9c001c;
  --warn-bg: #fff8e8; --warn: #8a4b00; --ph: #5d646b; --ring: 0 0 0 2px #ffffff, 0 0 0 5px #111111; }
@media (prefers-color-scheme: dark) {
  .root { --bg: #1f2328; --log: #15181b; --fg: #e8eaed; --muted: #b9bfc6; --line: #3a4048; --edge: #8b949e;
    --link: #8cc8ff; --hover: #2c3138; --pressed: #1d3550; --em-bg: #35161a; --em: #ff5c6c; --em-fg: #ffb3ba;
    --warn-bg: #33270f; --warn: #e0a040; --ph: #a7adb4; --ring: 0 0 0 2px #111111, 0 0 0 5px #ffffff; }
}
.root *, .root *::before, .root *::after { box-sizing: border-box; }
button, input, textarea { font: inherit; color: inherit; letter-spacing: inherit; margin: 0; }
button { cursor: pointer; }
a { color: var(--link); }
p { margin: 0; }
svg { display: block; fill: currentColor; flex: none; }
.sr { ${SR}; }

.launcher { position: fixed; bottom: 20px; right: 20px; z-index: 2147483000; display: inline-flex;
  align-items: center; gap: 8px; min-height: 50px; padding: 0 20px 0 16px; border: 0; border-radius: 25px;
  background: ${ACCENT}; color: ${ACCENT_FG}; font-size: 16px; font-weight: 600;
  box-shadow: 0 4px 14px rgba(0, 0, 0, 0.28); }
.launcher svg { width: 24px; height: 24px; }
.left .launcher { right: auto; left: 20px; }

.panel { position: fixed; bottom: 84px; right: 20px; z-index: 2147483001; display: flex;
  flex-direction: column; width: 380px; max-width: calc(100vw - 40px); height: 640px;
  max-height: calc(100vh - 108px); background: var(--bg); color: var(--fg); border: 1px solid var(--line);
  border-radius: 14px; box-shadow: 0 12px 40px rgba(0, 0, 0, 0.3); overflow: hidden; }
.panel[hidden], [hidden] { display: none !important; }
.left .panel { right: auto; left: 20px; }

.header { display: flex; align-items: center; gap: 4px; padding: 6px 4px 6px 16px; background: ${ACCENT};
  color: ${ACCENT_FG}; flex: none; }
.heading { flex: 1; min-width: 0; }
.title { margin: 0; font-size: 16px; font-weight: 700; line-height: 1.3; }
.subtitle { font-size: 12px; line-height: 1.3; }
.hbtn { display: inline-flex; align-items: center; justify-content: center; gap: 6px; background: transparent;
  color: inherit; border: 0; border-radius: 8px; padding: 0 8px; font-size: 13px; min-height: 44px;
  min-width: 44px; white-space: nowrap; }
.hbtn svg { width: 22px; height: 22px; }
.hbtn:hover { text-decoration: underline; }

.bar { display: flex; flex-wrap: wrap; align-items: center; gap: 8px; padding: 8px 12px; flex: none;
  background: var(--warn-bg); color: var(--fg); border-bottom: 1px solid var(--line); font-size: 14px; }
.bar p { flex: 1 1 180px; }
.net { border-top: 1px solid var(--warn); border-bottom: 0; }

.log { flex: 1; overflow-y: auto; padding: 14px; background: var(--log); display: flex; flex-direction: column;
  gap: 10px; overscroll-behavior: contain; min-height: 0; }
.msg { max-width: 88%; padding: 10px 12px; border-radius: 12px; overflow-wrap: anywhere; }
.msg .text { white-space: pre-wrap; }
.user { align-self: flex-end; background: ${ACCENT}; color: ${ACCENT_FG}; border-bottom-right-radius: 4px; }
.user .wait { display: block; font-size: 12px; font-style: italic; }
.bot { align-self: flex-start; background: var(--bg); color: var(--fg); border: 1px solid var(--line);
  border-bottom-left-radius: 4px; }
.bot.emergency { border: 3px solid var(--em); background: var(--em-bg); max-width: 100%; }
.urgent { display: flex; align-items: center; gap: 6px; margin-bottom: 6px; color: var(--em-fg); font-weight: 700;
  font-size: 14px; text-transform: uppercase; letter-spacing: 0.04em; }
.urgent svg { width: 20px; height: 20px; }
.bot.error { border: 2px solid var(--warn); background: var(--warn-bg); }
.note, .disclaimer { font-size: 12px; line-height: 1.4; color: var(--muted); }
.disclaimer { margin-top: 8px; }
.intro-note, .intro-foot { align-self: stretch; padding: 0 4px; }
.intro-foot { display: none; }
.sources { margin-top: 8px; font-size: 13px; color: var(--muted); }
.sources ul { margin: 0; padding: 0 0 0 18px; }
.sources li { color: var(--fg); }
.sources a { display: inline-flex; align-items: center; min-height: 44px; min-width: 44px; }
.actions { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 10px; }
.action { display: inline-flex; align-items: center; justify-content: center; gap: 6px; min-height: 44px;
  min-width: 44px; padding: 6px 16px; border-radius: 22px; border: 0; background: ${ACCENT}; color: ${ACCENT_FG};
  text-decoration: none; font-size: 14px; font-weight: 600; }
.action svg { width: 18px; height: 18px; }
.action.emergency { background: #b00020; color: #ffffff; }
.action.secondary { background: var(--bg); color: var(--fg); border: 1px solid var(--edge); }
.chips { display: flex; flex-wrap: wrap; gap: 6px; align-self: flex-start; }
.chip { background: var(--bg); color: var(--fg); border: 1px solid var(--edge); border-radius: 22px;
  padding: 6px 14px; font-size: 14px; line-height: 1.3; min-height: 44px; text-align: left; }
.chip:hover, .action.secondary:hover, .fb:hover { background: var(--hover); }
.feedback { display: flex; flex-wrap: wrap; align-items: center; gap: 6px; margin-top: 8px; font-size: 13px;
  color: var(--muted); }
.fb { display: inline-flex; align-items: center; justify-content: center; background: var(--bg); color: var(--fg);
  border: 1px solid var(--edge); border-radius: 8px; width: 44px; height: 44px; padding: 0; }
.fb svg { width: 20px; height: 20px; }
.fb[aria-pressed="true"] { background: var(--pressed); border-color: var(--link); color: var(--link); }
.fbform { display: flex; gap: 6px; width: 100%; margin-top: 4px; }
.fbform input { flex: 1; min-width: 0; min-height: 44px; border: 1px solid var(--edge); border-radius: 8px;
  padding: 4px 10px; font-size: 16px; background: var(--bg); color: var(--fg); }
.fbform button { min-height: 44px; min-width: 44px; border: 1px solid var(--edge); background: var(--bg);
  border-radius: 8px; padding: 4px 12px; font-size: 14px; }
.typing { align-self: flex-start; display: inline-flex; gap: 5px; padding: 12px 14px; background: var(--bg);
  border: 1px solid var(--line); border-radius: 12px; }
.typing span { width: 8px; height: 8px; border-radius: 4px; background: var(--edge); }
.composer { display: flex; align-items: flex-end; gap: 8px; padding: 8px 10px; border-top: 1px solid var(--line);
  background: var(--bg); flex: none; }
.composer textarea { flex: 1; min-width: 0; resize: none; height: 44px; max-height: 120px; padding: 10px 12px;
  border: 1px solid var(--edge); border-radius: 8px; background: var(--bg); color: var(--fg); font-size: 16px;
  line-height: 1.4; }
.composer textarea::placeholder { color: var(--ph); opacity: 1; }
.send { display: inline-flex; align-items: center; justify-content: center; width: 44px; height: 44px;
  border: 0; border-radius: 8px; background: ${ACCENT}; color: ${ACCENT_FG}; flex: none; }
.send svg { width: 22px; height: 22px; }
.foot { display: flex; align-items: center; gap: 8px; padding: 0 10px 8px; background: var(--bg); font-size: 12px;
  color: var(--muted); flex: none; }
.foot p { flex: 1; }
.reset { background: var(--bg); color: var(--fg); border: 1px solid var(--edge); font-size: 13px; }
.hreset { display: none; }

@media (prefers-reduced-motion: no-preference) {
  .panel.opening { animation: ccw-in 160ms ease-out; }
  .typing span { animation: ccw-dot 1.2s infinite ease-in-out; }
  .typing span:nth-child(2) { animation-delay: 0.15s; }
  .typing span:nth-child(3) { animation-delay: 0.3s; }
}
@keyframes ccw-in { from { opacity: 0; transform: translateY(12px); } to { opacity: 1; transform: none; } }
@keyframes ccw-dot { 0%, 80%, 100% { opacity: 0.3; } 40% { opacity: 1; } }

/* Short screens (zoom 200-400%, phones held sideways): the panel takes the height, a one-line header. */
@media (max-height: 500px) {
  .panel, .left .panel { top: 8px; bottom: 8px; height: auto; max-height: none; }
  .open .launcher { display: none; }
  .header { padding: 0 0 0 12px; gap: 0; }
  .subtitle, .foot { display: none; }
  .hreset { display: inline-flex; }
  .intro-foot { display: block; }
  .composer { padding: 4px 8px; }
  .log { padding: 8px 10px; }
}
/* Phones: a full-screen modal dialog and a round launcher. */
@media (max-width: 480px) {
  .panel, .left .panel { top: 0; right: 0; bottom: 0; left: 0; width: 100%; max-width: none; height: 100%;
    max-height: none; border: 0; border-radius: 0; }
  .open .launcher { display: none; }
  .launcher { bottom: 14px; right: 14px; width: 56px; height: 56px; padding: 0; justify-content: center;
    border-radius: 28px; }
  .launcher .label { ${SR}; }
  .left .launcher { left: 14px; }
  .msg { max-width: 92%; }
}
/* Last and specific, so it wins over every component's own box-shadow: a two-tone ring shows on any colour. */
.root :focus { outline: none; }
.root :focus-visible { outline: 2px solid transparent; box-shadow: var(--ring); }
@media (forced-colors: active) { .msg, .chip, .action, .launcher, .send, .fb { border: 1px solid CanvasText; } }
`;

  // ---- small DOM helpers (textContent only: no HTML is ever parsed) ------------------------------------
  const SVG_NS = "http://www.w3.org/2000/svg";
  const ICONS = {
    chat: "M20 2H4c-1.1 0-2 .9-2 2v18l4-4h14c1.1 0 2-.9 2-2V4c0-1.1-.9-2-2-2z",
    close: "M19 6.41 17.59 5 12 10.59 6.41 5 5 6.41 10.59 12 5 17.59 6.41 19 12 13.41 17.59 19 19 17.59 13.41 12z",
    send: "M2.01 21 23 12 2.01 3 2 10l15 2-15 2z",
    reset: "M17.65 6.35C16.2 4.9 14.21 4 12 4c-4.42 0-7.99 3.58-7.99 8s3.57 8 7.99 8c3.73 0 6.84-2.55 7.73-6h-2.08" +
      "c-.82 2.33-3.04 4-5.65 4-3.31 0-6-2.69-6-6s2.69-6 6-6c1.66 0 3.14.69 4.22 1.78L13 11h7V4l-2.35 2.35z",
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

  function button(cls, text) {
    const b = el("button", cls, text);
    b.type = "button";
    return b;
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

  // ---- storage -------------------------------------------------------------------------------------
  // The conversation: localStorage of this site, for REMEMBER idle minutes, so a reload or a new tab
  // carries on. Whether the panel is open: this tab only (sessionStorage). REMEMBER = 0: nothing at all.
  // Storage may be missing or throw (private mode, full): the widget still works, it just forgets.
  const storage = (name) => { try { return window[name]; } catch (_) { return null; } };
  const local = storage("localStorage");
  const tab = storage("sessionStorage");
  const attempt = (fn) => { try { return fn(); } catch (_) { return null; } };

  function forget() {
    attempt(() => local.removeItem(KEY));
    attempt(() => tab.removeItem(KEY));
  }

  function load() {
    attempt(() => tab.removeItem("clinic-chat:v1:" + BASE.href)); // the old per-tab copy
    if (!REMEMBER) {
      forget();
      return null;
    }
    const saved = attempt(() => JSON.parse(local.getItem(KEY) || "null"));
    if (saved && saved.v === 2 && Array.isArray(saved.items) && Date.now() - saved.at < REMEMBER * 60000) return saved;
    if (saved) forget(); // expired or from an older version
    return null;
  }

  function save() {
    if (!REMEMBER) return;
    attempt(() => local.setItem(KEY, JSON.stringify({
      v: 2, at: Date.now(), sessionId: state.sessionId, items: state.items.slice(-MAX_ITEMS), config: state.config,
      lang: state.lang,
    })));
    attempt(() => tab.setItem(KEY, state.open ? "open" : "closed"));
  }

  const saved = load();
  const state = {
    open: false,
    sessionId: saved ? saved.sessionId || null : null,
    items: saved ? saved.items : [],
    config: saved ? saved.config || null : null,
    lang: (saved && langOf(saved.lang)) || PAGE_LANG,
  };
  let T = STRINGS[state.lang];
  const queue = []; // messages waiting to be sent, oldest first: { text, node }
  let sending = false;
  let epoch = 0; // bumped by clearing: a reply still on its way then belongs to a forgotten conversation

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
  const launcher = button("launcher");
  launcher.setAttribute("aria-expanded", "false");
  launcher.setAttribute("aria-controls", "ccw-panel");
  launcher.setAttribute("aria-haspopup", "dialog");
  const launcherLabel = el("span", "label");
  launcher.append(icon("chat"), launcherLabel);

  const panel = el("div", "panel");
  panel.id = "ccw-panel";
  panel.hidden = true;
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-modal", "false");
  panel.setAttribute("aria-labelledby", "ccw-title");

  const header = el("div", "header");
  const heading = el("div", "heading");
  const title = el("h2", "title");
  title.id = "ccw-title";
  const subtitle = el("div", "subtitle");
  heading.append(title, subtitle);
  // "New conversation": in the footer, away from Close; an icon in the header when the footer has no room.
  const headReset = button("hbtn hreset");
  headReset.appendChild(icon("reset"));
  const resetBtn = button("hbtn reset");
  resetBtn.id = "ccw-reset";
  const resetLabel = el("span");
  resetBtn.append(icon("reset"), resetLabel);
  const closeBtn = button("hbtn close");
  closeBtn.appendChild(icon("close"));
  header.append(heading, headReset, closeBtn);

  // Asked before anything is wiped: "Clear conversation" or "Keep it".
  const confirmBar = el("div", "bar confirm");
  confirmBar.hidden = true;
  confirmBar.setAttribute("role", "group");
  confirmBar.setAttribute("aria-labelledby", "ccw-confirm");
  const confirmText = el("p");
  confirmText.id = "ccw-confirm";
  const clearBtn = button("action clear");
  const keepBtn = button("action secondary keep");
  confirmBar.append(confirmText, clearBtn, keepBtn);

  // The conversation. Not a live region: replies are announced once, finished, by `say` below.
  const log = el("div", "log");
  log.setAttribute("role", "log");
  log.setAttribute("aria-live", "off");
  log.tabIndex = 0; // scrollable region reachable by keyboard

  const net = el("div", "bar net"); // "Reconnecting..." with the server's own explanation
  net.hidden = true;
  const netText = el("p");
  net.appendChild(netText);

  const form = el("form", "composer");
  form.setAttribute("novalidate", "");
  const input = el("textarea");
  input.rows = 1;
  input.id = "ccw-input";
  input.setAttribute("enterkeyhint", "send");
  input.autocomplete = "off";
  input.maxLength = 2000;
  const sendBtn = el("button", "send");
  sendBtn.type = "submit";
  sendBtn.appendChild(icon("send"));
  form.append(input, sendBtn);
  const foot = el("div", "foot");
  const footNote = el("p");
  foot.append(footNote, resetBtn);

  // One polite region for finished replies and one alert for emergencies, both outside the log.
  const polite = el("div", "sr announce");
  polite.setAttribute("aria-live", "polite");
  polite.setAttribute("aria-atomic", "true");
  const urgent = el("div", "sr alert");
  urgent.setAttribute("role", "alert");

  panel.append(header, confirmBar, log, net, form, foot);
  root.append(panel, launcher, polite, urgent);
  shadow.appendChild(root);

  function footText() {
    const n = state.config && state.config.emergency_number;
    return T.foot + (n ? fill(T.emergencyCall, { n }) : "");
  }

  // Every fixed string, in the current language.
  function applyStrings() {
    root.lang = state.lang;
    host.lang = state.lang;
    const name = TITLE || T.title;
    launcherLabel.textContent = name;
    title.textContent = name;
    for (const n of [launcherLabel, title]) withLang(n, TITLE ? PAGE_TEXT_LANG : null);
    subtitle.textContent = T.subtitle;
    resetLabel.textContent = T.reset;
    headReset.setAttribute("aria-label", T.reset);
    closeBtn.setAttribute("aria-label", T.close);
    confirmText.textContent = T.confirm;
    clearBtn.textContent = T.clear;
    keepBtn.textContent = T.keep;
    log.setAttribute("aria-label", T.log);
    input.placeholder = T.placeholder;
    input.setAttribute("aria-label", T.input);
    sendBtn.setAttribute("aria-label", T.send);
    footNote.textContent = footText();
  }

  function setLang(code) {
    const lang = langOf(code);
    if (!lang || lang === state.lang) return;
    state.lang = lang;
    T = STRINGS[lang];
    applyStrings();
    renderAll();
    save();
  }

  function showConfig(cfg) {
    input.maxLength = cfg.max_message_chars || 2000;
    footNote.textContent = footText();
  }

  let sayTimer = 0;
  // Announce once: a new paragraph in the region (removing the old one is not read out).
  function say(text, lang, assertive) {
    const region = assertive ? urgent : polite;
    const p = el("p", null, text);
    if (lang) p.lang = lang;
    clearTimeout(sayTimer);
    region.replaceChildren(p);
    sayTimer = setTimeout(() => { polite.replaceChildren(); urgent.replaceChildren(); }, 15000);
  }

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
    node.appendChild(el("span", "sr", T.you));
    node.appendChild(el("p", "text", text));
    return node;
  }

  function withLang(node, lang) {
    if (lang && langOf(lang) !== state.lang) node.lang = lang;
    else node.removeAttribute("lang");
    return node;
  }

  function renderIntro(item) {
    const frag = document.createDocumentFragment();
    const bubble = withLang(el("div", "msg bot intro"), item.lang);
    bubble.appendChild(el("p", "text", item.greeting));
    frag.appendChild(bubble);
    if (item.disclaimer) frag.appendChild(withLang(el("p", "note intro-note", item.disclaimer), item.lang));
    frag.appendChild(el("p", "note intro-foot", footText())); // shown when the footer is not
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
    box.appendChild(el("span", null, list.length > 1 ? T.fromN : T.from1));
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
      box.appendChild(el("span", null, T.thanks));
      return box;
    }
    box.appendChild(el("span", null, T.helpful));
    const thumb = (label, down) => {
      const b = button("fb");
      b.setAttribute("aria-label", label);
      b.setAttribute("aria-pressed", "false");
      b.appendChild(icon("thumb", down));
      box.appendChild(b);
      return b;
    };
    const up = thumb(T.yes, false);
    const down = thumb(T.no, true);
    up.addEventListener("click", () => rate(item, box, "up", null));
    down.addEventListener("click", () => {
      if (box.querySelector(".fbform")) return;
      down.setAttribute("aria-pressed", "true");
      const f = el("form", "fbform");
      const comment = el("input");
      comment.type = "text";
      comment.maxLength = 1000;
      comment.placeholder = T.missing;
      comment.setAttribute("aria-label", T.missing);
      const go = el("button", null, T.send);
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
    box.replaceChildren(el("span", null, T.sending));
    if (focusWasInside) input.focus();
    let ok = false;
    try {
      const body = { reply_id: item.r.reply_id, rating };
      if (comment) body.comment = comment.slice(0, 1000);
      ok = (await request("feedback", body, "application/json")).ok;
    } catch (_) { ok = false; }
    if (ok) {
      item.rated = rating;
      save();
    }
    const text = ok ? T.thanks : T.fbFailed;
    box.replaceChildren(el("span", null, text));
    say(text);
  }

  function renderBot(item) {
    const r = item.r;
    const emergency = r.kind === "emergency";
    const node = withLang(el("div", "msg bot kind-" + (r.kind || "answer") + (emergency ? " emergency" : "")), r.lang);
    node.setAttribute("data-kind", r.kind || "");
    if (emergency) {
      const label = el("div", "urgent");
      label.append(icon("warn"), el("span", null, T.urgent));
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

  function renderChips(questions, lang) {
    const list = (Array.isArray(questions) ? questions : []).filter((q) => typeof q === "string" && q).slice(0, 4);
    if (!list.length) return null;
    const box = el("div", "chips");
    box.setAttribute("role", "group");
    box.setAttribute("aria-label", T.suggested);
    for (const q of list) {
      const chip = withLang(button("chip", q), lang);
      chip.addEventListener("click", () => send(q));
      box.appendChild(chip);
    }
    return box;
  }

  function removeTransient() {
    log.querySelectorAll(".chips, .error").forEach((n) => n.remove());
  }

  function renderAll() {
    log.replaceChildren();
    for (const item of state.items) {
      if (item.t === "user") log.appendChild(renderUser(item.text));
      else if (item.t === "intro") log.appendChild(renderIntro(item));
      else if (item.t === "bot") log.appendChild(renderBot(item));
    }
    for (const q of queue) log.appendChild(q.node = renderUser(q.text));
    markWaiting();
    const last = state.items[state.items.length - 1];
    const chips = !queue.length && last && (last.t === "intro" ? renderChips(last.suggestions, last.lang)
      : last.t === "bot" ? renderChips(last.r.suggestions, last.r.lang) : null);
    if (chips) log.appendChild(chips);
    if (typing) log.appendChild(typing);
  }

  let typing = null;
  function showTyping() {
    if (typing) return;
    typing = el("div", "typing");
    typing.setAttribute("aria-hidden", "true");
    typing.append(el("span"), el("span"), el("span"));
    log.appendChild(typing);
    scrollDown();
  }
  function hideTyping() {
    if (typing) typing.remove();
    typing = null;
  }

  function callLink() {
    const tel = state.config && safeHref(state.config.phone_tel);
    if (!tel) return null;
    const call = link(tel, "action secondary", null);
    call.append(icon("phone"), el("span", null, T.call));
    return call;
  }

  // An error that waiting will not fix (or that outlasted the reconnecting): what to do, with Retry.
  function showError(err, again) {
    const box = el("div", "msg bot error");
    const phone = state.config && state.config.phone;
    const text = err && err.detail && err.status >= 400 && err.status < 500
      ? err.detail // the API says what to fix ("please shorten it")
      : T.unreachable + (phone ? fill(T.orCall, { p: phone }) : ".");
    box.appendChild(el("p", "text", text));
    const buttons = el("div", "actions");
    if (again && transient(err)) {
      const retry = button("action retry", T.retry);
      retry.addEventListener("click", () => {
        box.remove();
        again();
      });
      buttons.appendChild(retry);
    }
    const call = callLink();
    if (call) buttons.appendChild(call);
    if (buttons.childNodes.length) box.appendChild(buttons);
    log.appendChild(box);
    scrollDown();
    say(text);
    return box;
  }

  // ---- network -------------------------------------------------------------------------------------
  class HttpError extends Error {
    constructor(status, detail, retryAfter) {
      super("HTTP " + status);
      this.status = status;
      this.detail = detail;
      this.retryAfter = retryAfter;
    }
  }

  // Worth waiting for: no answer at all, a timeout, the server busy, restarting or overloaded.
  const transient = (err) => !err || !err.status || err.status >= 500 || err.status === 429 || err.status === 408;

  function request(path, body, accept, signal, method) {
    return fetch(url(path), {
      method: method || (body === undefined ? "GET" : "POST"),
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
    // Retry-After: seconds or an HTTP date.
    const ra = resp.headers.get("retry-after");
    let wait = ra == null ? NaN : /^\d+$/.test(ra.trim()) ? Number(ra) : (Date.parse(ra) - Date.now()) / 1000;
    wait = isNaN(wait) ? null : Math.min(60, Math.max(1, Math.ceil(wait)));
    return new HttpError(resp.status, detail, wait);
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

  // ---- reconnecting --------------------------------------------------------------------------------
  let wake = null; // ends the current wait early (the browser came back online)
  window.addEventListener("online", () => wake && wake());
  const pause = (ms) => new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() { clearTimeout(t); wake = null; resolve(); }
    wake = done;
  });

  function markWaiting() {
    for (const q of queue) {
      if (!q.node) continue;
      const mark = q.node.querySelector(".wait");
      if (!net.hidden && !mark) q.node.appendChild(el("span", "wait", T.waiting));
      else if (net.hidden && mark) mark.remove();
    }
  }

  function netDown(err, secs) {
    const first = net.hidden;
    const detail = err && err.detail ? err.detail + " " : "";
    netText.textContent = T.reconnecting + " " + detail + fill(T.retryIn, { s: secs });
    const call = callLink();
    net.replaceChildren(netText);
    if (call) net.appendChild(call);
    net.hidden = false;
    markWaiting();
    if (first) say(T.reconnecting + " " + detail); // once an outage, not on every attempt
  }

  function netUp() {
    if (net.hidden) return;
    net.hidden = true;
    markWaiting();
  }

  // Run fn until it succeeds, waiting out outages (Retry-After when the server gives one, else backoff
  // 1, 2, 4 ... 30 s); a lasting outage or an error waiting cannot fix is thrown to the caller.
  async function retrying(fn) {
    const started = Date.now();
    for (let n = 0; ; n++) {
      try {
        const result = await fn();
        netUp();
        return result;
      } catch (err) {
        if (!transient(err) || Date.now() - started > GIVE_UP_MS) {
          netUp();
          throw err;
        }
        const secs = (err && err.retryAfter) || Math.min(30, 2 ** n);
        netDown(err, secs);
        await pause(secs * 1000);
      }
    }
  }

  let configLoad = null;
  function getConfig() { // one /widget/config request, however many callers wait for it
    if (state.config) return Promise.resolve(state.config);
    configLoad = configLoad || retrying(async () => {
      const resp = await request("widget/config", undefined, "application/json");
      if (!resp.ok) throw await httpError(resp);
      return resp.json();
    }).then((cfg) => {
      state.config = cfg;
      showConfig(cfg);
      save();
      return cfg;
    }).finally(() => { configLoad = null; });
    return configLoad;
  }

  // ---- behaviour -----------------------------------------------------------------------------------
  function pick(reply) { // what we keep of a Reply (and re-render after a reload)
    return {
      kind: reply.kind, reply: reply.reply, citations: reply.citations || [], actions: reply.actions || [],
      suggestions: reply.suggestions || [], disclaimer: reply.disclaimer || null, reply_id: reply.reply_id || null,
      lang: langOf(reply.lang),
    };
  }

  function push(item) {
    state.items.push(item);
    if (state.items.length > MAX_ITEMS) state.items.splice(0, state.items.length - MAX_ITEMS);
    save();
  }

  function send(raw) {
    const text = String(raw || "").trim();
    if (!text) return;
    const max = (state.config && state.config.max_message_chars) || 2000;
    if (text.length > max) {
      showError(new HttpError(422, fill(T.tooLong, { n: text.length, m: max })), null);
      return;
    }
    removeTransient();
    input.value = "";
    input.style.height = "";
    const node = renderUser(text);
    log.insertBefore(node, typing);
    scrollDown();
    enqueue(text, node);
  }

  function enqueue(text, node) {
    queue.push({ text, node });
    markWaiting();
    pump();
  }

  // Send the queued messages one at a time, in order; each waits out an outage before the next.
  async function pump() {
    if (sending || !queue.length) return;
    sending = true;
    const mine = epoch;
    const { text, node: asked } = queue[0];
    removeTransient();
    let bubble = null;
    try {
      const reply = await retrying(async () => {
        if (mine !== epoch) throw new HttpError(499, null); // cleared while waiting: stop, send nothing
        showTyping();
        try {
          return await ask(text, (sentence) => {
            hideTyping();
            if (!bubble) { // seen, not read out: the finished reply is announced once
              bubble = el("div", "msg bot streaming");
              bubble.setAttribute("aria-hidden", "true");
              bubble.appendChild(el("p", "text"));
              log.appendChild(bubble);
            }
            const para = bubble.firstChild;
            para.textContent = (para.textContent ? para.textContent + " " : "") + sentence;
            scrollDown();
          });
        } catch (err) {
          if (bubble) bubble.remove(); // half an answer about health is worse than none
          bubble = null;
          hideTyping();
          throw err;
        }
      });
      if (mine !== epoch) return;
      hideTyping();
      queue.shift();
      if (reply.session_id) state.sessionId = reply.session_id;
      const item = { t: "bot", r: pick(reply), rated: null };
      push({ t: "user", text });
      push(item);
      let node = renderBot(item);
      if (item.r.lang && item.r.lang !== state.lang) { // a patient writing in Spanish gets a Spanish widget
        if (bubble) bubble.remove();
        setLang(item.r.lang); // draws everything again, in that language
        const shown = log.querySelectorAll(".msg.bot[data-kind]");
        node = shown[shown.length - 1] || node;
      } else {
        if (bubble) bubble.replaceWith(node); else log.insertBefore(node, typing);
        const chips = !queue.length && renderChips(item.r.suggestions, item.r.lang);
        if (chips) log.appendChild(chips);
      }
      scrollToMessage(node);
      say(item.r.reply, item.r.lang, item.r.kind === "emergency");
    } catch (err) {
      if (mine !== epoch) return;
      hideTyping();
      const failed = queue.splice(0); // the rest waited behind this one: show them as not sent
      for (const q of failed.slice(1)) if (q.node) q.node.remove();
      showError(err, () => enqueue(text, asked));
    } finally {
      sending = false;
      pump();
    }
  }

  // The greeting, the disclaimer (once a conversation) and suggested questions.
  async function start() {
    if (state.items.length) return;
    showTyping();
    try {
      const cfg = await getConfig();
      hideTyping();
      if (state.items.length) return;
      // The clinic's texts are in its language (clinic.toml); another UI language uses its own table.
      const same = (cfg.lang || "en") === state.lang;
      const item = {
        t: "intro", lang: GREETING ? PAGE_TEXT_LANG : same ? cfg.lang || "en" : state.lang,
        greeting: GREETING || (same ? cfg.greeting : T.greeting),
        disclaimer: (same ? cfg.disclaimer : T.disclaimer) || null,
        suggestions: same ? (cfg.suggested_questions || []).slice(0, 4) : [],
      };
      push(item);
      renderAll();
      say(item.greeting);
    } catch (err) {
      hideTyping();
      showError(err, start);
    }
  }

  // ---- phones: a modal dialog (focus kept in, the page behind inert, the launcher gone) ------------
  const phone = window.matchMedia ? window.matchMedia("(max-width: 480px)") : { matches: false };
  let inerted = [];
  function applyModal() {
    const modal = state.open && phone.matches;
    panel.setAttribute("aria-modal", modal ? "true" : "false");
    if (modal && !inerted.length) {
      inerted = Array.prototype.filter.call(document.body.children, (n) => n !== host && !n.inert);
      inerted.forEach((n) => { n.inert = true; });
    } else if (!modal && inerted.length) {
      inerted.forEach((n) => { n.inert = false; });
      inerted = [];
    }
  }
  if (phone.addEventListener) phone.addEventListener("change", applyModal);

  function focusables() {
    return Array.prototype.filter.call(panel.querySelectorAll("button, a[href], textarea, input, [tabindex='0']"),
      (n) => !n.disabled && n.getClientRects().length);
  }

  panel.addEventListener("keydown", (e) => {
    if (e.key !== "Tab" || panel.getAttribute("aria-modal") !== "true") return;
    const list = focusables();
    const active = shadow.activeElement;
    const i = list.indexOf(active);
    if (e.shiftKey && i <= 0) {
      e.preventDefault();
      list[list.length - 1].focus();
    } else if (!e.shiftKey && (i === list.length - 1 || i < 0)) {
      e.preventDefault();
      list[0].focus();
    }
  });

  function open(focus) {
    if (state.open && !panel.hidden) {
      if (focus !== false) input.focus();
      return;
    }
    state.open = true;
    panel.hidden = false;
    panel.classList.add("opening");
    root.classList.add("open");
    launcher.setAttribute("aria-expanded", "true");
    applyModal();
    save();
    if (!state.items.length) start();
    scrollDown();
    if (focus !== false) input.focus();
  }

  function close(returnFocus) {
    state.open = false;
    hideConfirm(false);
    panel.hidden = true;
    panel.classList.remove("opening");
    root.classList.remove("open");
    launcher.setAttribute("aria-expanded", "false");
    applyModal();
    save();
    if (returnFocus !== false) launcher.focus();
  }

  // ---- clearing: asked first; removes the conversation here and asks the server to forget it --------
  function askClear() {
    if (!state.items.some((i) => i.t === "user") && !queue.length) {
      input.focus(); // nothing to clear
      return;
    }
    confirmBar.hidden = false;
    keepBtn.focus();
  }

  function hideConfirm(refocus) {
    if (confirmBar.hidden) return;
    confirmBar.hidden = true;
    if (refocus) (headReset.offsetWidth ? headReset : resetBtn).focus();
  }

  function reset() {
    epoch += 1;
    const id = state.sessionId;
    if (id) request("chat/session/" + encodeURIComponent(id), undefined, "application/json", undefined, "DELETE")
      .catch(() => { /* the server forgets idle sessions by itself */ });
    state.sessionId = null;
    state.items = [];
    queue.splice(0);
    forget();
    hideTyping();
    hideConfirm(false);
    netUp();
    log.replaceChildren();
    say(T.cleared);
    start();
    input.focus();
  }

  launcher.addEventListener("click", () => (state.open ? close() : open()));
  closeBtn.addEventListener("click", () => close());
  resetBtn.addEventListener("click", askClear);
  headReset.addEventListener("click", askClear);
  clearBtn.addEventListener("click", reset);
  keepBtn.addEventListener("click", () => hideConfirm(true));
  root.addEventListener("keydown", (e) => {
    if (e.key !== "Escape" || !state.open) return;
    e.preventDefault();
    e.stopPropagation();
    if (!confirmBar.hidden) hideConfirm(true);
    else close();
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

  // Another tab of the same site changed or cleared the conversation: show the same one here.
  window.addEventListener("storage", (e) => {
    if (!REMEMBER || e.key !== KEY || sending || queue.length) return;
    const now = load();
    state.sessionId = now ? now.sessionId || null : null;
    state.items = now ? now.items : [];
    if (now && now.config) state.config = now.config;
    renderAll();
    if (!state.items.length && state.open) start();
  });

  function mount() {
    applyStrings();
    if (state.config) showConfig(state.config);
    document.body.appendChild(host);
    if (state.items.length) renderAll();
    // Open after a navigation in this tab if it was open; focus stays where the page put it.
    if (attempt(() => tab.getItem(KEY)) === "open") open(false);
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount, { once: true });

  // A tiny API for the clinic's own links: clinicChatWidget.open(), and its language switch.
  window.clinicChatWidget = Object.freeze({ open: () => open(), close: () => close(false), reset, setLanguage: setLang });
})();
