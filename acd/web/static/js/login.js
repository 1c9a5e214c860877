import { api, setText } from "/static/js/common.js";

function nextPath() {
  const next = new URLSearchParams(location.search).get("next") || "";
  // Only a path on this server: never another site.
  return next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : "";
}

document.getElementById("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  setText("login-error", "");
  const username = document.getElementById("username").value.trim();
  const password = document.getElementById("password").value;
  const r = await api("POST", "/api/auth/login", { username, password });
  if (!r.ok) {
    setText("login-error", r.data.message || "The login failed.");
    return;
  }
  const next = nextPath();
  const home = r.data.home || "/";
  // back to the page asked for, if the role may open it (the reports page, a bookmark)
  const pages = r.data.pages || [];
  const ok = next && (next.startsWith(home) || pages.includes(next.split(/[?#]/)[0]));
  location.assign(ok ? next : home);
});
