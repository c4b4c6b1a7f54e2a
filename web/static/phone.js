// carehub phone app (/m/): progressive enhancements, no framework, no build.
// - registers the service worker /m/sw.js (scope /m/);
// - acknowledge and resolve call the JSON API with the session's CSRF
//   token, like the console;
// - the page follows GET /api/v1/alerts/stream and the service worker's
//   messages, and re-reads itself when an alert changes;
// - "this phone": permission, subscription, home-screen install, and the
//   subscribe button (VAPID key from /api/v1/push/config); every other
//   page re-posts the subscription (the server refreshes last_seen_at) and
//   warns when this phone would not receive alerts; logging out there
//   unsubscribes this phone.
// All text comes from the page (data-* attributes filled from the catalogue).
(function () {
  "use strict";
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var sw = "serviceWorker" in navigator;

  // status says how a call went; a failure with an HTTP status the page
  // has its own words for (data-failed409 on the status line) says those.
  function status(msg, ok, code) {
    var el = document.querySelector(".status");
    if (!el) { return; }
    var own = code && el.dataset["failed" + code];
    el.textContent = ok ? el.dataset.done : (own || el.dataset.failed.replace("%s", msg));
  }

  // said is what an API error says in the page's language: the page's words
  // for its code (the body's data-errors, "apierr.<code>"; empty in
  // English, whose words are the API's own), else its message; "%s" in the
  // words is the message (a code that covers many faults).
  var errTexts = JSON.parse(document.body.dataset.errors || "{}");
  function said(err) {
    var t = err && errTexts[err.code];
    return t ? t.replace("%s", function () { return err.message; }) : err && err.message;
  }

  function api(method, path, body) {
    return fetch(path, {
      method: method, credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (r) {
      if (r.ok) { return r.status === 204 ? {} : r.json(); }
      return r.json().then(function (e) { var x = new Error(said(e.error) || r.status); x.status = r.status; throw x; },
        function () { var x = new Error(String(r.status)); x.status = r.status; throw x; });
    });
  }

  // reread replaces the page's main content with a fresh copy, unless
  // someone is filling in a field (then or when the copy arrives): their
  // answer is not wiped, and the server says if the alert moved on.
  var rereading = false;
  function typing() { return document.activeElement && /INPUT|TEXTAREA|SELECT/.test(document.activeElement.tagName); }
  function reread() {
    if (rereading || typing()) { return; }
    rereading = true;
    fetch(location.href, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) { throw new Error(String(r.status)); }
      return r.text();
    }).then(function (html) {
      rereading = false;
      if (typing()) { return; }
      var doc = new DOMParser().parseFromString(html, "text/html");
      var fresh = doc.getElementById("main");
      if (fresh) { document.getElementById("main").innerHTML = fresh.innerHTML; tick(); checkPush(); }
    }, function () { rereading = false; });
  }

  document.addEventListener("click", function (ev) {
    var r = ev.target.closest("button.reveal");
    if (r) {
      var name = r.querySelector(".name"), hint = r.querySelector(".hint");
      var open = r.getAttribute("aria-expanded") === "true";
      if (!r.dataset.masked) { r.dataset.masked = name.textContent; r.dataset.show = hint.textContent; }
      name.textContent = open ? r.dataset.masked : r.dataset.name;
      hint.textContent = open ? r.dataset.show : r.dataset.hide;
      r.setAttribute("aria-expanded", open ? "false" : "true");
      return;
    }
    var b = ev.target.closest("button[data-act]");
    if (b) {
      b.disabled = true;
      api("POST", "/api/v1/alerts/" + encodeURIComponent(b.dataset.id) + "/" + b.dataset.act, {})
        .then(function () { status("", true); reread(); }, function (e) { b.disabled = false; status(e.message, false); });
      return;
    }
    if (ev.target.closest("button[data-subscribe]")) { subscribe(ev.target.closest("button")); }
  });

  // Logging out of the phone app ends this phone's alerts: the
  // subscription is deleted on the server (while the session still
  // allows it) and in the browser (the push service then answers 404/410
  // should a push still come); the logout goes ahead whatever fails.
  document.addEventListener("submit", function (ev) {
    var f = ev.target.closest("form[data-unsubscribe]");
    if (!f || !supported) { return; }
    ev.preventDefault();
    withTimeout(ready(), 3000).then(function (reg) { return reg.pushManager.getSubscription(); }).then(function (sub) {
      if (!sub) { return null; }
      return api("DELETE", "/api/v1/push/subscriptions", { endpoint: sub.endpoint }).then(null, function () { return null; })
        .then(function () { return sub.unsubscribe(); });
    }).then(null, function () { return null; }).then(function () { f.submit(); });
  });

  document.addEventListener("submit", function (ev) {
    var f = ev.target.closest("form.apiform");
    if (!f) { return; }
    ev.preventDefault();
    var body = {};
    new FormData(f).forEach(function (v, k) { body[k] = v; });
    api("POST", "/api/v1/alerts/" + encodeURIComponent(f.dataset.id) + "/" + f.dataset.act, body)
      .then(function () { status("", true); if (document.activeElement) { document.activeElement.blur(); } reread(); },
        function (e) { status(e.message, false, e.status); });
  });

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

  // Live: the alert stream, and the service worker's word that a push
  // arrived or an acknowledgement went through.
  if (window.EventSource && !document.querySelector("[data-testid=device]")) {
    var es = new EventSource("/api/v1/alerts/stream");
    ["raised", "repeated", "escalated", "acknowledged", "resolved", "auto_cleared"].forEach(function (name) {
      es.addEventListener(name, reread);
    });
    es.onopen = function () { document.body.dataset.live = "1"; };
  }
  if (sw) {
    navigator.serviceWorker.addEventListener("message", function (ev) {
      var d = ev.data || {};
      document.body.dataset.lastPush = d.tag || "";
      reread();
    });
    navigator.serviceWorker.register("/m/sw.js", { scope: "/m/" }).then(function () {
      document.body.dataset.sw = "registered";
    }, function () { document.body.dataset.sw = "failed"; });
  }

  // --- this phone -----------------------------------------------------
  var ios = /iPad|iPhone|iPod/.test(navigator.userAgent) || (navigator.platform === "MacIntel" && navigator.maxTouchPoints > 1);
  var installed = (window.matchMedia && matchMedia("(display-mode: standalone)").matches) || navigator.standalone === true;
  var supported = sw && "PushManager" in window && "Notification" in window;

  function keyBytes(b64) {
    var s = atob((b64 + "===".slice((b64.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/"));
    var out = new Uint8Array(s.length);
    for (var i = 0; i < s.length; i++) { out[i] = s.charCodeAt(i); }
    return out;
  }
  function sameKey(sub, key) {
    var k = sub.options && sub.options.applicationServerKey;
    if (!k) { return true; }
    var a = new Uint8Array(k), b = keyBytes(key);
    if (a.length !== b.length) { return false; }
    for (var i = 0; i < a.length; i++) { if (a[i] !== b[i]) { return false; } }
    return true;
  }
  function withTimeout(p, ms) {
    return Promise.race([p, new Promise(function (_, no) { setTimeout(function () { no(new Error("timeout")); }, ms); })]);
  }
  function ready() { return withTimeout(navigator.serviceWorker.ready, 10000); }
  function post(sub) {
    var j = sub.toJSON();
    j.locale = document.documentElement.lang;
    return api("POST", "/api/v1/push/subscriptions", j);
  }

  // facts finds out whether this phone will receive alerts; it re-posts a
  // present subscription, and drops one made with another server key.
  function facts() {
    var f = { support: supported, permission: supported ? Notification.permission : "default", subscription: false, installed: installed, ios: ios, server: true };
    if (!supported) { return Promise.resolve(f); }
    return api("GET", "/api/v1/push/config").then(function (cfg) {
      f.key = cfg.vapid_public_key;
      return ready().then(function (reg) { return reg.pushManager.getSubscription(); }).then(function (sub) {
        if (sub && !sameKey(sub, f.key)) { return sub.unsubscribe().then(function () { return null; }); }
        return sub;
      }).then(function (sub) {
        if (!sub) { return f; }
        return post(sub).then(function () { f.subscription = true; return f; }, function () { return f; });
      });
    }, function (e) { f.server = e.status !== 404; return f; });
  }
  function receives(f) { return f.support && f.server && f.permission === "granted" && f.subscription && (!f.ios || f.installed); }

  function show(f) {
    var dev = document.querySelector("[data-testid=device]");
    var ok = receives(f);
    var warn = document.querySelector(".pushwarn");
    if (warn) { warn.hidden = ok; }
    if (!dev) { return; }
    dev.dataset.state = ok ? "ok" : "no";
    var v = dev.querySelector(".verdict");
    v.textContent = ok ? v.dataset.ok : v.dataset.no;
    function fact(name, key) { var el = dev.querySelector('[data-fact="' + name + '"]'); el.textContent = el.dataset[key]; }
    fact("support", f.support ? "yes" : "no");
    fact("permission", f.permission);
    fact("subscription", f.subscription ? "yes" : "no");
    fact("installed", f.installed ? "yes" : "no");
    function fix(name, on) { dev.querySelector('[data-fix="' + name + '"]').hidden = !on; }
    fix("ios", f.ios && !f.installed);
    fix("denied", f.permission === "denied");
    fix("support", !f.support && !f.ios);
    fix("server", !f.server);
    fix("subscribe", f.support && f.server && !f.subscription && f.permission !== "denied" && !(f.ios && !f.installed));
    var fh = dev.querySelector(".fixhead");
    fh.textContent = ok ? fh.dataset.ok : fh.dataset.no;
    // The bar at the bottom goes with its button.
    dev.querySelector("[data-subscribe]").closest(".thumb").hidden = ok || !f.support || !f.server || (f.ios && !f.installed);
  }
  function checkPush() { facts().then(show); }

  function subscribe(btn) {
    btn.disabled = true;
    var key;
    api("GET", "/api/v1/push/config").then(function (cfg) {
      key = cfg.vapid_public_key;
      return Notification.requestPermission();
    }).then(function (perm) {
      if (perm !== "granted") { throw new Error(perm); }
      return ready();
    }).then(function (reg) {
      return withTimeout(reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) }), 20000);
    }).then(post).then(function () {
      btn.disabled = false;
      status("", true);
      checkPush();
    }, function (e) {
      btn.disabled = false;
      status(e.message, false);
      checkPush();
    });
  }

  tick();
  checkPush();
})();
