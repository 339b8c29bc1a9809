// The API reference's "try it" bar: fetches a sandbox token for the signed-in developer (from the
// portal, with the session's CSRF token) and hands it to swagger-ui's requestInterceptor.
"use strict";
(function () {
  const bar = document.createElement("div");
  bar.className = "tryit-bar";
  bar.setAttribute("role", "region");
  bar.setAttribute("aria-label", "Try it with your sandbox");
  bar.innerHTML =
    '<a href="/portal/dev">← Portal</a>' +
    '<label for="tryit-client">Sandbox client</label> <select id="tryit-client"></select>' +
    '<button type="button" id="tryit-token" class="tryit-btn">Use my sandbox token</button>' +
    '<span id="tryit-status" role="status" aria-live="polite"></span>';
  document.body.insertBefore(bar, document.body.firstChild);
  const select = bar.querySelector("#tryit-client");
  const status = bar.querySelector("#tryit-status");
  const button = bar.querySelector("#tryit-token");
  let csrf = "";

  fetch("/portal/api/session", { credentials: "same-origin", headers: { accept: "application/json" } })
    .then((r) => r.json())
    .then((s) => {
      csrf = s.csrf;
      for (const c of s.sandbox_clients) {
        const o = document.createElement("option");
        o.value = c.client_id;
        o.textContent = c.name + " (" + c.client_id + ")";
        select.appendChild(o);
      }
      if (!s.sandbox_clients.length) {
        status.textContent = "No sandbox client yet: create one on the Credentials page.";
        button.disabled = true;
      }
    })
    .catch(() => { status.textContent = "Could not reach the portal session."; });

  button.addEventListener("click", () => {
    status.textContent = "Getting a token…";
    fetch("/portal/api/sandbox-token", {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": csrf, accept: "application/json" },
      body: JSON.stringify({ client_id: select.value }),
    })
      .then((r) => r.json().then((b) => ({ ok: r.ok, b })))
      .then(({ ok, b }) => {
        if (!ok) { status.textContent = b.detail || "Refused."; return; }
        window.__hubSandboxToken = b.access_token;
        const minutes = Math.round(b.expires_in / 60);
        status.textContent = "Sandbox token set for " + b.client_id + " (" + minutes + " min). Every “Execute” now sends it.";
        status.dataset.ready = "true";
      })
      .catch(() => { status.textContent = "Could not get a token."; });
  });
})();
