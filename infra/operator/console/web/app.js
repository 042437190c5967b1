// byoc console: the fleet (#/) and a deployment (#/d/<id>). Every call goes to the console's
// own /v1/ proxy, which signs it with the operator's AWS credentials; the token in the page's
// meta tag proves the call comes from this page.
"use strict";
const token = document.querySelector('meta[name="byoc-token"]').content;
const view = document.getElementById("view");
const errorBox = document.getElementById("error");
const noticeBox = document.getElementById("notice");
const refreshLabel = document.getElementById("refresh");
let timer = null;
let following = []; // operations started from this page and still running

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}
function badge(s) { return `<span class="badge ${esc(s)}">${esc(s || "unknown")}</span>`; }
function showError(msg) { errorBox.textContent = msg; errorBox.hidden = !msg; }
function notice(msg) { noticeBox.textContent = msg; noticeBox.hidden = !msg; }

// api calls the operator API; a refusal or failure is thrown with the API's own message.
async function api(method, path, body) {
  const headers = {"X-Byoc-Console": token};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["Idempotency-Key"] = crypto.randomUUID();
  // A call that hangs is given up after 30 s, so the page keeps refreshing.
  const resp = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(30000)});
  let doc = {};
  try { doc = await resp.json(); } catch (e) { doc = {error: resp.statusText}; }
  if (!resp.ok) throw new Error(`${resp.status}: ${doc.error || doc.message || resp.statusText}`);
  return doc.result;
}

function schedule(busy) {
  clearTimeout(timer);
  const every = busy || following.length ? 3000 : 15000;
  refreshLabel.textContent = `refreshing every ${every / 1000} s`;
  timer = setTimeout(render, every);
}

// renders counts the renders started: one that a newer render overtook (a click while the
// timer's was waiting on the API) draws nothing and schedules nothing.
let renders = 0;

async function render() {
  const route = location.hash.replace(/^#/, "") || "/";
  const fresh = (n => () => n === renders)(++renders);
  try {
    let busy = false;
    if (route.startsWith("/d/")) busy = await deploymentPage(decodeURIComponent(route.slice(3)), fresh);
    else busy = await fleetPage(fresh);
    if (!fresh()) return;
    await followOperations();
    if (fresh()) schedule(busy);
  } catch (e) {
    if (!fresh()) return;
    showError(e.message);
    schedule(false);
  }
}

const statuses = ["invited", "provisioning", "ready", "updating", "failed", "deleting", "deleted"];
let fleetFilter = "";
let fleetTokens = [""]; // the nextToken of each page read so far; the last is the page shown

// fleetPage shows a page of the fleet. The counts by status are the whole fleet's
// (GET /v1/fleet); the health counts are the page's, as the table is.
async function fleetPage(fresh) {
  const q = new URLSearchParams({limit: "100"});
  if (fleetFilter) q.set("status", fleetFilter);
  const pageNo = fleetTokens.length;
  const token = fleetTokens[pageNo - 1];
  if (token) q.set("nextToken", token);
  const [page, fleet] = await Promise.all([api("GET", "/v1/deployments?" + q), api("GET", "/v1/fleet")]);
  if (!fresh()) return false;
  const health = {};
  for (const d of page.deployments) health[d.health] = (health[d.health] || 0) + 1;
  view.innerHTML = `
    <h1>Fleet <span class="muted">${fleet.total} deployment${fleet.total === 1 ? "" : "s"}</span></h1>
    <div class="counts" id="counts">${statuses.filter(s => fleet.byStatus[s]).map(s => `<span class="count" data-status="${s}"><b>${fleet.byStatus[s]}</b>${s}</span>`).join("")}
      ${Object.keys(health).map(h => `<span class="count" data-health="${esc(h)}"><b>${health[h]}</b>health ${esc(h)}${pageNo > 1 || page.nextToken ? " (this page)" : ""}</span>`).join("")}</div>
    <label>Status <select id="filter"><option value="">all</option>${statuses.map(s => `<option ${s === fleetFilter ? "selected" : ""}>${s}</option>`).join("")}</select></label>
    <span id="pages">${pageNo > 1 ? `<button id="previous">Previous page</button>` : ""}
      ${pageNo > 1 || page.nextToken ? `<span class="muted">page ${pageNo}</span>` : ""}
      ${page.nextToken ? `<button id="next">Next page</button>` : ""}</span>
    <table id="fleet"><thead><tr><th>Deployment</th><th>Status</th><th>Health</th><th>Customer</th><th>Account</th><th>Region</th><th>Created</th></tr></thead>
    <tbody>${page.deployments.map(d => `<tr data-id="${esc(d.id)}">
      <td><a href="#/d/${encodeURIComponent(d.id)}">${esc(d.id)}</a></td><td>${badge(d.status)}</td><td>${badge(d.health)}</td>
      <td>${esc(d.settings.customerId)}</td><td>${esc(d.settings.accountId)}</td><td>${esc(d.settings.region)}</td>
      <td>${esc(new Date(d.createdAt).toISOString().slice(0, 16).replace("T", " "))}</td></tr>`).join("")}</tbody></table>`;
  document.getElementById("filter").onchange = e => { fleetFilter = e.target.value; fleetTokens = [""]; render(); };
  const next = document.getElementById("next");
  // Each button acts once: the page it asks for replaces this one.
  if (next) next.onclick = () => { next.disabled = true; fleetTokens.push(page.nextToken); render(); };
  const previous = document.getElementById("previous");
  if (previous) previous.onclick = () => { previous.disabled = true; fleetTokens.pop(); render(); };
  showError("");
  return page.deployments.some(d => ["provisioning", "updating", "deleting"].includes(d.status));
}

async function deploymentPage(id, fresh) {
  const d = await api("GET", `/v1/deployments/${encodeURIComponent(id)}`);
  const [svcs, audit] = await Promise.all([
    d.status === "deleted" ? {services: []} : api("GET", `/v1/deployments/${encodeURIComponent(id)}/services`),
    api("GET", `/v1/deployments/${encodeURIComponent(id)}/audit?limit=20`),
  ]);
  if (!fresh()) return false;
  const m = d.maintenance || {};
  const peerings = (d.network && d.network.peerings) || [];
  view.innerHTML = `
    <p><a href="#/">← Fleet</a></p>
    <h1>Deployment ${esc(d.id)} ${badge(d.status)} ${badge(d.health.health)}</h1>
    <dl id="settings">
      <dt>Customer</dt><dd>${esc(d.settings.customerId)}</dd>
      <dt>Account / region</dt><dd>${esc(d.settings.accountId)} / ${esc(d.settings.region)}</dd>
      <dt>VPC CIDR</dt><dd>${esc(d.settings.vpcCidr)}</dd>
      <dt>Health</dt><dd>${esc(d.health.reason || "no report yet")}</dd>
      <dt>Versions</dt><dd>${Object.entries(d.stackVersions || {}).filter(([, v]) => v).map(([k, v]) => `${esc(k)} ${esc(v)}`).join(", ") || "-"}</dd>
      <dt>Maintenance window</dt><dd id="window">${m.window ? esc(JSON.stringify(m.window)) : "-"} ${m.channel ? "(" + esc(m.channel) + ")" : ""}</dd>
      ${d.failure ? `<dt>Failure</dt><dd>${esc(d.failure.status)} ${esc(d.failure.resource)} ${esc(d.failure.reason)}</dd>` : ""}
      ${d.teardown && d.teardown.retainedBucket ? `<dt>Retained bucket</dt><dd>${esc(d.teardown.retainedBucket)}</dd>` : ""}
    </dl>
    <h2>Services</h2>
    <table id="services"><thead><tr><th>Service</th><th>Status</th><th>Health</th><th>ClickHouse</th><th>Replicas</th><th>Endpoints</th><th>Actions</th></tr></thead>
    <tbody>${svcs.services.map(s => `<tr data-service="${esc(s.id)}">
      <td>${esc(s.id)}</td><td>${badge(s.status)}</td><td>${badge(s.health)} <span class="muted">${esc(s.healthReason)}</span></td>
      <td>${esc(s.versions.clickhouse)}</td><td>${s.replicas.ready}/${s.replicas.desired}</td>
      <td>${esc(s.endpoints.public || "")}${s.endpoints.private ? "<br>" + esc(s.endpoints.private) : ""}</td>
      <td>${["start", "stop", "idle", "terminate"].map(c => `<button data-command="${c}" class="${c === "terminate" ? "danger" : ""}">${c}</button>`).join("")}</td></tr>`).join("")}</tbody></table>
    <h2>Peerings</h2>
    ${peerings.length ? `<table id="peerings"><thead><tr><th>Peer VPC</th><th>Name</th><th>State</th><th>CIDRs</th></tr></thead><tbody>${peerings.map(p =>
      `<tr><td>${esc(p.peerVpcId)}</td><td>${esc(p.name)}</td><td>${badge(p.state)}</td><td>${esc((p.peerCidrs || []).join(", "))}</td></tr>`).join("")}</tbody></table>` : `<p class="muted">none</p>`}
    <h2>Actions</h2>
    <p><button id="retry">retry provisioning</button> <button id="delete" class="danger">delete deployment</button></p>
    <h2>Audit timeline</h2>
    <table id="audit"><thead><tr><th>At</th><th>Actor</th><th>Action</th><th>Status</th><th>Detail</th></tr></thead>
    <tbody>${audit.entries.map(e => `<tr><td>${esc(e.at.slice(0, 19).replace("T", " "))}</td><td>${esc(e.actor)}</td><td>${esc(e.action)}</td>
      <td>${e.to ? esc(e.from) + " → " + esc(e.to) : ""}</td><td>${esc(e.detail)}</td></tr>`).join("")}</tbody></table>`;
  for (const b of view.querySelectorAll("button[data-command]")) {
    const service = b.closest("tr").dataset.service;
    b.onclick = () => act(`${b.dataset.command} service ${service} of ${d.id}?`,
      () => api("PATCH", `/v1/deployments/${encodeURIComponent(d.id)}/services/${encodeURIComponent(service)}/state`, {command: b.dataset.command}));
  }
  document.getElementById("retry").onclick = () => act(`Retry the provisioning of ${d.id}?`,
    () => api("POST", `/v1/deployments/${encodeURIComponent(d.id)}/retry`, {}));
  document.getElementById("delete").onclick = () => act(`Delete deployment ${d.id}? Its stacks are removed; its bucket is kept.`,
    () => api("DELETE", `/v1/deployments/${encodeURIComponent(d.id)}`, {}));
  showError("");
  return ["provisioning", "updating", "deleting"].includes(d.status);
}

// act asks for confirmation, runs an action and follows the workflow it started.
async function act(question, run) {
  if (!confirm(question)) return;
  try {
    const op = await run();
    showError("");
    if (op && op.name) {
      following.push(op);
      notice(`${op.workflow} ${op.name}: ${op.status}`);
    }
    render();
  } catch (e) {
    showError(e.message);
  }
}

async function followOperations() {
  const still = [];
  for (const op of following) {
    const cur = await api("GET", `/v1/operations/${op.workflow}/${encodeURIComponent(op.name)}`);
    notice(`${cur.workflow} ${cur.name}: ${cur.status}${cur.error ? " (" + cur.error + ")" : ""}`);
    if (cur.status === "RUNNING") still.push(op);
  }
  following = still;
}

window.addEventListener("hashchange", render);
render();
