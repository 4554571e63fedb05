// callcc inbox: a little plain JavaScript over server-rendered pages. No build step, no
// dependencies. Every text it shows goes through textContent, never innerHTML of data.
"use strict";

(function () {
  const announcer = () => document.getElementById("announce");
  function announce(text) {
    const el = announcer();
    if (el) { el.textContent = ""; window.setTimeout(() => { el.textContent = text; }, 50); }
  }

  // -- JSON Schema, the subset tool parameters use ---------------------------------------
  function typeOf(v) {
    if (v === null) return "null";
    if (Array.isArray(v)) return "array";
    if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
    return typeof v; // string, boolean, object
  }
  function fits(type, v) {
    const t = typeOf(v);
    return t === type || (type === "number" && t === "integer");
  }
  function pointer(path) { return path === "" ? "/" : path; }
  function validate(schema, v, path, out) {
    if (schema === true || schema === null || typeof schema !== "object") return out;
    if (schema === false) { out.push(pointer(path) + ": no value is allowed here"); return out; }
    if (schema.type !== undefined) {
      const types = Array.isArray(schema.type) ? schema.type : [schema.type];
      if (!types.some((t) => fits(t, v))) {
        out.push(pointer(path) + ": expected " + types.join(" or ") + ", got " + typeOf(v));
        return out;
      }
    }
    if (schema.enum && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(v))) {
      out.push(pointer(path) + ": must be one of " + schema.enum.map((e) => JSON.stringify(e)).join(", "));
    }
    if ("const" in schema && JSON.stringify(schema.const) !== JSON.stringify(v)) {
      out.push(pointer(path) + ": must be " + JSON.stringify(schema.const));
    }
    const t = typeOf(v);
    if (t === "string") {
      if (schema.minLength !== undefined && v.length < schema.minLength) out.push(pointer(path) + ": shorter than " + schema.minLength + " characters");
      if (schema.maxLength !== undefined && v.length > schema.maxLength) out.push(pointer(path) + ": longer than " + schema.maxLength + " characters");
      if (schema.pattern !== undefined) {
        try { if (!new RegExp(schema.pattern, "u").test(v)) out.push(pointer(path) + ": does not match " + schema.pattern); } catch (e) { /* the server checks it */ }
      }
    }
    if (t === "number" || t === "integer") {
      if (schema.minimum !== undefined && v < schema.minimum) out.push(pointer(path) + ": less than " + schema.minimum);
      if (schema.maximum !== undefined && v > schema.maximum) out.push(pointer(path) + ": more than " + schema.maximum);
      if (schema.exclusiveMinimum !== undefined && v <= schema.exclusiveMinimum) out.push(pointer(path) + ": must be more than " + schema.exclusiveMinimum);
      if (schema.exclusiveMaximum !== undefined && v >= schema.exclusiveMaximum) out.push(pointer(path) + ": must be less than " + schema.exclusiveMaximum);
    }
    if (t === "array") {
      if (schema.minItems !== undefined && v.length < schema.minItems) out.push(pointer(path) + ": fewer than " + schema.minItems + " items");
      if (schema.maxItems !== undefined && v.length > schema.maxItems) out.push(pointer(path) + ": more than " + schema.maxItems + " items");
      if (schema.items && typeof schema.items === "object") v.forEach((x, i) => validate(schema.items, x, path + "/" + i, out));
    }
    if (t === "object") {
      const props = schema.properties || {};
      (schema.required || []).forEach((k) => { if (!(k in v)) out.push(pointer(path) + ": " + JSON.stringify(k) + " is required"); });
      Object.keys(v).forEach((k) => {
        const where = path + "/" + k.replace(/~/g, "~0").replace(/\//g, "~1");
        if (k in props) validate(props[k], v[k], where, out);
        else if (schema.additionalProperties === false) out.push(where + ": is not a parameter of this tool");
        else if (schema.additionalProperties && typeof schema.additionalProperties === "object") validate(schema.additionalProperties, v[k], where, out);
      });
    }
    return out;
  }

  // -- a line diff of two pretty JSON texts (longest common subsequence) ----------------
  function lineDiff(a, b) {
    const x = a.split("\n"), y = b.split("\n");
    const n = x.length, m = y.length;
    const L = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
    for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) {
      L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
    }
    const out = [];
    let i = 0, j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && x[i] === y[j]) { out.push(["same", "  " + x[i]]); i++; j++; }
      else if (i < n && (j >= m || L[i + 1][j] >= L[i][j + 1])) { out.push(["del", "- " + x[i]]); i++; }
      else { out.push(["add", "+ " + y[j]]); j++; }
    }
    return out;
  }
  function showDiff(pre, lines) {
    pre.replaceChildren(...lines.map(([cls, text]) => {
      const span = document.createElement("span");
      span.className = cls; span.textContent = text; return span;
    }));
  }

  // -- edit: check in the page, show the diff, then confirm ------------------------------
  function reviewEdit(form) {
    const area = form.querySelector("textarea[name=arguments]");
    const errors = form.querySelector("[data-edit-errors]");
    const box = form.querySelector("[data-edit-diff-box]");
    const confirm = form.querySelector("[data-edit-confirm]");
    const fail = (msgs) => {
      errors.replaceChildren(...msgs.map((msg) => { const d = document.createElement("span"); d.textContent = msg; d.style.display = "block"; return d; }));
      errors.hidden = false; box.hidden = true; confirm.hidden = true;
      area.setAttribute("aria-invalid", "true");
    };
    let value;
    try { value = JSON.parse(area.value); } catch (e) { fail(["Not JSON: " + e.message]); return; }
    if (typeOf(value) !== "object") { fail(["The arguments must be a JSON object, got " + typeOf(value)]); return; }
    const schema = JSON.parse(form.dataset.schema || "null");
    const problems = schema ? validate(schema, value, "", []) : [];
    if (problems.length) { fail(problems); return; }
    const before = JSON.stringify(JSON.parse(form.dataset.original), null, 2);
    const after = JSON.stringify(value, null, 2);
    if (before === after) { fail(["The arguments are unchanged: approve the call instead."]); return; }
    errors.hidden = true; area.removeAttribute("aria-invalid");
    showDiff(form.querySelector("[data-edit-diff]"), lineDiff(before, after));
    box.hidden = false; confirm.hidden = false;
    form.dataset.reviewed = area.value;
    confirm.focus();
    announce("Review the change shown, then confirm the edit.");
  }

  // -- bulk approval with a count to confirm --------------------------------------------
  const picked = () => Array.from(document.querySelectorAll("input[data-bulk-pick]:checked"));
  function bulkUpdate() {
    const form = document.querySelector("[data-bulk]");
    if (!form) return;
    const n = picked().length;
    form.querySelector("[data-bulk-count]").textContent = String(n);
    form.querySelector("[data-bulk-confirm]").hidden = true;
    form.querySelector("[data-bulk-start]").hidden = false;
  }
  function bulkAsk(form) {
    const n = picked().length;
    if (n === 0) { announce("Select at least one decision to approve."); return; }
    const noun = n === 1 ? "decision" : "decisions";
    form.querySelector("[data-bulk-question]").textContent = "Approve " + n + " " + noun + "? Each approved call runs.";
    form.querySelector("[data-bulk-count-field]").value = String(n);
    const yes = form.querySelector("[data-bulk-yes]");
    yes.textContent = "Approve " + n;
    form.querySelector("[data-bulk-confirm]").hidden = false;
    form.querySelector("[data-bulk-start]").hidden = true;
    yes.focus();
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    const by = event.submitter;
    if (form.matches("[data-edit]")) {
      const area = form.querySelector("textarea[name=arguments]");
      const confirmed = by && by.matches("[data-edit-confirm]") && form.dataset.reviewed === area.value;
      if (!confirmed) { event.preventDefault(); reviewEdit(form); }
    } else if (form.matches("[data-bulk]")) {
      const ok = by && by.matches("[data-bulk-yes]") && form.querySelector("[data-bulk-count-field]").value === String(picked().length);
      if (!ok) { event.preventDefault(); bulkAsk(form); }
    }
    if (!event.defaultPrevented) {
      // one submission per click: a second press while the first is on its way does nothing
      form.querySelectorAll("button[type=submit]").forEach((b) => { b.setAttribute("aria-disabled", "true"); });
      if (form.dataset.sent) event.preventDefault();
      form.dataset.sent = "1";
    }
  });
  document.addEventListener("input", (event) => {
    const form = event.target.closest && event.target.closest("[data-edit]");
    if (form && form.dataset.reviewed !== undefined && form.dataset.reviewed !== event.target.value) {
      form.querySelector("[data-edit-confirm]").hidden = true;
      form.querySelector("[data-edit-diff-box]").hidden = true;
    }
  });
  document.addEventListener("change", (event) => { if (event.target.matches("[data-bulk-pick]")) bulkUpdate(); });
  document.addEventListener("click", (event) => {
    if (event.target.matches("[data-bulk-no]")) { bulkUpdate(); document.querySelector("[data-bulk-start]").focus(); }
  });

  // -- time left before expiry -------------------------------------------------------------
  function left(seconds) {
    if (seconds <= 0) return "expired";
    const d = Math.floor(seconds / 86400), h = Math.floor((seconds % 86400) / 3600), m = Math.floor((seconds % 3600) / 60);
    if (d) return "in " + d + " d " + h + " h";
    if (h) return "in " + h + " h " + m + " min";
    return m ? "in " + m + " min" : "in under a minute";
  }
  function tick() {
    const now = Date.now() / 1000;
    document.querySelectorAll("time[data-expires-at]").forEach((t) => { t.textContent = left(Number(t.dataset.expiresAt) - now); });
  }

  // -- live updates from the event stream -----------------------------------------------
  function reconcile(el, fresh) {
    const oldList = el.querySelector("ol.items"), newList = fresh.querySelector("ol.items");
    if (!oldList || !newList) { el.replaceChildren(...fresh.childNodes); return null; }
    const byKey = new Map(Array.from(oldList.children).map((li) => [li.dataset.key, li]));
    const keys = new Set(Array.from(newList.children).map((li) => li.dataset.key));
    let removed = 0, added = 0;
    byKey.forEach((li, key) => { if (!keys.has(key)) { li.remove(); byKey.delete(key); removed++; } });
    let ref = oldList.firstElementChild;
    Array.from(newList.children).forEach((li) => {
      const kept = byKey.get(li.dataset.key);
      if (kept) { ref = kept.nextElementSibling; return; }
      oldList.insertBefore(document.importNode(li, true), ref); added++;
    });
    const count = el.querySelector("[data-live-count]"), freshCount = fresh.querySelector("[data-live-count]");
    if (count && freshCount) count.replaceWith(document.importNode(freshCount, true));
    return { added, removed, total: newList.children.length };
  }
  function live(el) {
    let busy = false, again = false;
    async function refresh() {
      if (busy) { again = true; return; }
      busy = true;
      try {
        const reply = await fetch(el.dataset.liveSrc, { credentials: "same-origin", headers: { Accept: "text/html" } });
        if (reply.ok) {
          const tpl = document.createElement("template");
          tpl.innerHTML = await reply.text(); // our own escaped HTML; a template runs nothing
          const change = reconcile(el, tpl.content);
          if (change && (change.added || change.removed)) {
            const noun = change.total === 1 ? "decision" : "decisions";
            announce("Inbox updated: " + change.total + " " + noun + " waiting" + (change.added ? ", " + change.added + " new" : "") + ".");
            bulkUpdate();
          } else if (!change) {
            const status = el.querySelector("[data-status]");
            if (status) announce("Run status: " + status.textContent);
          }
          tick();
          el.dataset.liveRefreshed = String(Number(el.dataset.liveRefreshed || 0) + 1);
        }
      } finally {
        busy = false;
        if (again) { again = false; refresh(); }
      }
    }
    const source = new EventSource(el.dataset.liveEvents, { withCredentials: true });
    source.onmessage = refresh;
    ["run_started", "run_suspended", "run_resumed", "run_finished", "run_failed", "run_stopped", "decision_applied", "decided"]
      .forEach((name) => source.addEventListener(name, refresh));
    source.onopen = () => { el.dataset.liveOpen = "1"; };
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-live-src]").forEach(live);
    bulkUpdate();
    tick();
    window.setInterval(tick, 30000);
  });
})();
