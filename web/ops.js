// Berth operator panel: polls GET /health and GET /stats/pool and shows the numbers.
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  let timer = null;
  let paused = false;
  let inFlight = false;

  function text(id, value) { $(id).textContent = value === undefined || value === null || value === "" ? "—" : String(value); }

  function pill(id, ok, detail) {
    const dd = $(id);
    dd.replaceChildren();
    const p = document.createElement("span");
    p.className = "pill " + (ok === true ? "pill-ok" : ok === false ? "pill-bad" : "pill-unknown");
    p.textContent = ok === true ? "up" : ok === false ? "down" : "unknown";
    dd.appendChild(p);
    if (detail) dd.appendChild(document.createTextNode(" " + detail));
  }

  function duration(s) {
    if (typeof s !== "number" || !isFinite(s)) return undefined;
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
    return (d ? d + "d " : "") + (d || h ? h + "h " : "") + (d || h || m ? m + "m " : "") + sec + "s";
  }

  function ms(v) { return typeof v === "number" && isFinite(v) ? (Math.round(v * 10) / 10) + " ms" : undefined; }

  async function getJson(path) {
    const res = await fetch(path, { cache: "no-store", headers: { Accept: "application/json" } });
    let body = null;
    try { body = await res.json(); } catch (_) { /* not JSON */ }
    return { status: res.status, body };
  }

  function setOverall(state, label) {
    $("overall").dataset.state = state;
    $("overall-text").textContent = label;
  }

  function renderHealth(r) {
    const h = r.body || {};
    $("raw-health").textContent = r.body ? JSON.stringify(h, null, 2) : "HTTP " + r.status + " (no JSON body)";
    text("h-status", h.status ? h.status + " (HTTP " + r.status + ")" : "HTTP " + r.status);
    text("h-replica", h.replica);
    text("h-uptime", duration(h.uptimeS));
    const redis = h.redis || {};
    pill("h-redis", typeof redis.ok === "boolean" ? redis.ok : undefined, ms(redis.latencyMs));
    const docker = h.docker || {};
    pill("h-docker", typeof docker.ok === "boolean" ? docker.ok : undefined, docker.apiVersion ? "API " + docker.apiVersion : "");
    if (r.status === 200 && h.status === "ok") setOverall("ready", "Healthy" + (h.replica ? " — " + h.replica : ""));
    else setOverall("error", "Degraded" + (h.replica ? " — " + h.replica : ""));
  }

  function renderPool(r) {
    const p = r.body || {};
    $("raw-pool").textContent = r.body ? JSON.stringify(p, null, 2) : "HTTP " + r.status + " (no JSON body)";
    text("p-idle", p.idle);
    text("p-active", p.active);
    text("p-total", p.total);
    text("p-creating", p.creating);
    text("p-waiting", p.waiting);
    text("p-minmax", p.minPoolSize !== undefined || p.maxPoolSize !== undefined ? (p.minPoolSize ?? "?") + " / " + (p.maxPoolSize ?? "?") : undefined);
    const a = p.acquireMs || {};
    text("p-p50", ms(a.p50));
    text("p-p95", ms(a.p95));
    text("p-p99", ms(a.p99));
    const max = typeof p.maxPoolSize === "number" && p.maxPoolSize > 0 ? p.maxPoolSize : 0;
    const active = typeof p.active === "number" ? p.active : 0;
    text("p-usage", max ? active + " / " + max : p.active);
    const meter = $("p-meter");
    meter.max = max || 1;
    meter.value = max ? Math.min(active, max) : 0;
  }

  async function poll() {
    if (inFlight) return;
    inFlight = true;
    try {
      const [health, pool] = await Promise.allSettled([getJson("/health"), getJson("/stats/pool")]);
      if (health.status === "fulfilled") renderHealth(health.value);
      else { setOverall("error", "Unreachable"); $("raw-health").textContent = String(health.reason); }
      if (pool.status === "fulfilled") renderPool(pool.value);
      else $("raw-pool").textContent = String(pool.reason);
      $("updated").textContent = "Updated " + new Date().toLocaleTimeString();
    } finally {
      inFlight = false;
    }
  }

  function schedule() {
    if (timer) clearInterval(timer);
    timer = paused ? null : setInterval(poll, Number($("interval").value) || 2000);
  }

  $("interval").addEventListener("change", schedule);
  $("refresh").addEventListener("click", poll);
  $("pause").addEventListener("click", () => {
    paused = !paused;
    $("pause").textContent = paused ? "Resume" : "Pause";
    $("pause").setAttribute("aria-pressed", String(paused));
    schedule();
  });

  poll();
  schedule();
})();
