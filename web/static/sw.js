// carehub phone service worker, scope /m/ (served at /m/sw.js).
// - push: shows the alert's notification (one per alert: its tag), with
//   acknowledge and open actions where the browser has them, and reports
//   "shown" to /api/v1/push/receipts with the push's action token;
// - notificationclick: the acknowledge action posts the one-tap
//   acknowledgement (X-Care-Action-Token, no session needed); anything
//   else opens the alert page and reports "opened".
// Texts come from the catalogue: the server puts them in place of the
// SW_TEXTS marker below. Only same-origin paths are ever fetched or opened.
"use strict";
var TEXTS = /*SW_TEXTS*/{};
var TOKEN_HEADER = "X-Care-Action-Token";

function lang(p) {
  var l = (p && p.lang) || (self.navigator.language || "ko").slice(0, 2);
  return TEXTS[l] ? l : "ko";
}
function t(p, key) { return (TEXTS[lang(p)] || {})[key] || key; }

// path keeps only the path of a URL from the payload, so a payload can
// never send the worker to another origin.
function path(u, fallback) {
  try {
    var x = new URL(u, self.location.origin);
    return x.pathname + x.search;
  } catch (e) {
    return fallback;
  }
}

function tell(msg) {
  self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (cs) {
    cs.forEach(function (c) { c.postMessage(msg); });
  });
}

function receipt(p, event) {
  if (!p.action_token || !p.alert_id) { return Promise.resolve(); }
  return fetch(path(p.receipt_url, "/api/v1/push/receipts"), {
    method: "POST", keepalive: true, credentials: "omit",
    headers: { "Content-Type": "application/json", "X-Care-Action-Token": p.action_token },
    body: JSON.stringify({ alert_id: p.alert_id, event: event })
  }).catch(function () {});
}

self.addEventListener("install", function () { self.skipWaiting(); });
self.addEventListener("activate", function (ev) { ev.waitUntil(self.clients.claim()); });

self.addEventListener("push", function (ev) {
  var p = {};
  try { p = ev.data ? ev.data.json() : {}; } catch (e) { p = {}; }
  var tag = p.tag || p.alert_id || "carehub";
  var opts = {
    body: p.body || "", tag: tag, data: p, lang: lang(p),
    renotify: !p.silent, silent: !!p.silent,
    requireInteraction: p.severity === "critical" && !p.silent,
    icon: "/static/icon-192.png", badge: "/static/icon-192.png",
    timestamp: Date.parse(p.raised_at) || Date.now()
  };
  if (!p.silent && p.action_token && p.transition !== "acknowledged" && p.transition !== "resolved") {
    opts.actions = [{ action: "ack", title: t(p, "ack") }, { action: "open", title: t(p, "open") }];
  }
  ev.waitUntil(self.registration.showNotification(p.title || "carehub", opts).then(function () {
    tell({ type: "shown", tag: tag, alert_id: p.alert_id });
    return receipt(p, "shown");
  }));
});

function openPage(url) {
  return self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (cs) {
    for (var i = 0; i < cs.length; i++) {
      if (new URL(cs[i].url).pathname === url.split("?")[0] && "focus" in cs[i]) { return cs[i].focus(); }
    }
    return self.clients.openWindow(url);
  });
}

function acknowledge(p) {
  var url = path(p.ack_url, "/api/v1/push/alerts/" + encodeURIComponent(p.alert_id) + "/ack");
  if (url.indexOf("/api/v1/push/alerts/") !== 0) { return Promise.resolve(false); }
  var h = { "Content-Type": "application/json" };
  h[TOKEN_HEADER] = p.action_token;
  return fetch(url, { method: "POST", credentials: "omit", headers: h, body: "{}" })
    .then(function (r) { return r.ok; }, function () { return false; });
}

self.addEventListener("notificationclick", function (ev) {
  var n = ev.notification, p = n.data || {};
  var page = path(p.url, "/m/alerts/" + encodeURIComponent(p.alert_id || ""));
  if (page.indexOf("/m/") !== 0) { page = "/m/"; }
  n.close();
  if (ev.action === "ack" && p.action_token) {
    ev.waitUntil(acknowledge(p).then(function (ok) {
      if (!ok) {
        return Promise.all([openPage(page), self.registration.showNotification(t(p, "ackfailed"), {
          body: p.body || "", tag: n.tag, silent: true, data: p
        })]);
      }
      tell({ type: "changed", alert_id: p.alert_id });
      return self.registration.showNotification(t(p, "acked"), {
        body: p.body || "", tag: n.tag, silent: true, data: { url: page, alert_id: p.alert_id }
      });
    }));
    return;
  }
  ev.waitUntil(Promise.all([receipt(p, "opened"), openPage(page)]));
});
