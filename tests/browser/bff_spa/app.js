// The SPA holds no token: the BFF's HttpOnly cookie goes along with every same-origin fetch.
// Every call carries X-CSRF: 1 (the BFF refuses calls without it).
async function bff(path, options = {}) {
  const r = await fetch(path, { ...options, credentials: "same-origin", headers: { "X-CSRF": "1", ...options.headers } });
  const body = await r.json().catch(() => null);
  if (r.status === 401) sessionEnded(body);
  return { status: r.status, body };
}

// 401 from the BFF: session_required (no session) or session_ended (idp ended it): sign in again.
function sessionEnded(body) {
  const status = document.getElementById("status");
  status.className = "ended";
  status.textContent = "Your session has ended (" + (body && body.error) + "). ";
  const again = document.createElement("a");
  again.href = "/bff/login?returnTo=/";
  again.textContent = "Sign in again";
  status.append(again);
}

async function callApi(path) {
  const result = await bff(path);
  document.getElementById("out").textContent = JSON.stringify(result, null, 2);
  return result;
}

async function start() {
  const r = await fetch("/bff/user", { credentials: "same-origin", headers: { "X-CSRF": "1" } });
  const me = await r.json();  // 401 {"error": "unauthenticated"} when signed out
  const who = document.getElementById("who");
  if (r.status === 401) {
    who.innerHTML = '<a href="/bff/login?returnTo=/">Sign in</a>';
    return;
  }
  who.textContent = "Signed in as " + (me.claims.name || me.sub);
  for (const id of ["orders", "billing", "signout"]) document.getElementById(id).hidden = false;
  document.getElementById("orders").onclick = () => callApi("/orders/mine");
  document.getElementById("billing").onclick = () => callApi("/billing/invoices");
  document.getElementById("signout").onclick = () => location.assign(me.logout_url);  // a navigation
}

window.callApi = callApi;
start();
