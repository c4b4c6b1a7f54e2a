// carehub console: small progressive enhancements, no framework, no build.
// - the inbox follows GET /api/v1/alerts/stream (EventSource resumes with
//   Last-Event-ID by itself) and re-reads its rows on every transition;
// - action buttons and forms call the JSON API with the session's CSRF
//   token (the same endpoints and semantics as any API client);
// - "N minutes unacknowledged" counts up.
// All text comes from the page (data-* attributes filled from the catalogue).
(function () {
  "use strict";
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  // status says how a call went; a failure with an HTTP status the page
  // has its own words for (data-failed412 on the status line) says those.
  function status(msg, ok, code) {
    var el = document.querySelector(".status");
    if (!el) { return; }
    var own = code && el.dataset["failed" + code];
    el.textContent = ok ? el.dataset.done : (own || el.dataset.failed.replace("%s", msg));
  }

  // said is what an API error says in the page's language: the page's words
  // for its code (the body's data-errors, "apierr.<code>" in the catalogue;
  // empty in English, whose words are the API's own), else its message;
  // "%s" in the words is the message (a code that covers many faults).
  var errTexts = JSON.parse(document.body.dataset.errors || "{}");
  function said(err) {
    var t = err && errTexts[err.code];
    return t ? t.replace("%s", function () { return err.message; }) : err && err.message;
  }

  function call(path, body, method, headers) {
    var h = { "Content-Type": "application/json", "X-CSRF-Token": csrf };
    Object.keys(headers || {}).forEach(function (k) { h[k] = headers[k]; });
    return fetch(path, {
      method: method || "POST", credentials: "same-origin", headers: h,
      body: body === null ? undefined : JSON.stringify(body || {})
    }).then(function (r) {
      if (r.status === 204) { return {}; }
      if (r.ok) { return r.json(); }
      function fail(m, fields) { var e = new Error(m); e.status = r.status; e.fields = fields; throw e; }
      return r.json().then(function (e) { fail(said(e.error) || r.status, e.error && e.error.fields); },
        function () { fail(String(r.status)); });
    });
  }

  // formBody turns a form into the JSON body of its API call. A field's
  // name is its path in the body: "a.b" sets b of object a, a number
  // segment an array's element ("tiers.0.role"); "*" in it is the value of
  // the field data-key names (a map key typed by hand). A field's data-type
  // says its JSON type: "int", "float", "bool" (a checkbox), "off" (a
  // checkbox that sends true when not ticked, nothing when ticked), "dur"
  // (a number and the unit select beside it: "15m"), "local" (a
  // datetime-local, sent with the zone offset in data-tz), "list" (comma-
  // or space-separated text), "set" (the checked boxes of that name, as an
  // array), "json"; others are strings. A field marked data-optional is
  // left out when empty; one marked data-drop leaves out, when empty, the
  // whole object it belongs to (an empty row). Fields a disabled fieldset
  // holds are left out. In a form marked data-changed (a PATCH) a text
  // field left as the page showed it is left out.
  function formBody(f) {
    var body = {}, dropped = [], changed = f.dataset.changed !== undefined;
    function at(path, make) {
      var ks = path.split("."), o = body;
      for (var i = 0; i < ks.length - 1; i++) {
        if (o[ks[i]] === undefined) { o[ks[i]] = /^\d+$/.test(ks[i + 1]) ? [] : {}; }
        o = o[ks[i]];
      }
      var k = ks[ks.length - 1];
      if (make && o[k] === undefined) { o[k] = []; }
      return { o: o, k: k };
    }
    Array.prototype.forEach.call(f.elements, function (el) {
      var k = el.name, t = el.dataset.type || "";
      if (!k || el.matches(":disabled")) { return; }
      if (k.indexOf("*") >= 0) {
        var key = (document.getElementById(el.dataset.key) || {}).value || "";
        if (key === "") { return; }
        k = k.replace("*", key);
      }
      if (dropped.some(function (p) { return k.indexOf(p) === 0; })) { return; }
      if (el.dataset.drop !== undefined && el.value === "") { dropped.push(k.replace(/[^.]*$/, "")); return; }
      if (changed && el.type !== "hidden" && el.value === el.defaultValue) { return; }
      if (t === "set") {
        var s = at(k, true);
        if (el.checked) { s.o[s.k].push(el.value); }
        return;
      }
      var v = el.value;
      if (t === "bool") { v = el.checked; }
      else if (t === "off") { if (el.checked) { return; } v = true; }
      else if ((el.type === "checkbox" || el.type === "radio") && !el.checked) { return; }
      else if (v === "" && el.dataset.optional !== undefined) { return; }
      else if (t === "int" || k === "minutes") { v = parseInt(v, 10); }
      else if (t === "float") { v = parseFloat(v); }
      else if (t === "dur") { v = v + el.parentNode.querySelector("select").value; }
      else if (t === "local") { v = v + ":00" + el.dataset.tz; }
      else if (t === "list") { v = v.split(/[\s,]+/).filter(function (x) { return x !== ""; }); }
      else if (t === "json") { v = JSON.parse(v); }
      var a = at(k);
      a.o[a.k] = v;
    });
    return compact(body);
  }
  // compact closes the gaps left in arrays by rows left out.
  function compact(v) {
    if (Array.isArray(v)) { return v.filter(function (x) { return x !== undefined; }).map(compact); }
    if (v && typeof v === "object") { Object.keys(v).forEach(function (k) { v[k] = compact(v[k]); }); }
    return v;
  }
  // A checkbox marked data-toggle in a fieldset's legend enables the rest
  // of the fieldset (a rule's own limits: off, the defaults are shown and
  // not sent).
  document.addEventListener("change", function (ev) {
    var c = ev.target;
    if (c.matches && c.matches("input[data-toggle]")) { c.closest("fieldset").disabled = !c.checked; }
  });

  // A changed SpO2 scale changes the SpO2 rule's default limits: unless
  // the resident has limits of their own, the page asks the server for the
  // settings page with that scale (?scale=) and shows its SpO2 limits.
  document.addEventListener("change", function (ev) {
    var sel = ev.target;
    if (!sel.matches || !sel.matches('select[name="spo2_scale"]')) { return; }
    function own() {
      var fs = document.querySelector('tr[data-rule="spo2"] fieldset.limits');
      return !fs || !fs.disabled;
    }
    var want = sel.value;
    if (own()) { return; }
    fetch(location.pathname + "?scale=" + encodeURIComponent(want), { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) { throw new Error(String(r.status)); }
      return r.text();
    }).then(function (html) {
      var fresh = new DOMParser().parseFromString(html, "text/html").querySelector('tr[data-rule="spo2"] > td:last-child');
      var cur = document.querySelector('tr[data-rule="spo2"] > td:last-child');
      if (!fresh || !cur || own() || sel.value !== want) { return; } // changed again meanwhile: a later answer comes
      var open = cur.querySelector("details") && cur.querySelector("details").open;
      cur.replaceWith(document.importNode(fresh, true));
      var d = document.querySelector('tr[data-rule="spo2"] > td:last-child details');
      if (d) { d.open = open; }
    }, function () {}); // the old defaults stay shown; a save is unaffected
  });

  // show fills the element a form names in data-show with the answer:
  // each [data-field] inside gets the answer's value at that dotted path.
  // Used for what is shown once (a device's MQTT password).
  function show(id, answer) {
    var box = document.getElementById(id);
    if (!box) { return; }
    box.querySelectorAll("[data-field]").forEach(function (el) {
      var v = el.dataset.field.split(".").reduce(function (o, k) { return o == null ? o : o[k]; }, answer);
      el.textContent = v == null ? "" : String(v);
    });
    box.hidden = false;
    box.focus();
  }
  function after() {
    if (document.querySelector(".inbox")) { refresh(); } else { location.reload(); }
  }

  document.addEventListener("click", function (ev) {
    var b = ev.target.closest("button[data-act]");
    if (!b) { return; }
    b.disabled = true;
    call("/api/v1/alerts/" + encodeURIComponent(b.dataset.id) + "/" + b.dataset.act)
      .then(function () { status("", true); after(); }, function (e) { b.disabled = false; status(e.message, false); });
  });

  // A form.apiform calls the JSON API: data-path and data-method (default
  // POST) name the endpoint, or data-id and data-act an alert action;
  // data-if-match sends If-Match; data-show names where the answer is shown
  // (otherwise the page reloads); data-confirm asks first.
  document.addEventListener("submit", function (ev) {
    var f = ev.target.closest("form.apiform");
    if (!f) { return; }
    ev.preventDefault();
    if (f.dataset.confirm && !window.confirm(f.dataset.confirm)) { return; }
    var path = f.dataset.path || ("/api/v1/alerts/" + encodeURIComponent(f.dataset.id) + "/" + f.dataset.act);
    var method = f.dataset.method || "POST", body;
    if (f.noValidate && refuse(f)) { return; }
    try { body = formBody(f); } catch (e) { status(e.message, false); return; }
    if (method === "DELETE") { body = null; }
    var headers = f.dataset.ifMatch ? { "If-Match": f.dataset.ifMatch } : {};
    call(path, body, method, headers).then(function (answer) {
      status("", true);
      if (f.dataset.show) { show(f.dataset.show, answer); } else { after(); }
    }, function (e) { status(problems(f, e.fields) || e.message, false, e.status); });
  });

  // problems marks each field the server refused (aria-invalid), opens
  // and focuses the first, and says what is wrong with each in the page's
  // language: the field's own label, then the server's reason translated
  // (the form's or else the page's status line's data-problems, keyed by
  // the English reason) with its values. "" when the server named no field.
  function problems(f, fields) {
    mark(f, null);
    if (!fields || !fields.length) { return ""; }
    var st = f.querySelector(".status") || document.querySelector(".status"), texts = JSON.parse((st && st.dataset.problems) || "{}"), seen = {};
    // One line a field: its first problem (a clear level inside two bands
    // is one thing to fix).
    fields = fields.filter(function (p) { var first = !seen[p.field]; seen[p.field] = true; return first; });
    return fields.map(function (p) {
      var el = f.querySelector('[name="' + CSS.escape(p.field) + '"]'), i = 0, args = p.args || [];
      var why = (texts[p.reason] || p.reason).replace(/%(?:\[(\d+)\])?([a-z])/g, function (m, n, verb) {
        var v = args[n ? n - 1 : i++], sel = '"' + CSS.escape(String(v)) + '"';
        var named = typeof v === "string" && f.querySelector("tr[data-rule=" + sel + "] > th, option[value=" + sel + "]");
        if (named) { return named.textContent; } // a rule id or a choice's value (a word, not a number): its name
        return verb === "q" ? "\u201c" + v + "\u201d" : durText(String(v));
      });
      if (!el) { return why; } // a field the form does not show (a whole list)
      mark(f, el);
      return labelOf(el) + ": " + why;
    }).join("\n");
  }
  // mark marks el as refused (aria-invalid), opening and focusing the first
  // marked; a null el clears the form's marks.
  function mark(f, el) {
    if (!el) {
      f.querySelectorAll("[aria-invalid]").forEach(function (x) { x.removeAttribute("aria-invalid"); });
      return;
    }
    var first = !f.querySelector("[aria-invalid]");
    el.setAttribute("aria-invalid", "true");
    if (first) {
      for (var d = el.closest("details"); d; d = d.parentNode.closest("details")) { d.open = true; }
      el.focus();
    }
  }
  // On a page with a status line a form checks its fields itself (min,
  // max, step, required, pattern), so that what is wrong is said there in
  // the page's language on the field's label, not in a bubble in the
  // browser's.
  var ownChecks = !!document.querySelector(".status");
  document.querySelectorAll("form.apiform").forEach(function (f) { f.noValidate = ownChecks; });
  var checks = ["valueMissing", "badInput", "rangeUnderflow", "rangeOverflow", "stepMismatch", "tooLong", "patternMismatch", "typeMismatch"];
  // refuse says what is wrong with f's fields and reports whether anything is.
  function refuse(f) {
    mark(f, null);
    var texts = JSON.parse(document.body.dataset.invalid || "{}"), msgs = [];
    Array.prototype.forEach.call(f.elements, function (el) {
      if (!el.willValidate || el.checkValidity()) { return; }
      var k = "other";
      for (var i = 0; i < checks.length; i++) { if (el.validity[checks[i]]) { k = checks[i]; break; } }
      var arg = { rangeUnderflow: el.min, rangeOverflow: el.max, stepMismatch: el.step, tooLong: el.maxLength }[k];
      mark(f, el);
      msgs.push(labelOf(el) + ": " + (texts[k] || el.validationMessage).replace("%s", arg === undefined ? "" : arg));
    });
    if (msgs.length) { status(msgs.join("\n"), false); }
    return msgs.length > 0;
  }
  // labelOf is the text a field is labelled with, its rule's name first
  // when the label does not say it.
  function labelOf(el) {
    var ids = el.getAttribute("aria-labelledby"), t;
    if (ids) {
      t = ids.split(" ").map(function (id) { var l = document.getElementById(id); return l ? l.textContent : ""; }).join(" \u00b7 ");
    } else {
      t = el.labels && el.labels.length ? el.labels[0].textContent : el.name;
      var row = el.closest("tr[data-rule]");
      if (row) { t = row.querySelector("th").textContent + " \u00b7 " + t; }
    }
    return t.replace(/\s+/g, " ").trim();
  }
  // durText writes a Go duration ("1h0m0s") with the units the page's
  // duration selects name ("1h", in Korean the unit's word), leaving other values as they are.
  function durText(v) {
    var m = /^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:([\d.]+)s)?$/.exec(v);
    if (!m || v === "") { return v; }
    var out = [];
    [[m[1], "h"], [m[2], "m"], [m[3], "s"]].forEach(function (x) {
      if (!x[0] || Number(x[0]) === 0) { return; }
      var o = document.querySelector('.dur option[value="' + x[1] + '"]');
      out.push(x[0] + (o ? o.textContent : x[1]));
    });
    return out.length ? out.join(" ") : v;
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll(".unacked[data-since]").forEach(function (el) {
      var m = Math.max(0, Math.floor((now - Date.parse(el.dataset.since)) / 60000));
      el.textContent = m < 1 && el.dataset.fmtn ? el.dataset.fmtn
        : m >= 60 && el.dataset.fmth ? el.dataset.fmth.replace("%d", Math.floor(m / 60)).replace("%d", m % 60)
        : el.dataset.fmt.replace("%d", m);
    });
  }
  setInterval(tick, 15000);

  var inbox = document.querySelector(".inbox");
  // A transition that arrives while the rows are being read may have
  // happened after the server read them: it is not dropped but read again
  // as soon as the current read ends.
  var pending = false, again = false;
  function refresh() {
    if (!inbox) { return; }
    if (pending) { again = true; return; }
    pending = true;
    again = false;
    function done() {
      pending = false;
      if (again) { refresh(); }
    }
    fetch(inbox.dataset.rows, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) { throw new Error(String(r.status)); }
      return r.text();
    }).then(function (html) {
      document.getElementById("rows").innerHTML = html;
      tick();
      ring();
      done();
    }, done);
  }
  // Duty-station sound: when this browser's user switched it on (kept in
  // localStorage), an open critical alert sounds until it is acknowledged.
  var sound = document.getElementById("sound"), alarm = document.getElementById("alarm");
  function ring() {
    if (!sound || !alarm) { return; }
    var due = sound.checked && document.querySelector("#rows .sev-critical.st-open") !== null;
    if (due && alarm.paused) {
      var p = alarm.play();
      if (p && p.catch) { p.catch(function () {}); } // autoplay refused until the user interacts
    } else if (!due && !alarm.paused) {
      alarm.pause();
      alarm.currentTime = 0;
    }
  }
  if (sound) {
    try { sound.checked = localStorage.getItem("carehub.sound") === "1"; } catch (e) { /* storage off */ }
    sound.addEventListener("change", function () {
      try { localStorage.setItem("carehub.sound", sound.checked ? "1" : "0"); } catch (e) { /* storage off */ }
      ring();
    });
    ring();
  }
  if (inbox && window.EventSource) {
    var live = inbox.querySelector(".live");
    var es = new EventSource(inbox.dataset.stream);
    es.onopen = function () { live.textContent = live.dataset.live; live.classList.add("on"); refresh(); };
    es.onerror = function () { live.textContent = live.dataset.offline; live.classList.remove("on"); };
    ["raised", "repeated", "escalated", "acknowledged", "resolved", "auto_cleared"].forEach(function (name) {
      es.addEventListener(name, refresh);
    });
    inbox.dataset.ready = "1";
  }
})();
