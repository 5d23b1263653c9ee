/**
 * The event browser's HTML page (`GET /` of `EventBrowserApi`): one self-contained document, inline CSS
 * and JavaScript, no build step and no external resource. It lists the global log page by page (filters:
 * categories, types, time range), shows a stream's events when its id is clicked, and lists the runners.
 *
 * **Gotchas**: event content is untrusted; the script only ever puts it in the page with `textContent`
 * (never `innerHTML`), and {@link headers} carry a Content-Security-Policy that allows the inline script
 * and requests to the page's own origin only. The API's URLs are resolved relative to the page, so the
 * API can be mounted under a path prefix.
 */

/** Security headers of the page: a strict CSP (inline script and style, same-origin fetches only). */
export const headers: Readonly<Record<string, string>> = {
  "content-security-policy":
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store"
}

const style = `
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin-top: 1.5em; }
form { display: flex; gap: .6em; flex-wrap: wrap; align-items: end; margin-bottom: 1em; }
label { display: flex; flex-direction: column; font-size: .85em; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: .3em .5em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { font-variant-numeric: tabular-nums; }
button.link { background: none; border: none; color: #0645ad; cursor: pointer; padding: 0; font: inherit; }
pre { margin: 0; white-space: pre-wrap; word-break: break-all; max-width: 60em; }
#status { color: #a00; min-height: 1.2em; } .hidden { display: none; }
`

// plain ES2017 without template literals, so it can sit in this module's template string
const script = `
"use strict";
var base = location.pathname.endsWith("/") ? location.pathname : location.pathname + "/";
var $ = function (id) { return document.getElementById(id); };
var state = { after: null, next: null, stream: null, fromVersion: 1, streamNext: null };

function el(tag, text, cls) {
  var e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function say(text) { $("status").textContent = text || ""; }
function list(value) {
  return value.split(",").map(function (s) { return s.trim(); }).filter(function (s) { return s.length > 0; });
}
function getJson(path, params) {
  var query = params.toString();
  return fetch(base + path + (query ? "?" + query : ""), { headers: { accept: "application/json" } })
    .then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) throw new Error((body && body.message) || ("HTTP " + response.status));
        return body;
      });
    });
}
function eventRow(event) {
  var tr = el("tr");
  tr.appendChild(el("td", event.transaction + ":" + event.position, "num"));
  tr.appendChild(el("td", event.recordedAt));
  var stream = el("td");
  var link = el("button", event.streamId, "link");
  link.type = "button";
  link.addEventListener("click", function () { openStream(event.streamId, 1); });
  stream.appendChild(link);
  tr.appendChild(stream);
  tr.appendChild(el("td", event.version, "num"));
  tr.appendChild(el("td", event.type + (event.schemaVersion > 1 ? " v" + event.schemaVersion : "")));
  var details = el("details");
  details.appendChild(el("summary", "data"));
  details.appendChild(el("pre", JSON.stringify({ data: event.data, metadata: event.metadata }, null, 2)));
  var cell = el("td");
  cell.appendChild(details);
  tr.appendChild(cell);
  return tr;
}
function fill(tbody, events) {
  tbody.replaceChildren();
  if (events.length === 0) {
    var tr = el("tr");
    var td = el("td", "no events");
    td.colSpan = 6;
    tr.appendChild(td);
    tbody.appendChild(tr);
  }
  events.forEach(function (event) { tbody.appendChild(eventRow(event)); });
}
function filters() {
  var params = new URLSearchParams();
  list($("category").value).forEach(function (c) { params.append("category", c); });
  list($("type").value).forEach(function (t) { params.append("type", t); });
  if ($("from").value) params.set("from", new Date($("from").value).toISOString());
  if ($("to").value) params.set("to", new Date($("to").value).toISOString());
  params.set("limit", $("limit").value || "50");
  return params;
}
function loadEvents(after) {
  var params = filters();
  if (after) params.set("after", after);
  say("loading...");
  return getJson("events", params).then(function (page) {
    state.after = after;
    state.next = page.next;
    fill($("events"), page.events);
    $("next").disabled = page.next === null;
    $("first").disabled = after === null;
    $("page").textContent = page.events.length + " event(s)" + (page.next === null ? ", end of the log" : "");
    say("");
  }).catch(function (error) { say(error.message); });
}
function openStream(streamId, fromVersion) {
  var params = new URLSearchParams();
  params.set("fromVersion", String(fromVersion));
  params.set("limit", $("limit").value || "50");
  say("loading...");
  return getJson("streams/" + encodeURIComponent(streamId), params).then(function (page) {
    state.stream = streamId;
    state.streamNext = page.next;
    $("streamTitle").textContent = "Stream " + streamId;
    fill($("streamEvents"), page.events);
    $("streamNextButton").disabled = page.next === null;
    $("streamView").classList.remove("hidden");
    $("streamView").scrollIntoView();
    say("");
  }).catch(function (error) { say(error.message); });
}
function progressText(p) {
  if (p === null) return "";
  var percent = p.total > 0 ? Math.floor(100 * p.done / p.total) : 100;
  return "~" + percent + "% (" + p.done + "/" + p.total + "), " + p.rate + "/s" +
    (p.etaSeconds === null ? "" : ", " + p.etaSeconds + " s left");
}
function loadRunners() {
  return getJson("projections", new URLSearchParams()).then(function (body) {
    var tbody = $("runners");
    tbody.replaceChildren();
    body.projections.forEach(function (p) {
      var tr = el("tr");
      tr.appendChild(el("td", p.name + " v" + p.version));
      tr.appendChild(el("td", p.state));
      tr.appendChild(el("td", p.owned.length + "/" + p.partitions, "num"));
      tr.appendChild(el("td", p.lag.events + " events, " + p.lag.seconds.toFixed(1) + " s", "num"));
      tr.appendChild(el("td", progressText(p.progress), "num"));
      tr.appendChild(el("td", p.lastError === null ? "" : p.lastError));
      tbody.appendChild(tr);
    });
  }).catch(function (error) { say(error.message); });
}
$("filters").addEventListener("submit", function (e) { e.preventDefault(); loadEvents(null); });
$("next").addEventListener("click", function () { loadEvents(state.next); });
$("first").addEventListener("click", function () { loadEvents(null); });
$("streamNextButton").addEventListener("click", function () { openStream(state.stream, state.streamNext); });
$("closeStream").addEventListener("click", function () { $("streamView").classList.add("hidden"); });
$("refreshRunners").addEventListener("click", loadRunners);
loadEvents(null);
loadRunners();
`

const eventTable = (id: string) =>
  `<table><thead><tr><th>transaction:position</th><th>recorded at</th><th>stream</th><th>version</th>` +
  `<th>type</th><th>content</th></tr></thead><tbody id="${id}"></tbody></table>`

/** The page. */
export const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Event browser</title>
<style>${style}</style>
</head>
<body>
<h1>Event browser</h1>
<div id="status" role="status"></div>
<form id="filters">
  <label>categories (comma separated)<input id="category" autocomplete="off"></label>
  <label>types (comma separated)<input id="type" autocomplete="off"></label>
  <label>recorded from<input id="from" type="datetime-local"></label>
  <label>recorded before<input id="to" type="datetime-local"></label>
  <label>page size<input id="limit" type="number" min="1" max="1000" value="50"></label>
  <button type="submit">Show</button>
</form>
<section id="streamView" class="hidden">
  <h2 id="streamTitle"></h2>
  <p><button id="streamNextButton" type="button">Next versions</button>
  <button id="closeStream" type="button">Close</button></p>
  ${eventTable("streamEvents")}
</section>
<h2>Events</h2>
<p><button id="first" type="button" disabled>First page</button>
<button id="next" type="button" disabled>Next page</button> <span id="page"></span></p>
${eventTable("events")}
<h2>Runners <button id="refreshRunners" type="button">Refresh</button></h2>
<table><thead><tr><th>name</th><th>state</th><th>partitions</th><th>lag</th><th>progress</th><th>last error</th></tr></thead>
<tbody id="runners"></tbody></table>
<script>${script}</script>
</body>
</html>
`
