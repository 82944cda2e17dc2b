// The flashsale ops console: plain JavaScript, no build step, no dependency.
// Every datum comes from the admin endpoints, called with the admin token the
// operator signed in with (sessionStorage: this tab only). Text from the server is
// always set as textContent, never parsed as HTML.
"use strict";

const TOKEN_KEY = "flashsale.console.token";
const LIVE_EVERY_MS = 1000;
const LIST_EVERY_MS = 3000;
const $ = (id) => document.getElementById(id);
const views = ["signin", "view-sales", "view-sale", "view-audit", "view-refunds", "view-tickets", "view-deliveries"];
let polling = null; // the one poll running, for the view shown
let previous = null; // the last live sample, for rates
let currentSale = null;

// -- talking to the API --------------------------------------------------------------

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code || "http_" + status;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + sessionStorage.getItem(TOKEN_KEY) };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const error = new ApiError(response.status, data || {});
    if (response.status === 401) signOut(error.message);
    throw error;
  }
  return { data, link: response.headers.get("link") };
}

// -- small DOM helpers ---------------------------------------------------------------

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const numeric = typeof cell === "number" || cell instanceof Num;
    const td = cell instanceof Node ? wrap(cell) : el("td", numeric ? String(cell.value ?? cell) : cell);
    if (numeric) td.className = "num";
    tr.append(td);
  }
  return tr;
}

// A cell to right-align that is not a number itself ("4.2", "–").
class Num {
  constructor(value) {
    this.value = value;
  }
}

function wrap(node) {
  const td = document.createElement("td");
  td.append(node);
  return td;
}

const number = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en"));
const when = (iso) => (iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace("+00:00", "Z") : "–");
const money = (cents, currency) => `${(cents / 100).toFixed(2)} ${currency}`;

function badge(status) {
  return el("span", status, "badge status-" + status);
}

// A bucketed drop whose last tune has not reached every bucket (it stopped midway).
const TUNE_PENDING = "tune pending on some buckets";

// A sale's status badge, and the tune-pending badge when its buckets disagree.
function saleBadges(sale) {
  const cell = el("span", null, "badges");
  cell.append(badge(sale.status));
  if (sale.tune_pending) cell.append(el("span", TUNE_PENDING, "badge tune-pending"));
  return cell;
}

function toast(message, bad) {
  const node = $("toast");
  node.textContent = message;
  node.className = bad ? "bad" : "good";
  node.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (node.hidden = true), 5000);
}

function updated(id) {
  $(id).textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
}

// Ask before anything changes: the dialog shows exactly what will be sent.
function confirmAction(title, details, withNote) {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-body").textContent = details;
  $("confirm-note").hidden = $("confirm-note-label").hidden = !withNote;
  $("confirm-note").value = "";
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => resolve(dialog.returnValue === "ok" ? { note: $("confirm-note").value } : null),
      { once: true },
    );
  });
}

// -- views ---------------------------------------------------------------------------

function show(id) {
  for (const view of views) $(view).hidden = view !== id;
  $("nav").hidden = id === "signin";
}

function stopPolling() {
  if (polling) clearTimeout(polling.handle);
  polling = null;
}

// Run ``work`` now and again ``every`` ms after each answer, until another view starts.
function poll(work, every) {
  stopPolling();
  const me = { handle: null };
  polling = me;
  const tick = async () => {
    try {
      await work();
    } catch (error) {
      if (polling === me && error.status !== 401) toast(`${error.code || "error"}: ${error.message}`, true);
    }
    if (polling === me) me.handle = setTimeout(tick, every);
  };
  tick();
}

async function route() {
  stopPolling();
  if (!sessionStorage.getItem(TOKEN_KEY)) {
    show("signin");
    return;
  }
  const [, page, id] = (location.hash || "#/sales").split("/");
  if (page === "sale" && id) return saleView(decodeURIComponent(id));
  if (page === "audit" && id) return auditView(decodeURIComponent(id));
  if (page === "refunds") return refundsView();
  if (page === "after-sales") return ticketsView();
  if (page === "deliveries") return deliveriesView();
  return salesView();
}

// Sales: every sale, newest first, with its live counters.
async function salesView() {
  show("view-sales");
  let more = null;
  const render = (sales, append) => {
    const body = $("sales-table").tBodies[0];
    if (!append) body.replaceChildren();
    for (const sale of sales) {
      const link = el("a", sale.sale_id);
      link.href = "#/sale/" + encodeURIComponent(sale.sale_id);
      const counter = (n) => new Num(n === null ? "–" : number(n));
      body.append(
        row([link, sale.name, saleBadges(sale), counter(sale.total), counter(sale.available),
          counter(sale.reserved), counter(sale.sold), when(sale.created_at)]),
      );
    }
    $("sales-empty").hidden = body.rows.length > 0;
  };
  const next = (link) => {
    const match = link && /<([^>]+)>;\s*rel="next"/.exec(link);
    more = match ? match[1] : null;
    $("sales-more").hidden = !more;
  };
  $("sales-more").onclick = async () => {
    const page = await api("GET", more);
    render(page.data, true);
    next(page.link);
  };
  poll(async () => {
    const page = await api("GET", "/v1/admin/sales?limit=50");
    render(page.data, false);
    next(page.link);
    updated("sales-updated");
  }, LIST_EVERY_MS);
}

// One sale, live: counters, rates, refusals by code, lag, deliveries; and its tuning.
async function saleView(saleId) {
  show("view-sale");
  previous = null;
  currentSale = null;
  $("sale-title").textContent = saleId;
  $("sale-audit-link").href = "#/audit/" + encodeURIComponent(saleId);
  $("tune-form").reset();
  poll(async () => {
    const live = (await api("GET", `/v1/admin/sales/${encodeURIComponent(saleId)}/live`)).data;
    renderLive(live);
    updated("sale-updated");
  }, LIVE_EVERY_MS);
}

function rate(now, before, key) {
  if (!before) return null;
  const seconds = (Date.parse(now.at) - Date.parse(before.at)) / 1000;
  if (seconds <= 0) return null;
  return Math.max(0, (key(now) - key(before)) / seconds);
}

function renderLive(live) {
  const sale = live.sale;
  const first = currentSale === null;
  currentSale = sale;
  $("sale-title").textContent = `${sale.sale_id} · ${sale.name}`;
  const status = $("sale-status");
  status.textContent = sale.status;
  status.className = "badge status-" + sale.status;
  $("sale-tune-pending").hidden = !sale.tune_pending;
  $("m-available").textContent = number(sale.available);
  $("m-reserved").textContent = number(sale.reserved);
  $("m-sold").textContent = number(sale.sold);
  $("m-total").textContent = number(sale.total);
  $("m-purchases").textContent = number(live.purchases);
  const perSecond = rate(live, previous, (s) => s.purchases);
  $("m-rate").textContent = perSecond === null ? "–" : perSecond.toFixed(1);
  $("m-lag").textContent = number(live.lag);
  $("m-lag-age").textContent = live.lag ? `oldest ${live.lag_oldest_age_s.toFixed(1)} s` : "";
  const waiting = live.deliveries_waiting;
  if (waiting) {
    const total = Object.values(waiting).reduce((a, b) => a + b, 0);
    $("m-deliveries").textContent = number(total);
    $("m-deliveries-detail").textContent = Object.entries(waiting)
      .filter(([, n]) => n > 0)
      .map(([s, n]) => `${s.replace("_", " ")} ${n}`)
      .join(", ");
  } else {
    $("m-deliveries").textContent = "–";
    $("m-deliveries-detail").textContent = "no database";
  }
  const body = $("refusals-table").tBodies[0];
  body.replaceChildren();
  for (const [code, count] of Object.entries(live.refusals)) {
    const r = rate(live, previous, (s) => s.refusals[code] || 0);
    body.append(row([code, count, new Num(r === null ? "–" : r.toFixed(1))]));
  }
  if (!body.rows.length) body.append(row(["none", 0, new Num("–")]));
  const settings = $("sale-settings");
  settings.replaceChildren();
  for (const [name, value] of [
    ["start", when(sale.start_at)], ["end", when(sale.end_at)],
    ["per-buyer limit", sale.per_user_limit], ["per-IP limit", sale.per_ip_limit ?? "off"],
    ["payment timeout", `${sale.payment_timeout_s} s`], ["price", money(sale.price_cents, sale.currency)],
    ["assignment", sale.assignment],
  ]) settings.append(el("dt", name), el("dd", value));
  const closed = sale.status === "closed";
  $("do-pause").disabled = closed || sale.status === "paused";
  $("do-resume").disabled = closed || sale.status !== "paused";
  $("do-close").disabled = closed;
  if (first) {
    $("tune-user-limit").placeholder = sale.per_user_limit;
    $("tune-ip-limit").placeholder = sale.per_ip_limit ?? "off";
    $("tune-timeout").placeholder = sale.payment_timeout_s;
  }
  previous = live;
}

async function tune(body, title) {
  const saleId = currentSale.sale_id;
  const answer = await confirmAction(title, `PATCH /v1/sales/${saleId}\n${JSON.stringify(body, null, 2)}`);
  if (!answer) return;
  try {
    const sale = (await api("PATCH", `/v1/sales/${encodeURIComponent(saleId)}`, body)).data;
    toast(`${sale.sale_id}: ${sale.status}, ${sale.available} available of ${sale.total}`);
    $("tune-form").reset();
  } catch (error) {
    toast(`${error.code}: ${error.message}`, true);
  }
}

function tuneBody() {
  const body = {};
  const value = (id) => $(id).value.trim();
  if (value("tune-end")) body.end_at = new Date(value("tune-end") + "Z").toISOString();
  if (value("tune-user-limit")) body.per_user_limit = Number(value("tune-user-limit"));
  if (value("tune-ip-limit")) body.per_ip_limit = Number(value("tune-ip-limit"));
  if (value("tune-timeout")) body.payment_timeout_s = Number(value("tune-timeout"));
  if (value("add-from") || value("add-to")) {
    body.add_serials = { range: [Number(value("add-from")), Number(value("add-to"))] };
  } else if (value("add-list")) {
    body.add_serials = { list: value("add-list").split(/\s+/).filter(Boolean) };
  }
  return body;
}

// Audit: the store's and the money's invariants, with each violation.
async function auditView(saleId) {
  show("view-audit");
  $("audit-sale").textContent = saleId;
  $("audit-back").href = "#/sale/" + encodeURIComponent(saleId);
  const run = async (deep) => {
    $("audit-verdict").textContent = "auditing…";
    $("audit-verdict").className = "verdict";
    try {
      const path = `/v1/sales/${encodeURIComponent(saleId)}/audit` + (deep ? "" : "?quick=true");
      renderAudit((await api("GET", path)).data);
    } catch (error) {
      $("audit-verdict").textContent = `${error.code}: ${error.message}`;
      $("audit-verdict").className = "verdict bad";
    }
  };
  $("audit-quick").onclick = () => run(false);
  $("audit-deep").onclick = () => run(true);
  await run(false);
}

function renderAudit(report) {
  const verdict = $("audit-verdict");
  verdict.textContent = report.ok
    ? "OK: every invariant holds"
    : `${report.violations.length} violation(s)`;
  verdict.className = "verdict " + (report.ok ? "good" : "bad");
  const facts = $("audit-facts");
  facts.replaceChildren();
  for (const [name, value] of [
    ["kind", report.deep ? "deep (every order)" : "quick (counters and aggregates)"],
    ["orders in PostgreSQL", number(report.persisted)], ["lag", number(report.lag)],
    ["write-behind drained", report.drained ? "yes" : "no"],
  ]) facts.append(el("dt", name), el("dd", value));
  const table = $("violations-table");
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const v of report.violations) {
    body.append(row([el("code", v.code), v.detail, v.count, (v.examples || []).join(", ")]));
  }
  table.hidden = report.violations.length === 0;
}

// A review queue: the items of one status (a select), polled, one row each.
function queueView(name, path, toRow) {
  show(`view-${name}s`);
  const load = async () => {
    const status = $(`${name}-status`).value;
    const items = (await api("GET", path + (status ? "?status=" + status : ""))).data;
    const body = $(`${name}s-table`).tBodies[0];
    body.replaceChildren();
    for (const item of items) body.append(row(toRow(item, load)));
    $(`${name}s-empty`).hidden = items.length > 0;
  };
  $(`${name}-status`).onchange = () => poll(load, LIST_EVERY_MS);
  poll(load, LIST_EVERY_MS);
}

// Refunds waiting for a decision (duplicate and late payments, cancellations).
function refundsView() {
  queueView("refund", "/v1/admin/refunds", (refund, load) => [
    el("code", refund.refund_id), el("code", refund.order_id),
    new Num(money(refund.amount_cents, refund.currency)), refund.method, refund.reason,
    when(refund.created_at), badge(refund.status),
    refund.status === "pending"
      ? decisionButtons("refund", refund.refund_id, (d) => decideRefund(refund, d, load))
      : el("span"),
  ]);
}

// Approve and Reject buttons of one item of a review queue (data-<kind> names it).
function decisionButtons(kind, id, onDecision) {
  const actions = el("span", null, "buttons");
  for (const decision of ["approve", "reject"]) {
    const button = el("button", decision === "approve" ? "Approve" : "Reject");
    button.type = "button";
    button.className = decision === "approve" ? "primary" : "danger";
    button.dataset[kind] = id;
    button.onclick = () => onDecision(decision);
    actions.append(button);
  }
  return actions;
}

// Confirm a decision with its note, send it, say what came of it, reload the queue.
async function review(title, what, path, said, reload) {
  const answer = await confirmAction(title, what, true);
  if (!answer) return;
  try {
    const body = answer.note ? { note: answer.note } : undefined;
    toast(said((await api("POST", path, body)).data));
  } catch (error) {
    toast(`${error.code}: ${error.message}`, true);
  }
  await reload();
}

function decideRefund(refund, decision, reload) {
  const what = decision === "approve"
    ? `Pay back ${money(refund.amount_cents, refund.currency)} (${refund.method}) for order ${refund.order_id}.`
    : `Keep the money of order ${refund.order_id}: no refund.`;
  return review(
    `${decision === "approve" ? "Approve" : "Reject"} refund ${refund.refund_id}`, what,
    `/v1/admin/refunds/${encodeURIComponent(refund.refund_id)}/${decision}`,
    (done) => `refund ${done.refund_id}: ${done.status}` + (done.executed_at ? ", paid back" : ""),
    reload,
  );
}

// After-sales tickets waiting for a decision: the buyer's reason and evidence files.
function ticketsView() {
  queueView("ticket", "/v1/admin/after-sales", (ticket, load) => {
    const files = el("span", null, "files");
    for (const evidence of ticket.evidence) files.append(evidenceLink(ticket, evidence));
    if (!ticket.evidence.length) files.append(el("span", "none", "muted"));
    const outcome = ticket.status === "open"
      ? decisionButtons("ticket", ticket.ticket_id, (d) => decideTicket(ticket, d, load))
      : el("span", [ticket.note, ticket.refund_id && "refund " + ticket.refund_id].filter(Boolean).join(" · "), "muted");
    return [el("code", ticket.ticket_id), el("code", ticket.order_id), ticket.user_id,
      ticket.reason, files, when(ticket.created_at), badge(ticket.status), outcome];
  });
}

// An evidence file needs the admin token, which a plain link cannot send: the first
// click fetches the bytes and saves them under the evidence id (as the server names it).
function evidenceLink(ticket, evidence) {
  const ext = { "image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "application/pdf": "pdf" };
  const link = el("a", `${ext[evidence.content_type] || "file"} · ${number(evidence.bytes)} B`);
  link.href = "#";
  link.title = `${evidence.evidence_id} (sha256 ${evidence.sha256})`;
  link.dataset.evidence = evidence.evidence_id;
  link.download = `${evidence.evidence_id}.${ext[evidence.content_type] || "bin"}`;
  link.onclick = async (event) => {
    if (link.href.startsWith("blob:")) return; // fetched before: the browser saves it
    event.preventDefault();
    const path = `/v1/after-sales/${encodeURIComponent(ticket.ticket_id)}/evidence/${encodeURIComponent(evidence.evidence_id)}`;
    try {
      const response = await fetch(path, { headers: { Authorization: "Bearer " + sessionStorage.getItem(TOKEN_KEY) } });
      if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => ({})));
      link.href = URL.createObjectURL(await response.blob());
      link.click();
    } catch (error) {
      toast(`${error.code || "error"}: ${error.message}`, true);
    }
  };
  return link;
}

function decideTicket(ticket, decision, reload) {
  const what = decision === "approve"
    ? `Refund the payment of order ${ticket.order_id} (once, through the refunds) and close the ticket.`
    : `Keep order ${ticket.order_id} as it is: no refund.`;
  return review(
    `${decision === "approve" ? "Approve" : "Reject"} ticket ${ticket.ticket_id}`, what,
    `/v1/admin/after-sales/${encodeURIComponent(ticket.ticket_id)}/${decision}`,
    (done) => `ticket ${done.ticket_id}: ${done.status}` + (done.refund_id ? `, refund ${done.refund_id}` : ""),
    reload,
  );
}

// Deliveries the deliverer gave up (reverted mints, ...): each can be queued again; the
// deliverer checks the chain before minting, so a token is never minted twice.
function deliveriesView() {
  show("view-deliveries");
  const load = async () => {
    const items = (await api("GET", "/v1/admin/deliveries/given-up")).data;
    const body = $("deliveries-table").tBodies[0];
    body.replaceChildren();
    for (const item of items) {
      const button = el("button", "Redeliver", "primary");
      button.type = "button";
      button.dataset.delivery = item.order_id;
      button.onclick = () => redeliver(item, load);
      body.append(row([el("code", item.order_id), item.sale_id, item.user_id,
        new Num(item.token_id), item.attempts, item.reason || "–", when(item.given_up_at), button]));
    }
    $("deliveries-empty").hidden = items.length > 0;
    updated("deliveries-updated");
  };
  poll(load, LIST_EVERY_MS);
}

async function redeliver(item, reload) {
  const path = `/v1/admin/orders/${encodeURIComponent(item.order_id)}/redeliver`;
  const answer = await confirmAction(
    `Redeliver order ${item.order_id}`,
    `POST ${path}\nMint token ${item.token_id} of ${item.sale_id} to ${item.user_id} again ` +
      `(${item.attempts} transaction(s) signed before: the chain is checked first).`,
  );
  if (!answer) return;
  try {
    const done = (await api("POST", path)).data;
    toast(`order ${done.order_id}: ${done.status}`);
  } catch (error) {
    toast(`${error.code}: ${error.message}`, true);
  }
  await reload();
}

// -- signing in and out ----------------------------------------------------------------

function signOut(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  stopPolling();
  show("signin");
  $("signin-error").textContent = reason || "";
}

async function signIn(event) {
  event.preventDefault();
  const token = $("token").value.trim().replace(/^Bearer\s+/i, "");
  sessionStorage.setItem(TOKEN_KEY, token);
  try {
    await api("GET", "/v1/admin/sales?limit=1");
  } catch (error) {
    sessionStorage.removeItem(TOKEN_KEY);
    $("signin-error").textContent =
      error.status === 403 ? "This token is not an admin's." : `${error.code}: ${error.message}`;
    show("signin");
    return;
  }
  $("token").value = "";
  $("signin-error").textContent = "";
  if (!location.hash || location.hash === "#/") location.hash = "#/sales";
  else route();
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => signOut("Signed out."));
  $("do-pause").onclick = () => tune({ status: "paused" }, "Pause the sale");
  $("do-resume").onclick = () => tune({ status: "open" }, "Resume the sale");
  $("do-close").onclick = () => tune({ status: "closed" }, "Close the sale for good");
  $("tune-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const body = tuneBody();
    if (Object.keys(body).length === 0) toast("Nothing to change.", true);
    else tune(body, "Tune the sale");
  });
  window.addEventListener("hashchange", route);
  route();
});
