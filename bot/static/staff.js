/* The staff console. Plain DOM, text inserted with textContent only, the token kept in sessionStorage. */
(() => {
  "use strict";
  const KEY = "clinic-staff-token";
  const KINDS = [
    ["answer", "Answered"], ["handoff", "Handed off"], ["emergency", "Emergency"],
    ["booking", "Booking"], ["smalltalk", "Small talk"],
  ];
  const SVG_NS = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  let token = readToken();

  // ---- helpers --------------------------------------------------------------------------------------
  function readToken() {
    try { return window.sessionStorage.getItem(KEY); } catch (_) { return null; }
  }
  function writeToken(value) {
    try {
      if (value) window.sessionStorage.setItem(KEY, value); else window.sessionStorage.removeItem(KEY);
    } catch (_) { /* the token then lives for this page only */ }
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
  }

  function signOut(message) {
    token = null;
    writeToken(null);
    show("signin");
    $("signin-msg").textContent = message || "";
    $("token").value = "";
    $("token").focus();
  }

  async function probe() {
    try {
      await api("GET", "/staff/api/session");
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
    legend.replaceChildren(...KINDS.map(([k, label]) => {
      const li = el("li");
      li.append(el("span", "swatch k-" + k), el("span", null, label));
      return li;
    }));
  }

  function renderChart(days) {
    const W = 760, H = 240, left = 40, right = 10, top = 12, bottom = 34;
    const max = Math.max(1, ...days.map((d) => d.total));
    const step = niceStep(max);
    const ymax = Math.ceil(max / step) * step;
    const plotW = W - left - right, plotH = H - top - bottom;
    const slot = plotW / days.length;
    const barW = Math.max(4, slot * 0.7);
    const total = days.reduce((n, d) => n + d.total, 0);
    const root = svg("svg", {
      viewBox: `0 0 ${W} ${H}`, role: "img", class: "chart-svg",
      "aria-label": `Replies per day for the last ${days.length} days by kind: ${total} in all.`,
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
    $("chart").replaceChildren(root);
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
    head.append(el("th", null, "Date"), ...KINDS.map(([, label]) => el("th", null, label)), el("th", null, "Total"));
    const thead = el("thead");
    thead.appendChild(head);
    const tbody = el("tbody");
    for (const d of days.slice().reverse()) {
      const tr = el("tr");
      tr.append(el("td", null, d.date), ...KINDS.map(([k]) => el("td", "num", d[k] || 0)), el("td", "num", d.total));
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
      if (g.variants.length) {
        const ul = el("ul", "variants");
        for (const v of g.variants) ul.appendChild(el("li", null, shown(v)));
        q.appendChild(ul);
      }
      const action = el("td");
      action.appendChild(handledButton(target, "/staff/api/unanswered/handled", g.ids, loadUnanswered,
        shown(g.question)));
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
