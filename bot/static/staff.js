/* The staff console. Plain DOM, text inserted with textContent only, the token kept in sessionStorage. */
(() => {
  "use strict";
  const KEY = "clinic-staff-token";
  const AUTHOR_KEY = "clinic-staff-author";
  const MAX_QUESTION = 300, MAX_ANSWER = 1500;
  const STATUS = { draft: "Draft", pending: "Waiting for review", published: "Published", unpublished: "Unpublished" };
  const ACTIONS = { create: "created", save: "saved", publish: "published", submit: "sent for review",
    approve: "approved", unpublish: "unpublished", rollback: "rolled back" };
  const CONFLICT = "Someone else saved this entry first; reload to see their version.";
  const KINDS = [
    ["answer", "Answered"], ["handoff", "Handed off"], ["emergency", "Emergency"],
    ["booking", "Booking"], ["smalltalk", "Small talk"],
  ];
  const SVG_NS = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  let token = readToken();
  let role = null;     // "editor" | "reviewer", from GET /staff/api/session
  let current = null;  // the entry open in the editor (with its versions)

  // ---- helpers --------------------------------------------------------------------------------------
  function readToken() {
    try { return window.sessionStorage.getItem(KEY); } catch (_) { return null; }
  }
  function writeToken(value) {
    try {
      if (value) window.sessionStorage.setItem(KEY, value); else window.sessionStorage.removeItem(KEY);
    } catch (_) { /* the token then lives for this page only */ }
  }
  // The name that goes in the audit log, remembered for this tab (and forgotten at sign-out).
  function readAuthor() {
    try { return window.sessionStorage.getItem(AUTHOR_KEY) || ""; } catch (_) { return ""; }
  }
  function writeAuthor(value) {
    try {
      if (value) window.sessionStorage.setItem(AUTHOR_KEY, value); else window.sessionStorage.removeItem(AUTHOR_KEY);
    } catch (_) { /* kept in the form only */ }
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text != null) node.textContent = String(text);
    return node;
  }
  function svg(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }
  function safeHref(value) {
    if (typeof value !== "string" || !value) return null;
    try {
      const u = new URL(value, window.location.href);
      return ["http:", "https:", "tel:"].includes(u.protocol) ? u.href : null;
    } catch (_) { return null; }
  }
  function linkOrText(href, text) {
    const safe = safeHref(href);
    if (!safe) return el("span", null, text);
    const a = el("a", null, text);
    a.href = safe;
    if (!safe.startsWith("tel:")) { a.target = "_blank"; a.rel = "noopener noreferrer"; }
    return a;
  }
  function when(iso) {
    const d = new Date(iso);
    return isNaN(d) ? String(iso || "") : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }
  function status(text) { $("status").textContent = text || ""; }
  // A question that was only markup (stripped before storing) is empty: say so instead of a blank row.
  const shown = (text) => (String(text || "").trim() ? text : "(no text)");

  class ApiError extends Error {
    constructor(code, detail) { super(detail); this.code = code; this.detail = detail; }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let resp;
    try {
      resp = await fetch(path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit", cache: "no-store",
      });
    } catch (_) {
      throw new ApiError(0, "The service is not answering. Is it running?");
    }
    let data = null;
    try { data = await resp.json(); } catch (_) { data = null; }
    if (!resp.ok) {
      const detail = data && typeof data.detail === "string" ? data.detail : "The request failed (HTTP " + resp.status + ").";
      throw new ApiError(resp.status, detail);
    }
    return data;
  }

  // A section's call: its errors show in that section; a refused token signs the user out.
  async function guarded(target, fn) {
    try {
      return await fn();
    } catch (err) {
      if (err.code === 401) {
        signOut("Your staff token was refused (it may have changed). Please sign in again.");
      } else if (target) {
        target.replaceChildren(el("p", "error", err.detail || String(err)));
      }
      return null;
    }
  }

  function busy(button, on, label) {
    if (on) {
      button.dataset.label = button.textContent;
      button.textContent = label || "Working...";
      button.disabled = true;
    } else {
      button.textContent = button.dataset.label || button.textContent;
      button.disabled = false;
    }
  }

  // ---- sign in ----------------------------------------------------------------------------------------
  function show(view) {
    $("signin").hidden = view !== "signin";
    $("notoken").hidden = view !== "notoken";
    $("console").hidden = view !== "console";
    $("nav").hidden = view !== "console";
    $("signout").hidden = view !== "console";
    $("role").hidden = view !== "console" || !role;
  }

  function signOut(message) {
    token = null;
    role = null;
    current = null;
    writeToken(null);
    writeAuthor(null);
    $("editor").hidden = true;
    $("editor").replaceChildren();
    show("signin");
    $("signin-msg").textContent = message || "";
    $("token").value = "";
    $("token").focus();
  }

  async function probe() {
    try {
      const data = await api("GET", "/staff/api/session");
      role = data && (data.role === "reviewer" || data.role === "editor") ? data.role : null;
      $("role").textContent = role ? "Role: " + role : "";
      return "ok";
    } catch (err) {
      if (err.code === 503) {
        $("notoken-detail").textContent = err.detail;
        return "notoken";
      }
      if (err.code === 401) return "refused";
      status(err.detail);
      return "error";
    }
  }

  async function boot() {
    const result = await probe();
    if (result === "notoken") { show("notoken"); return; }
    if (result === "ok" && token) { enter(); return; }
    show("signin");
    if (token && result === "refused") {
      token = null;
      writeToken(null);
      $("signin-msg").textContent = "The saved token was refused. Please sign in again.";
    }
  }

  $("signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const value = $("token").value.trim();
    if (!value) { $("signin-msg").textContent = "Enter the staff token."; return; }
    const button = e.submitter || $("signin-form").querySelector("button");
    busy(button, true, "Checking...");
    token = value;
    const result = await probe();
    busy(button, false);
    if (result === "ok") {
      writeToken(value);
      $("signin-msg").textContent = "";
      $("token").value = "";
      enter();
    } else if (result === "notoken") {
      token = null;
      show("notoken");
    } else {
      token = null;
      $("signin-msg").textContent = result === "refused"
        ? "That token is not right. It must match the STAFF_TOKEN the service was started with."
        : "Could not check the token; the service did not answer.";
      $("token").select();
    }
  });

  $("signout").addEventListener("click", () => signOut("Signed out."));

  function enter() {
    show("console");
    status("");
    loadMessenger();
    loadStats();
    loadUnanswered();
    loadAnswers();
    loadDetails();
    loadAudit();
    loadFeedback();
  }

  // ---- Messenger: a banner when Meta refuses the Page token (replies wait in the queue meanwhile) ----
  async function loadMessenger() {
    const banner = $("messenger-alert");
    let data = null;
    try { data = await api("GET", "/staff/api/messenger"); } catch (e) { data = null; }
    const expired = data && data.token === "token_expired";
    banner.hidden = !expired;
    banner.textContent = expired
      ? "Facebook Messenger is paused: Meta refused the Page access token (it expired or was revoked). " +
        "Patients' messages are kept and will be answered once a new token is set " +
        "(MESSENGER_PAGE_ACCESS_TOKEN, then restart). " + (data.unsent ? data.unsent + " replies are waiting." : "")
      : "";
  }

  // ---- at a glance ----------------------------------------------------------------------------------
  async function loadStats() {
    const target = $("chart");
    const data = await guarded(target, () => api("GET", "/staff/api/stats"));
    if (!data) return;
    renderKpis(data);
    renderChart(data.days);
    renderStatsTable(data.days);
  }

  function renderKpis(data) {
    const box = $("kpis");
    const total = KINDS.reduce((n, [k]) => n + (data.totals[k] || 0), 0);
    const share = data.answered_share == null ? "n/a" : Math.round(data.answered_share * 100) + "%";
    const kpi = (value, label, id) => {
      const node = el("div", "kpi");
      if (id) node.id = id;
      node.append(el("span", "kpi-value", value), el("span", "kpi-label", label));
      return node;
    };
    box.replaceChildren(
      kpi(share, "of questions answered from the articles", "answered-share"),
      kpi(String(total), "replies in 30 days"),
      kpi(String(data.totals.handoff || 0), "handed off to the phone"),
      kpi(String(data.totals.emergency || 0), "emergency replies"),
    );
    const legend = $("legend");
    const items = KINDS.map(([k, label]) => {
      const li = el("li");
      li.append(el("span", "swatch k-" + k), el("span", null, label));
      return li;
    });
    const line = el("li");
    line.append(el("span", "swatch share-line"), el("span", null, "Share answered from the articles (line, right axis)"));
    legend.replaceChildren(...items, line);
  }

  const pct = (v) => Math.round(v * 100) + "%";
  const hasShare = (d) => typeof d.answered_share === "number" && isFinite(d.answered_share);

  // The line's words, for everyone who cannot see it.
  function shareSummary(days) {
    const points = days.filter(hasShare);
    if (!points.length) {
      return "Share answered from the articles, per day: no day in this period had a question to answer or hand off.";
    }
    const last = points[points.length - 1];
    const low = points.reduce((a, d) => (d.answered_share < a.answered_share ? d : a));
    const high = points.reduce((a, d) => (d.answered_share > a.answered_share ? d : a));
    const mean = points.reduce((n, d) => n + d.answered_share, 0) / points.length;
    return `Share answered from the articles (the line): ${pct(last.answered_share)} on ${last.date}, the latest ` +
      `day with questions; lowest ${pct(low.answered_share)} on ${low.date}, highest ${pct(high.answered_share)} ` +
      `on ${high.date}, ${pct(mean)} on average over ${points.length} day(s) with questions.`;
  }

  function renderChart(days) {
    const W = 760, H = 240, left = 40, right = 44, top = 12, bottom = 34;
    const max = Math.max(1, ...days.map((d) => d.total));
    const step = niceStep(max);
    const ymax = Math.ceil(max / step) * step;
    const plotW = W - left - right, plotH = H - top - bottom;
    const slot = plotW / days.length;
    const barW = Math.max(4, slot * 0.7);
    const total = days.reduce((n, d) => n + d.total, 0);
    const root = svg("svg", {
      viewBox: `0 0 ${W} ${H}`, role: "img", class: "chart-svg",
      "aria-label": `Replies per day for the last ${days.length} days by kind: ${total} in all. ` +
        "The line is the share answered from the articles; its summary follows the chart.",
    });
    for (let v = 0; v <= ymax; v += step) {
      const y = top + plotH - (v / ymax) * plotH;
      root.appendChild(svg("line", { x1: left, x2: W - right, y1: y, y2: y, class: "grid" }));
      const label = svg("text", { x: left - 6, y: y + 4, class: "axis", "text-anchor": "end" });
      label.textContent = String(v);
      root.appendChild(label);
    }
    days.forEach((d, i) => {
      const x = left + i * slot + (slot - barW) / 2;
      let y = top + plotH;
      for (const [k, label] of KINDS) {
        const n = d[k] || 0;
        if (!n) continue;
        const h = (n / ymax) * plotH;
        y -= h;
        const rect = svg("rect", { x: x.toFixed(1), y: y.toFixed(1), width: barW.toFixed(1), height: h.toFixed(1),
          class: "k-" + k });
        const tip = svg("title");
        tip.textContent = `${d.date}: ${n} ${label.toLowerCase()}`;
        rect.appendChild(tip);
        root.appendChild(rect);
      }
      if (i % 5 === 0 || i === days.length - 1) {
        const t = svg("text", { x: (x + barW / 2).toFixed(1), y: H - bottom + 16, class: "axis", "text-anchor": "middle" });
        t.textContent = d.date.slice(5);
        root.appendChild(t);
      }
    });
    root.appendChild(svg("line", { x1: left, x2: W - right, y1: top + plotH, y2: top + plotH, class: "baseline" }));
    drawShare(root, days, { left, top, plotH, slot, W, right });
    $("chart").replaceChildren(root);
    $("share-summary").textContent = shareSummary(days);
  }

  // answered_share (0-1) as a line on a 0-100% scale at the right, broken where a day had no question.
  function drawShare(root, days, { left, top, plotH, slot, W, right }) {
    for (const v of [0, 0.5, 1]) {
      const label = svg("text", { x: W - right + 6, y: top + plotH - v * plotH + 4, class: "axis", "text-anchor": "start" });
      label.textContent = pct(v);
      root.appendChild(label);
    }
    const runs = [];
    let run = [];
    days.forEach((d, i) => {
      if (!hasShare(d)) { if (run.length) runs.push(run); run = []; return; }
      const v = Math.min(1, Math.max(0, d.answered_share));
      run.push({ d, x: left + i * slot + slot / 2, y: top + plotH - v * plotH });
    });
    if (run.length) runs.push(run);
    for (const r of runs) {
      const points = r.map((p) => p.x.toFixed(1) + "," + p.y.toFixed(1)).join(" ");
      if (r.length > 1) {
        root.appendChild(svg("polyline", { points, class: "share-halo" }));
        root.appendChild(svg("polyline", { points, class: "share" }));
      }
      for (const p of r) {
        const dot = svg("circle", { cx: p.x.toFixed(1), cy: p.y.toFixed(1), r: 3.5, class: "share-dot" });
        const tip = svg("title");
        tip.textContent = `${p.d.date}: ${pct(p.d.answered_share)} answered from the articles`;
        dot.appendChild(tip);
        root.appendChild(dot);
      }
    }
  }

  function niceStep(max) {
    const raw = max / 4;
    const mag = Math.pow(10, Math.floor(Math.log10(raw || 1)));
    for (const m of [1, 2, 5, 10]) if (raw <= m * mag) return Math.max(1, m * mag);
    return Math.max(1, 10 * mag);
  }

  function renderStatsTable(days) {
    const table = $("stats-table");
    const head = el("tr");
    head.append(el("th", null, "Date"), ...KINDS.map(([, label]) => el("th", null, label)), el("th", null, "Total"),
      el("th", null, "Answered share"));
    const thead = el("thead");
    thead.appendChild(head);
    const tbody = el("tbody");
    for (const d of days.slice().reverse()) {
      const tr = el("tr");
      tr.append(el("td", null, d.date), ...KINDS.map(([k]) => el("td", "num", d[k] || 0)), el("td", "num", d.total),
        el("td", "num", hasShare(d) ? pct(d.answered_share) : "-"));
      tbody.appendChild(tr);
    }
    table.replaceChildren(thead, tbody);
  }

  $("stats-refresh").addEventListener("click", loadStats);

  // ---- look-up ----------------------------------------------------------------------------------------
  $("search-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const q = $("search-q").value.trim();
    const target = $("search-results");
    if (!q) return;
    target.replaceChildren(el("p", "hint", "Searching..."));
    const data = await guarded(target, () => api("POST", "/search", { query: q, k: 5 }));
    if (!data) return;
    const out = [];
    out.push(el("p", "verdict " + (data.grounded ? "ok" : "warn"), data.grounded
      ? `The bot would answer from these (confidence ${data.confidence.toFixed(2)}).`
      : `The bot would hand this off: not grounded in the articles (confidence ${data.confidence.toFixed(2)}).`));
    if (!data.results.length) out.push(el("p", "hint", "No passages found."));
    const list = el("ol", "passages");
    for (const r of data.results) {
      const li = el("li", "passage");
      const head = el("div", "passage-head");
      const name = el("strong");
      name.appendChild(linkOrText(r.url, r.title));
      head.append(name);
      if (r.section && r.section !== r.title) head.append(el("span", "muted", " · " + r.section));
      head.append(el("span", "score", "score " + Number(r.score).toFixed(3)));
      li.append(head, el("p", "passage-text", r.text), el("p", "muted small", r.source));
      list.appendChild(li);
    }
    out.push(list);
    target.replaceChildren(...out);
  });

  $("ask-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const q = $("ask-q").value.trim();
    const target = $("ask-result");
    if (!q) return;
    target.replaceChildren(el("p", "hint", "Asking..."));
    const r = await guarded(target, () => api("POST", "/staff/api/ask", { message: q }));
    if (!r) return;
    const card = el("div", "reply kind-" + r.kind);
    const head = el("div", "reply-head");
    head.append(el("span", "badge k-" + r.kind, r.kind));
    card.append(head, el("p", "reply-text", r.reply));
    if (r.citations && r.citations.length) {
      card.appendChild(el("h3", null, "Citations"));
      const ul = el("ul");
      for (const c of r.citations) {
        const li = el("li", "citation");
        li.appendChild(linkOrText(c.url, c.title));
        if (c.source) li.append(el("span", "muted", " (" + c.source + ")"));
        if (c.snippet) li.append(el("div", "muted small", c.snippet));
        ul.appendChild(li);
      }
      card.appendChild(ul);
    }
    if (r.actions && r.actions.length) {
      card.appendChild(el("h3", null, "Actions"));
      const ul = el("ul", "actions");
      for (const a of r.actions) {
        const li = el("li", "action-" + a.type);
        li.append(el("span", "muted", a.type + ": "), linkOrText(a.value, a.label), el("span", "muted", " " + a.value));
        ul.appendChild(li);
      }
      card.appendChild(ul);
    }
    if (r.suggestions && r.suggestions.length) {
      card.appendChild(el("h3", null, "Suggestions"));
      const ul = el("ul");
      for (const s of r.suggestions) ul.appendChild(el("li", null, s));
      card.appendChild(ul);
    }
    if (r.disclaimer) card.appendChild(el("p", "muted small", r.disclaimer));
    target.replaceChildren(card);
  });

  // ---- unanswered and feedback --------------------------------------------------------------------------
  // "Mark handled": posts the ids, then reloads the list (or re-enables itself when the call failed).
  // Its name says which item: "Mark handled: <question>" (the visible words come first, WCAG 2.5.3).
  function handledButton(target, path, ids, reload, what) {
    const button = el("button", "ghost small", "Mark handled");
    button.type = "button";
    button.setAttribute("aria-label", "Mark handled: " + what);
    button.addEventListener("click", async () => {
      busy(button, true, "Saving...");
      const ok = await guarded(target, () => api("POST", path, { ids }));
      if (ok) reload(); else busy(button, false);
    });
    return button;
  }

  async function loadUnanswered() {
    const target = $("unanswered-list");
    composing = null;  // a re-render drops an open "Write an answer" form
    const data = await guarded(target, () => api("GET", "/staff/api/unanswered"));
    if (!data) return;
    if (!data.groups.length) {
      target.replaceChildren(el("p", "hint", "Nothing waiting. Questions the articles could not answer show up here."));
      return;
    }
    const table = el("table", "list");
    const head = el("tr");
    const actions = el("th");
    actions.appendChild(el("span", "sr", "Action"));
    head.append(el("th", null, "Question"), el("th", "num", "Asked"), el("th", null, "Last asked"), actions);
    const thead = el("thead");
    thead.appendChild(head);
    const tbody = el("tbody");
    for (const g of data.groups) {
      const tr = el("tr", "group");
      const q = el("td");
      q.appendChild(el("div", "question", shown(g.question)));
      if (typeof g.answered_now === "boolean") {
        // The group's question run through the bot now: an answer written since may already cover it.
        q.appendChild(el("span", "badge " + (g.answered_now ? "now-answered" : "now-unanswered"),
          g.answered_now ? "Answered now" : "Still unanswered"));
      }
      if (g.variants.length) {
        const ul = el("ul", "variants");
        for (const v of g.variants) ul.appendChild(el("li", null, shown(v)));
        q.appendChild(ul);
      }
      const action = el("td");
      const buttons = el("div", "cell-actions");
      buttons.append(writeButton(tr, g), handledButton(target, "/staff/api/unanswered/handled", g.ids,
        loadUnanswered, shown(g.question)));
      action.appendChild(buttons);
      tr.append(q, el("td", "num count", g.count), el("td", null, when(g.last_seen)), action);
      tbody.appendChild(tr);
    }
    table.append(thead, tbody);
    target.replaceChildren(el("p", "hint", `${data.total} question(s) in ${data.groups.length} group(s).`), table);
  }

  async function loadFeedback() {
    const target = $("feedback-list");
    const data = await guarded(target, () => api("GET", "/staff/api/feedback"));
    if (!data) return;
    if (!data.items.length) {
      target.replaceChildren(el("p", "hint", "No thumbs-down replies waiting."));
      return;
    }
    const list = el("ul", "feedback-items");
    for (const f of data.items) {
      const li = el("li", "fb-item");
      const head = el("div", "fb-head");
      head.append(el("span", "muted", when(f.created_at)));
      if (f.reply_kind) head.append(el("span", "badge k-" + f.reply_kind, f.reply_kind));
      li.appendChild(head);
      const dl = el("dl");
      const row = (term, value) => { if (value) dl.append(el("dt", null, term), el("dd", null, value)); };
      row("Patient asked", f.question == null ? null : shown(f.question));
      row("The bot replied", f.reply_text);
      row("Comment", f.comment || "(no comment)");
      li.appendChild(dl);
      li.appendChild(handledButton(target, "/staff/api/feedback/handled", [f.id], loadFeedback,
        "thumbs-down on " + shown(f.question) + ", " + when(f.created_at)));
      list.appendChild(li);
    }
    target.replaceChildren(list);
  }

  $("unanswered-refresh").addEventListener("click", loadUnanswered);
  $("feedback-refresh").addEventListener("click", loadFeedback);

  // ---- forms shared by "Write an answer", the editor and the clinic details ---------------------------------
  let uid = 0;
  const nextId = (prefix) => `${prefix}-${++uid}`;

  function describe(node, id) {
    const ids = (node.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
    node.setAttribute("aria-describedby", [...ids, id].join(" "));
  }

  function makeButton(text, cls, name) {
    const button = el("button", cls || null, text);
    button.type = "button";
    if (name) button.setAttribute("aria-label", name);
    return button;
  }

  // A labelled input or textarea with an optional hint under it.
  function textField(labelText, value, opts = {}) {
    const id = nextId(opts.prefix || "field");
    const box = el("div", "field");
    const label = el("label", null, labelText);
    label.htmlFor = id;
    const input = el(opts.multiline ? "textarea" : "input");
    input.id = id;
    if (!opts.multiline) input.type = "text";
    if (opts.name) input.name = opts.name;
    if (opts.maxLength) input.maxLength = opts.maxLength;
    if (opts.rows) input.rows = opts.rows;
    input.autocomplete = opts.autocomplete || "off";
    if (opts.required) input.required = true;
    input.value = value == null ? "" : String(value);
    box.append(label, input);
    if (opts.hint) {
      const hint = el("p", "hint small field-hint", opts.hint);
      hint.id = id + "-hint";
      describe(input, hint.id);
      box.appendChild(hint);
    }
    return { box, input };
  }

  // "123 / 1500 characters" under a textarea; a screen reader hears only when the limit comes near.
  function counter(input, max) {
    const shownCount = el("p", "counter small");
    shownCount.id = input.id + "-count";
    describe(input, shownCount.id);
    const spoken = el("span", "sr");
    spoken.setAttribute("aria-live", "polite");
    let band = null;
    const update = () => {
      const n = input.value.length, left = max - n;
      shownCount.textContent = `${n} / ${max} characters`;
      shownCount.classList.toggle("near", left <= 100);
      const now = left <= 0 ? "full" : left <= 100 ? "near" : null;
      if (now !== band) {
        band = now;
        spoken.textContent = now === "full" ? `The answer is at the ${max}-character limit.`
          : now === "near" ? `${left} characters left.` : "";
      }
    };
    input.addEventListener("input", update);
    update();
    return { nodes: [shownCount, spoken], update };
  }

  function authorField(prefix) {
    const f = textField("Your name", readAuthor(), { prefix, name: "author", autocomplete: "name", maxLength: 80,
      required: true, hint: "Goes in the audit log; kept in this browser tab until you sign out." });
    f.input.addEventListener("change", () => writeAuthor(f.input.value.trim()));
    return f;
  }

  // Question, answer (with its counter), "applies to" and the author: the fields of one FAQ entry.
  function entryForm(initial, { variants = [], submit = "Save", prefix = "entry" } = {}) {
    const form = el("form", "entry-form");
    form.noValidate = true;  // our own messages, read out by the alert below
    const q = textField("Question", initial.question, { prefix, name: "question", maxLength: MAX_QUESTION,
      required: true, hint: "As a patient would ask it." });
    if (variants.length) {
      const id = nextId("variants");
      const intro = el("p", "small muted variants-intro", "Patients also asked:");
      intro.id = id;
      const ul = el("ul", "variants");
      ul.setAttribute("aria-labelledby", id);
      for (const v of variants) ul.appendChild(el("li", null, shown(v)));
      q.box.append(intro, ul);
    }
    const a = textField("Answer", initial.answer, { prefix, name: "answer", multiline: true, rows: 7,
      maxLength: MAX_ANSWER, required: true,
      hint: "Plain text; Markdown for lists and links. State only what the clinic stands behind." });
    const count = counter(a.input, MAX_ANSWER);
    a.box.append(...count.nodes);
    const t = textField("Applies to", (initial.applies_to || []).join(", "), { prefix, name: "applies_to",
      maxLength: 500, hint: "Other words patients use for this, separated by commas (e.g. voucher, present)." });
    const who = authorField(prefix);
    const buttons = el("div", "buttons");
    const save = el("button", null, submit);
    save.type = "submit";
    buttons.appendChild(save);
    const error = el("p", "error");
    error.setAttribute("role", "alert");
    const note = el("p", "note");
    note.setAttribute("role", "status");
    form.append(q.box, a.box, t.box, who.box, buttons, error, note);
    const fields = { question: q.input, answer: a.input, applies_to: t.input, author: who.input };

    const values = () => ({
      question: fields.question.value.trim(),
      answer: fields.answer.value.trim(),
      applies_to: fields.applies_to.value.split(",").map((x) => x.trim()).filter(Boolean),
      author: fields.author.value.trim(),
    });
    const fail = (field, message) => {
      for (const f of Object.values(fields)) f.removeAttribute("aria-invalid");
      if (field) { field.setAttribute("aria-invalid", "true"); field.focus(); }
      error.textContent = message;
      note.textContent = "";
      return null;
    };
    // The values, or null with the reason shown and the field focused.
    const check = () => {
      const v = values();
      if (!v.question) return fail(fields.question, "Write the question.");
      if (!v.answer) return fail(fields.answer, "Write the answer.");
      if (!v.author) return fail(fields.author, "Enter your name: it goes in the audit log.");
      for (const f of Object.values(fields)) f.removeAttribute("aria-invalid");
      error.textContent = "";
      writeAuthor(v.author);
      return v;
    };
    const load = (entry) => {
      fields.question.value = entry.question || "";
      fields.answer.value = entry.answer || "";
      fields.applies_to.value = (entry.applies_to || []).join(", ");
      count.update();
    };
    return { form, buttons, save, error, note, fields, values, check, fail, load };
  }

  // A published entry saved again stays "published" (its published version is still live), but its newest
  // version is a draft: show that, and offer Publish for it.
  function shownStatus(e) {
    if (e.status === "published" && e.published_version != null && e.published_version !== e.version) return "draft";
    return e.status;
  }
  const liveElsewhere = (e) => e.published_version != null && e.status !== "unpublished" && shownStatus(e) !== "published";

  function statusBadge(value) {
    return el("span", "badge s-" + (value || "none"), value ? STATUS[value] || value : "Not set");
  }
  function flagList(flags) {
    const ul = el("ul", "flags");
    for (const f of flags || []) ul.appendChild(el("li", "flag", f));
    return ul;
  }
  const fmt = (x) => (typeof x === "number" && isFinite(x) ? x.toFixed(2) : "n/a");
  const faqPath = (id, rest) => "/staff/api/faq/" + encodeURIComponent(id) + (rest || "");

  // ---- Unanswered: "Write an answer" opens a form under the group's row ------------------------------------
  let composing = null;  // {row, button}

  function closeCompose(focusBack) {
    if (!composing) return;
    composing.row.remove();
    composing.button.setAttribute("aria-expanded", "false");
    if (focusBack) composing.button.focus();
    composing = null;
  }

  function writeButton(tr, g) {
    const button = el("button", "small", "Write an answer");
    button.type = "button";
    button.setAttribute("aria-label", "Write an answer: " + shown(g.question));
    button.setAttribute("aria-expanded", "false");
    button.addEventListener("click", () => {
      const open = composing && composing.button === button;
      closeCompose(false);
      if (!open) openCompose(tr, g, button);
    });
    return button;
  }

  function openCompose(tr, g, button) {
    const row = el("tr", "compose");
    row.id = nextId("compose");
    const td = el("td");
    td.colSpan = tr.children.length;
    const headId = nextId("compose-h");
    const head = el("h3", null, "Write an answer");
    head.id = headId;
    const box = el("div", "compose-box");
    box.setAttribute("role", "group");
    box.setAttribute("aria-labelledby", headId);
    const f = entryForm({ question: g.question, answer: "", applies_to: [] },
      { variants: g.variants, submit: "Save draft", prefix: "compose" });
    const cancel = makeButton("Cancel", "ghost");
    cancel.addEventListener("click", () => closeCompose(true));
    box.addEventListener("keydown", (e) => { if (e.key === "Escape") { e.preventDefault(); closeCompose(true); } });
    f.buttons.appendChild(cancel);
    f.form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const v = f.check();
      if (!v) return;
      busy(f.save, true, "Saving...");
      let entry = null;
      try {
        entry = await api("POST", "/staff/api/faq", { ...v, unanswered_ids: g.ids });
      } catch (err) {
        busy(f.save, false);
        if (err.code === 401) { signOut("Your staff token was refused (it may have changed). Please sign in again."); return; }
        f.fail(null, err.detail || String(err));
        return;
      }
      const done = el("p", "verdict ok", "Saved as a draft: patients do not see it until it is published.");
      done.setAttribute("role", "status");
      const openIt = makeButton("Open in Answers", null);
      openIt.addEventListener("click", () => openEntry(entry.id));
      const row2 = el("div", "buttons");
      row2.appendChild(openIt);
      box.replaceChildren(head, done, row2);
      button.setAttribute("aria-expanded", "false");
      openIt.focus();
      loadAnswers();
      loadAudit();
    });
    box.append(head, f.form);
    td.appendChild(box);
    row.appendChild(td);
    tr.after(row);
    button.setAttribute("aria-controls", row.id);
    button.setAttribute("aria-expanded", "true");
    composing = { row, button };
    f.fields.answer.focus();
  }

  // ---- Answers: the list --------------------------------------------------------------------------------------
  async function loadAnswers() {
    const target = $("answers-list");
    const data = await guarded(target, () => api("GET", "/staff/api/faq"));
    if (!data) return;
    const entries = data.entries || [];
    if (!entries.length) {
      target.replaceChildren(el("p", "hint", "No answers yet. Write one from a question under Unanswered."));
      return;
    }
    const table = el("table", "list entries");
    const head = el("tr");
    head.append(el("th", null, "Question"), el("th", null, "Status"), el("th", null, "Needs a reviewer for"),
      el("th", null, "Last saved"));
    const thead = el("thead");
    thead.appendChild(head);
    const tbody = el("tbody");
    for (const e of entries) {
      const tr = el("tr", "entry" + (current && current.id === e.id ? " selected" : ""));
      tr.dataset.id = String(e.id);
      const q = el("td");
      if (e.kind === "fact") q.appendChild(el("span", "kind-tag", "Clinic detail"));
      const open = el("button", "linkish", shown(e.question));
      open.type = "button";
      open.addEventListener("click", () => openEntry(e.id));
      if (current && current.id === e.id) open.setAttribute("aria-current", "true");
      q.appendChild(open);
      const st = el("td");
      st.appendChild(statusBadge(shownStatus(e)));
      if (liveElsewhere(e)) {
        st.appendChild(el("div", "muted small", `version ${e.published_version} is live`));
      }
      const flags = el("td");
      if (e.flags && e.flags.length) flags.appendChild(flagList(e.flags)); else flags.appendChild(el("span", "muted", "-"));
      tr.append(q, st, flags, el("td", "small", `${e.author || "?"}, ${when(e.updated_at)} (version ${e.version})`));
      tbody.appendChild(tr);
    }
    table.append(thead, tbody);
    target.replaceChildren(table);
  }

  // ---- Answers: the editor ------------------------------------------------------------------------------------
  const ed = {};  // the open editor's parts

  async function openEntry(id, { focus = true } = {}) {
    const box = $("editor");
    box.hidden = false;
    box.replaceChildren(el("p", "hint", "Loading..."));
    const entry = await guarded(box, () => api("GET", faqPath(id)));
    if (!entry) return;
    current = entry;
    renderEditor(entry);
    markSelected();
    if (focus) {
      $("editor-h").focus();
      $("editor-h").scrollIntoView({ block: "start" });
    }
  }

  function markSelected() {
    for (const tr of document.querySelectorAll("#answers-list tr.entry")) {
      const on = !!current && tr.dataset.id === String(current.id);
      tr.classList.toggle("selected", on);
      const b = tr.querySelector("button.linkish");
      if (b) { if (on) b.setAttribute("aria-current", "true"); else b.removeAttribute("aria-current"); }
    }
  }

  function closeEditor() {
    const id = current && current.id;
    current = null;
    $("editor").hidden = true;
    $("editor").replaceChildren();
    markSelected();
    const back = id == null ? null : document.querySelector(`#answers-list tr.entry[data-id="${CSS.escape(String(id))}"] button`);
    (back || $("answers-h")).focus();
  }

  function dirty() {
    if (!current || !ed.form) return false;
    const v = ed.form.values();
    return v.question !== (current.question || "").trim() || v.answer !== (current.answer || "").trim() ||
      v.applies_to.join(",") !== (current.applies_to || []).join(",");
  }

  function renderEditor(e) {
    const box = $("editor");
    const head = el("div", "section-head");
    const h = el("h3", null, "Edit: " + shown(e.question));
    h.id = "editor-h";
    h.tabIndex = -1;
    const close = makeButton("Close editor", "ghost");
    close.addEventListener("click", closeEditor);
    head.append(h, close);
    ed.heading = h;
    ed.meta = el("div", "entry-meta");

    ed.form = entryForm(e, { submit: "Save changes", prefix: "edit" });
    ed.publish = makeButton("Publish");
    ed.approve = makeButton("Approve", "approve");
    ed.unpublish = makeButton("Unpublish", "ghost");
    ed.form.buttons.append(ed.publish, ed.approve, ed.unpublish);
    ed.conflict = el("div", "conflict");
    ed.form.form.insertBefore(ed.conflict, ed.form.error);
    ed.form.form.addEventListener("submit", (ev) => { ev.preventDefault(); saveEntry(); });
    ed.publish.addEventListener("click", () => act("publish", ed.publish));
    ed.approve.addEventListener("click", () => act("approve", ed.approve));
    ed.unpublish.addEventListener("click", () => act("unpublish", ed.unpublish));

    // Preview: the exact reply a patient would get with the last saved version included.
    const pv = el("div", "sub");
    pv.appendChild(el("h4", null, "Preview"));
    const pform = el("form", "preview-form");
    pform.noValidate = true;
    const pid = nextId("preview-q");
    const plabel = el("label", null, "Ask as a patient");
    plabel.htmlFor = pid;
    const prow = el("div", "row");
    const pin = el("input");
    pin.type = "text";
    pin.id = pid;
    pin.maxLength = 2000;
    pin.autocomplete = "off";
    pin.placeholder = "e.g. a paraphrase of the question";
    const pbtn = el("button", null, "Preview");
    pbtn.type = "submit";
    prow.append(pin, pbtn);
    const phint = el("p", "hint small", "Shows the reply a patient would get with this entry's last saved version " +
      "included, and the article passages it competed with. Nothing is stored.");
    phint.id = pid + "-hint";
    describe(pin, phint.id);
    ed.previewResult = el("div", "preview-result");
    ed.previewResult.setAttribute("aria-live", "polite");
    pform.append(plabel, prow, phint);
    pform.addEventListener("submit", (ev) => { ev.preventDefault(); preview(pin, pbtn); });
    pv.append(pform, ed.previewResult);

    const hist = el("div", "sub");
    hist.appendChild(el("h4", null, "History"));
    ed.history = el("div", "history");
    ed.diff = el("div", "diff-result");
    ed.diff.setAttribute("aria-live", "polite");
    hist.append(ed.history, ed.diff);

    box.replaceChildren(head, ed.meta, ed.form.form, pv, hist);
    refreshEditor(e);
  }

  // Status line, which buttons apply, and the history: everything that changes after an action.
  function refreshEditor(e) {
    ed.heading.textContent = "Edit: " + shown(e.question);
    const meta = ed.meta;
    const line = el("p", "meta-line");
    const state = shownStatus(e);
    line.append(statusBadge(state), el("span", null, ` Version ${e.version}`));
    if (e.kind === "fact") line.append(el("span", "kind-tag", "Clinic detail"));
    const out = [line];
    if (e.published_version != null && e.status !== "unpublished") {
      const live = el("p", "small");
      live.append(el("span", null, liveElsewhere(e)
        ? `Version ${e.published_version} is live; this version is not yet. ` : "This version is live. "));
      if (e.url) live.appendChild(linkOrText(e.url, "See the public page"));
      out.push(live);
    } else if (state !== "published") {
      out.push(el("p", "small muted", "Not live: patients do not get this answer."));
    }
    if (e.flags && e.flags.length) {
      out.push(el("p", "small", "Needs a reviewer because:"), flagList(e.flags));
    }
    if (e.status === "pending") {
      out.push(el("p", "small", role === "reviewer"
        ? "Waiting for review. A second person approves: not the one who wrote this version."
        : "Waiting for review: a colleague signed in with the reviewer token approves it."));
    }
    meta.replaceChildren(...out);
    ed.publish.hidden = !(state === "draft" || state === "unpublished");
    ed.approve.hidden = !(role === "reviewer" && e.status === "pending");
    ed.unpublish.hidden = !(e.status === "published" || (e.published_version != null && e.status !== "unpublished"));
    renderHistory(e);
  }

  // After a call that returned an Entry: fetch it again with its versions and show the outcome.
  async function afterChange(entry, message) {
    let full = entry;
    try { full = await api("GET", faqPath(entry.id)); } catch (_) { full = { ...current, ...entry }; }
    current = full;
    refreshEditor(full);
    ed.form.note.textContent = message;
    loadAnswers();
    loadAudit();
    if (full.kind === "fact") loadDetails();
  }

  function actor() {
    const name = ed.form.fields.author.value.trim();
    if (!name) { ed.form.fail(ed.form.fields.author, "Enter your name: it goes in the audit log."); return null; }
    writeAuthor(name);
    return name;
  }

  function handleError(err, form) {
    if (err.code === 401) { signOut("Your staff token was refused (it may have changed). Please sign in again."); return; }
    form.fail(null, err.detail || String(err));
  }

  function showConflict() {
    const reload = makeButton("Reload their version", "ghost");
    reload.addEventListener("click", async () => {
      const fresh = await guarded(ed.conflict, () => api("GET", faqPath(current.id)));
      if (!fresh) return;
      current = fresh;
      ed.form.load(fresh);
      ed.conflict.replaceChildren();
      ed.form.error.textContent = "";
      refreshEditor(fresh);
      ed.form.note.textContent = `Loaded version ${fresh.version}.`;
      ed.form.fields.answer.focus();
    });
    const hint = el("p", "small", "Your text is still in the form: copy it before you reload if you want to keep it.");
    ed.conflict.replaceChildren(hint, reload);
    ed.form.fail(null, CONFLICT);
  }

  async function saveEntry() {
    const v = ed.form.check();
    if (!v) return;
    ed.conflict.replaceChildren();
    busy(ed.form.save, true, "Saving...");
    try {
      const entry = await api("PUT", faqPath(current.id), { ...v, base_version: current.version });
      await afterChange(entry, `Saved as version ${entry.version}` + (entry.status === "draft"
        ? ": a draft until you publish it." : "."));
    } catch (err) {
      if (err.code === 409) showConflict(); else handleError(err, ed.form);
    } finally {
      busy(ed.form.save, false);
    }
  }

  async function act(kind, button) {
    const name = actor();
    if (!name) return;
    if (kind === "publish" && dirty()) {
      ed.form.fail(ed.form.fields.answer, "Save your changes first: Publish makes the last saved version live.");
      return;
    }
    ed.form.error.textContent = "";
    ed.conflict.replaceChildren();
    busy(button, true, "Working...");
    try {
      const entry = await api("POST", faqPath(current.id, "/" + kind), { actor: name });
      let message;
      if (kind === "unpublish") message = "Unpublished: the bot no longer answers from it.";
      else if (entry.status === "published") message = "Published: the bot answers from it now.";
      else if (entry.status === "pending") message = "Sent for review: a reviewer must approve it before patients see it.";
      else message = STATUS[entry.status] || entry.status;
      busy(button, false);
      await afterChange(entry, message);
    } catch (err) {
      busy(button, false);
      handleError(err, ed.form);
    }
  }

  // ---- preview: the reply as the widget would read it ---------------------------------------------------------
  function replyCard(r) {
    const card = el("div", "bubble kind-" + (r.kind || "answer"));
    card.appendChild(el("p", "reply-text", r.reply || ""));
    const cites = (r.citations || []).filter((c) => c && c.title);
    if (cites.length) {
      const src = el("div", "sources");
      src.appendChild(el("span", "muted small", cites.length > 1 ? "Sources:" : "Source:"));
      const ul = el("ul");
      for (const c of cites) {
        const li = el("li", "citation");
        li.appendChild(linkOrText(c.url, c.title));
        ul.appendChild(li);
      }
      src.appendChild(ul);
      card.appendChild(src);
    }
    const actions = (r.actions || []).filter((a) => a && a.label);
    if (actions.length) {
      const ul = el("ul", "actions");
      for (const a of actions) {
        const li = el("li", "action-" + a.type);
        li.appendChild(linkOrText(a.value, a.label));
        ul.appendChild(li);
      }
      card.appendChild(ul);
    }
    if (r.disclaimer) card.appendChild(el("p", "disclaimer small", r.disclaimer));
    return card;
  }

  async function preview(input, button) {
    const message = input.value.trim();
    const target = ed.previewResult;
    if (!message) { target.replaceChildren(el("p", "error", "Type a question a patient might ask.")); input.focus(); return; }
    busy(button, true, "Asking...");
    const data = await guarded(target, () => api("POST", faqPath(current.id, "/preview"), { message }));
    busy(button, false);
    if (!data) return;
    const out = [];
    if (dirty()) out.push(el("p", "hint", "Your unsaved changes are not in this preview: save them first."));
    out.push(el("p", "verdict " + (data.answered_by_entry ? "ok" : "warn"), data.answered_by_entry
      ? `This answer was used (score ${fmt(data.entry_score)}).`
      : `This answer was not used for this question (score ${fmt(data.entry_score)}).`));
    const r = data.reply || {};
    out.push(el("h5", null, "What the patient reads"), replyCard(r));
    const passages = data.passages || [];
    if (passages.length) {
      out.push(el("h5", null, "Article passages it competed with"));
      if (passages.some((p) => p.outranked)) {
        out.push(el("p", "hint small", "Marked \u201coutranked\u201d: the bot answered with this entry instead of that passage."));
      }
      const ol = el("ol", "passages");
      for (const p of passages) {
        const li = el("li", "passage" + (p.outranked ? " outranked" : ""));
        const head = el("div", "passage-head");
        head.appendChild(el("strong", null, p.title));
        if (p.section && p.section !== p.title) head.appendChild(el("span", "muted", " · " + p.section));
        if (p.outranked) head.appendChild(el("span", "mark", "outranked"));
        head.appendChild(el("span", "score", "score " + fmt(p.score)));
        li.appendChild(head);
        ol.appendChild(li);
      }
      out.push(ol);
    }
    target.replaceChildren(...out);
  }

  // ---- history, compare, roll back ---------------------------------------------------------------------------
  function versionSelect(labelText, versions, selected) {
    const id = nextId("cmp");
    const box = el("div", "field inline");
    const label = el("label", null, labelText);
    label.htmlFor = id;
    const select = el("select");
    select.id = id;
    for (const v of versions) {
      const o = el("option", null, `Version ${v.version}`);
      o.value = String(v.version);
      if (v.version === selected) o.selected = true;
      select.appendChild(o);
    }
    box.append(label, select);
    return { box, select };
  }

  function renderHistory(e) {
    const versions = e.versions || [];
    if (!versions.length) { ed.history.replaceChildren(el("p", "hint", "No versions.")); return; }
    const table = el("table", "list versions");
    const head = el("tr");
    const actions = el("th");
    actions.appendChild(el("span", "sr", "Action"));
    head.append(el("th", null, "Version"), el("th", null, "Saved by"), el("th", null, "When"),
      el("th", null, "Review"), actions);
    const thead = el("thead");
    thead.appendChild(head);
    const tbody = el("tbody");
    for (const v of versions) {
      const tr = el("tr", "version");
      tr.dataset.version = String(v.version);
      const num = el("td", null, String(v.version));
      if (v.version === e.version) num.appendChild(el("span", "muted small", " latest"));
      if (v.version === e.published_version && e.status !== "unpublished") num.appendChild(el("span", "live small", " live"));
      const review = el("td");
      if (v.flags && v.flags.length) review.appendChild(flagList(v.flags));
      if (v.approved_by) review.appendChild(el("div", "small", "approved by " + v.approved_by));
      if (!review.childNodes.length) review.appendChild(el("span", "muted", "-"));
      const cell = el("td");
      if (v.version !== e.version) {
        const back = makeButton("Roll back to this version", "ghost small", "Roll back to this version: version " + v.version);
        back.addEventListener("click", () => rollback(v.version, back));
        cell.appendChild(back);
      }
      tr.append(num, el("td", null, v.author || "?"), el("td", null, when(v.created_at)), review, cell);
      tbody.appendChild(tr);
    }
    table.append(thead, tbody);
    const out = [table];
    if (versions.length > 1) {
      const form = el("form", "compare");
      form.noValidate = true;
      const a = versionSelect("Compare version", versions, versions[1].version);
      const b = versionSelect("with version", versions, versions[0].version);
      const go = el("button", null, "Compare");
      go.type = "submit";
      form.append(a.box, b.box, go);
      form.addEventListener("submit", (ev) => { ev.preventDefault(); compare(a.select.value, b.select.value, go); });
      out.push(form);
    }
    ed.history.replaceChildren(...out);
    ed.diff.replaceChildren();
  }

  async function compare(a, b, button) {
    const target = ed.diff;
    busy(button, true, "Comparing...");
    const q = `/diff?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`;
    const data = await guarded(target, () => api("GET", faqPath(current.id, q)));
    busy(button, false);
    if (!data) return;
    const changes = data.changes || [];
    const out = [el("p", "hint", `From version ${data.a} to version ${data.b}: added words are underlined on green, ` +
      "removed words struck through on red.")];
    if (!changes.some((c) => c.op !== "equal")) out.push(el("p", "verdict ok", "No differences."));
    const text = el("p", "diff");
    for (const c of changes) {
      if (c.op === "insert") text.appendChild(el("ins", null, c.text));
      else if (c.op === "delete") text.appendChild(el("del", null, c.text));
      else text.appendChild(document.createTextNode(String(c.text)));
    }
    out.push(text);
    if (data.diff) {
      const det = el("details");
      det.append(el("summary", null, "Show as a unified diff"), el("pre", "unified", data.diff));
      out.push(det);
    }
    target.replaceChildren(...out);
  }

  async function rollback(version, button) {
    const name = actor();
    if (!name) return;
    busy(button, true, "Rolling back...");
    try {
      const entry = await api("POST", faqPath(current.id, "/rollback"), { version, actor: name });
      ed.form.load(entry);
      await afterChange(entry, entry.status === "published"
        ? `Rolled back to version ${version}: saved as version ${entry.version} and live now.`
        : `Rolled back to version ${version}: saved as version ${entry.version}` +
          (entry.status === "pending" ? ", waiting for a reviewer." : "; publish it to make it live."));
    } catch (err) {
      busy(button, false);
      handleError(err, ed.form);
    }
  }

  // ---- downloads: fetched with the bearer token, saved through a Blob URL -------------------------------------
  async function download(path, fallbackName, button, target) {
    busy(button, true, "Downloading...");
    target.replaceChildren();
    try {
      let resp;
      try {
        resp = await fetch(path, { headers: { Authorization: "Bearer " + token }, credentials: "omit", cache: "no-store" });
      } catch (_) {
        target.replaceChildren(el("p", "error", "The service is not answering. Is it running?"));
        return;
      }
      if (resp.status === 401) { signOut("Your staff token was refused (it may have changed). Please sign in again."); return; }
      if (!resp.ok) {
        let detail = "The download failed (HTTP " + resp.status + ").";
        try { const d = await resp.json(); if (d && typeof d.detail === "string") detail = d.detail; } catch (_) { /* keep */ }
        target.replaceChildren(el("p", "error", detail));
        return;
      }
      const disposition = resp.headers.get("Content-Disposition") || "";
      const m = /filename="?([A-Za-z0-9._-]+)"?/.exec(disposition);
      const blob = await resp.blob();
      const url = URL.createObjectURL(blob);
      const a = el("a");
      a.href = url;
      a.download = m ? m[1] : fallbackName;
      a.hidden = true;
      document.body.appendChild(a);
      a.click();
      a.remove();
      window.setTimeout(() => URL.revokeObjectURL(url), 30000);
      target.replaceChildren(el("p", "hint", `Downloaded ${a.download}.`));
    } finally {
      busy(button, false);
    }
  }

  $("export-btn").addEventListener("click", () =>
    download("/staff/api/faq/export", "clinic-faq.zip", $("export-btn"), $("answers-msg")));
  $("audit-csv").addEventListener("click", () =>
    download("/staff/api/audit.csv", "audit-log.csv", $("audit-csv"), $("audit-msg")));
  $("answers-refresh").addEventListener("click", loadAnswers);

  // ---- audit log -----------------------------------------------------------------------------------------------
  async function loadAudit() {
    const target = $("audit-list");
    const data = await guarded(target, () => api("GET", "/staff/api/audit"));
    if (!data) return;
    const items = data.items || [];
    if (!items.length) {
      target.replaceChildren(el("p", "hint", "Nothing yet. Saves, publishes and approvals are listed here."));
      return;
    }
    const table = el("table", "list audit");
    const head = el("tr");
    head.append(el("th", null, "When"), el("th", null, "Who"), el("th", null, "Did"), el("th", null, "Answer"),
      el("th", "num", "Version"));
    const thead = el("thead");
    thead.appendChild(head);
    const tbody = el("tbody");
    for (const i of items) {
      const tr = el("tr", "audit-item");
      tr.dataset.action = String(i.action);
      tr.append(el("td", null, when(i.at)), el("td", null, i.actor || "?"), el("td", null, ACTIONS[i.action] || i.action),
        el("td", null, shown(i.question)), el("td", "num", i.version == null ? "-" : i.version));
      tbody.appendChild(tr);
    }
    table.append(thead, tbody);
    const wrap = el("div", "table-wrap");
    wrap.tabIndex = 0;
    wrap.setAttribute("role", "region");
    wrap.setAttribute("aria-label", "Audit log");
    wrap.appendChild(table);
    target.replaceChildren(wrap);
  }
  $("audit-refresh").addEventListener("click", loadAudit);

  // ---- clinic details: one field per key, each saved on its own ------------------------------------------------
  function detailStatus(f) {
    const box = el("div", "detail-status");
    box.appendChild(f.value == null || f.value === "" ? el("span", "muted small", "Not set: the bot hands this off to the phone.")
      : statusBadge(f.status));
    if (f.flags && f.flags.length) box.appendChild(flagList(f.flags));
    return box;
  }

  function detailCard(f, who) {
    const form = el("form", "detail");
    form.noValidate = true;
    form.dataset.key = f.key;
    const field = textField(f.label, f.value, { prefix: "detail-" + f.key, name: f.key, multiline: true, rows: 2,
      maxLength: MAX_ANSWER });
    let status = detailStatus(f);
    const save = el("button", "small", "Save");
    save.type = "submit";
    save.setAttribute("aria-label", "Save: " + f.label);
    const row = el("div", "buttons");
    row.appendChild(save);
    const error = el("p", "error");
    error.setAttribute("role", "alert");
    const note = el("p", "note small");
    note.setAttribute("role", "status");
    form.append(field.box, status, row, error, note);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const author = who.input.value.trim();
      if (!author) {
        error.textContent = "Enter your name at the top of Clinic details: it goes in the audit log.";
        who.input.focus();
        return;
      }
      writeAuthor(author);
      error.textContent = "";
      note.textContent = "";
      const value = field.input.value.trim();
      busy(save, true, "Saving...");
      try {
        const entry = await api("PUT", "/staff/api/clinic-details/" + encodeURIComponent(f.key),
          { value, author, base_version: f.version == null ? null : f.version });
        Object.assign(f, { value, status: entry.status, version: entry.version, entry_id: entry.id, flags: entry.flags || [] });
        const fresh = detailStatus(f);
        status.replaceWith(fresh);
        status = fresh;
        note.textContent = !value ? "Cleared: the bot now hands this question off to the phone."
          : entry.status === "published" ? "Saved and live."
            : entry.status === "pending" ? "Saved; it goes live once a reviewer approves it under Answers."
              : "Saved (" + (STATUS[entry.status] || entry.status) + ").";
        loadAnswers();
        loadAudit();
      } catch (err) {
        if (err.code === 401) { signOut("Your staff token was refused (it may have changed). Please sign in again."); return; }
        error.textContent = err.code === 409 ? CONFLICT : err.detail || String(err);
      } finally {
        busy(save, false);
      }
    });
    return form;
  }

  async function loadDetails() {
    const target = $("details-list");
    const data = await guarded(target, () => api("GET", "/staff/api/clinic-details"));
    if (!data) return;
    const who = authorField("details");
    who.box.classList.add("narrow-field");
    const grid = el("div", "details-grid");
    for (const f of data.fields || []) grid.appendChild(detailCard({ ...f }, who));
    target.replaceChildren(who.box, grid);
  }
  $("details-refresh").addEventListener("click", loadDetails);

  // ---- re-index -------------------------------------------------------------------------------------------
  $("reindex-btn").addEventListener("click", async () => {
    const button = $("reindex-btn");
    const target = $("reindex-result");
    busy(button, true, "Re-indexing...");
    target.replaceChildren(el("p", "hint", "Reading the articles..."));
    const r = await guarded(target, () => api("POST", "/staff/api/reindex"));
    busy(button, false);
    if (!r) return;
    const dl = el("dl", "counts");
    const fields = [["files", "Files"], ["passages", "Passages"], ["added", "Added"], ["updated", "Updated"],
      ["removed", "Removed"], ["unchanged", "Unchanged"], ["embedded", "Embedded"]];
    for (const [k, label] of fields) dl.append(el("dt", null, label), el("dd", null, r[k]));
    dl.append(el("dt", null, "Seconds"), el("dd", null, Number(r.seconds).toFixed(2)));
    const out = [el("p", "verdict ok", "Done."), dl];
    for (const w of r.warnings || []) out.push(el("p", "error", "Warning: " + w));
    target.replaceChildren(...out);
  });

  boot();
})();
