// The event store console: plain JavaScript (ES2017), no framework, no build step. Event content is
// untrusted: it only ever reaches the page through textContent and attributes, never as HTML.
;(function () {
  "use strict"
  var base = location.pathname.replace(/[^/]*$/, "")
  var svgNs = "http://www.w3.org/2000/svg"
  var $ = function (id) {
    return document.getElementById(id)
  }
  var info = { sagas: [], projections: [], deciders: [], admin: false, sampleIntervalSeconds: 2 }
  var state = {
    after: null,
    next: null,
    stream: null,
    streamNext: null,
    live: null,
    liveLast: null,
    steps: [],
    step: 0,
    sagaAfter: null,
    sagaNext: null,
    timer: null,
    confirming: null
  }

  function el(tag, text, cls) {
    var e = document.createElement(tag)
    if (text !== undefined && text !== null) e.textContent = String(text)
    if (cls) e.className = cls
    return e
  }
  function button(text, onClick, label) {
    var b = el("button", text)
    b.type = "button"
    if (label) b.setAttribute("aria-label", label)
    b.addEventListener("click", onClick)
    return b
  }
  function say(text) {
    $("status").textContent = text || ""
  }
  function list(value) {
    return value
      .split(",")
      .map(function (s) {
        return s.trim()
      })
      .filter(function (s) {
        return s.length > 0
      })
  }
  function request(method, path, params, admin) {
    var query = params ? params.toString() : ""
    var headers = { accept: "application/json" }
    if (admin) headers.authorization = "Bearer " + $("adminToken").value
    return fetch(base + path + (query ? "?" + query : ""), { method: method, headers: headers }).then(
      function (response) {
        return response.json().then(
          function (body) {
            if (!response.ok) throw new Error((body && body.message) || "HTTP " + response.status)
            return body
          },
          function () {
            throw new Error("HTTP " + response.status)
          }
        )
      }
    )
  }
  function getJson(path, params) {
    return request("GET", path, params, false)
  }
  function failed(error) {
    say(error.message)
  }

  // ---------------------------------------------------------------------------------------------
  // events
  // ---------------------------------------------------------------------------------------------

  function eventRow(event) {
    var tr = el("tr")
    tr.appendChild(el("td", event.transaction + ":" + event.position, "num"))
    tr.appendChild(el("td", event.recordedAt))
    var stream = el("td")
    stream.appendChild(
      button(event.streamId, function () {
        openStream(event.streamId, 1)
      })
    ).className = "link"
    tr.appendChild(stream)
    tr.appendChild(el("td", event.version, "num"))
    tr.appendChild(el("td", event.type + (event.schemaVersion > 1 ? " v" + event.schemaVersion : "")))
    var details = el("details")
    details.appendChild(el("summary", "data"))
    details.appendChild(el("pre", JSON.stringify({ data: event.data, metadata: event.metadata }, null, 2)))
    var cell = el("td")
    cell.appendChild(details)
    tr.appendChild(cell)
    return tr
  }
  function emptyRow(tbody, columns, text) {
    var tr = el("tr")
    var td = el("td", text)
    td.colSpan = columns
    tr.appendChild(td)
    tbody.appendChild(tr)
  }
  function fill(tbody, events) {
    tbody.replaceChildren()
    if (events.length === 0) emptyRow(tbody, 6, "no events")
    events.forEach(function (event) {
      tbody.appendChild(eventRow(event))
    })
  }
  function filterParams() {
    var params = new URLSearchParams()
    list($("category").value).forEach(function (c) {
      params.append("category", c)
    })
    list($("type").value).forEach(function (t) {
      params.append("type", t)
    })
    return params
  }
  function loadEvents(after) {
    var params = filterParams()
    if ($("from").value) params.set("from", new Date($("from").value).toISOString())
    if ($("to").value) params.set("to", new Date($("to").value).toISOString())
    params.set("limit", $("limit").value || "50")
    if (after) params.set("after", after)
    return getJson("events", params)
      .then(function (page) {
        state.after = after
        state.next = page.next
        fill($("events"), page.events)
        $("next").disabled = page.next === null
        $("first").disabled = after === null
        $("page").textContent = page.events.length + " event(s)" + (page.next === null ? ", end of the log" : "")
      })
      .catch(failed)
  }

  // the live log: Server-Sent Events; the browser resumes after a reconnect with the last event's id
  function follow() {
    var params = filterParams()
    if (state.liveLast) params.set("after", state.liveLast)
    var query = params.toString()
    var source = new EventSource(base + "events/live" + (query ? "?" + query : ""))
    state.live = source
    $("liveState").textContent = "connecting"
    source.onopen = function () {
      $("liveState").textContent = "following"
    }
    source.onerror = function () {
      if (state.live === source) $("liveState").textContent = "reconnecting"
    }
    source.addEventListener("event", function (message) {
      var event = JSON.parse(message.data)
      state.liveLast = message.lastEventId
      var tbody = $("liveEvents")
      tbody.insertBefore(eventRow(event), tbody.firstChild)
      while (tbody.childNodes.length > 200) tbody.removeChild(tbody.lastChild)
    })
  }
  function toggleLive() {
    var on = state.live === null
    if (on) follow()
    else {
      state.live.close()
      state.live = null
      $("liveState").textContent = "not following"
    }
    $("followLive").setAttribute("aria-pressed", String(on))
    $("followLive").textContent = on ? "Stop following" : "Follow the log"
  }

  // ---------------------------------------------------------------------------------------------
  // stream and time travel
  // ---------------------------------------------------------------------------------------------

  function openStream(streamId, fromVersion) {
    var params = new URLSearchParams()
    params.set("fromVersion", String(fromVersion))
    params.set("limit", $("limit").value || "50")
    $("streamId").value = streamId
    return getJson("streams/" + encodeURIComponent(streamId), params)
      .then(function (page) {
        state.stream = streamId
        state.streamNext = page.next
        $("streamTitle").textContent = "Stream " + streamId
        fill($("streamEvents"), page.events)
        $("streamNextButton").disabled = page.next === null
        $("streamView").classList.remove("hidden")
        $("stream").scrollIntoView()
        return loadStates(streamId)
      })
      .catch(failed)
  }
  // stream operations (admin): each behind a confirmation step
  function streamAction(action, question, query) {
    var streamId = state.stream
    var box = $("streamAdmin")
    confirmStep(box, question, function () {
      say(action + " " + streamId + "...")
      var path = "admin/streams/" + encodeURIComponent(streamId) + "/" + action
      request("POST", path, query ? new URLSearchParams(query) : null, true)
        .then(function (done) {
          if (action === "delete" || action === "hard-delete") {
            $("streamEvents").replaceChildren()
            $("timeTravel").classList.add("hidden")
            say(
              action === "delete"
                ? streamId + " deleted: its events are kept, Undelete restores it"
                : streamId + " deleted for good" + (done.snapshots ? ", with " + done.snapshots + " snapshots" : "")
            )
            return
          }
          return openStream(streamId, 1).then(function () {
            say(
              action === "truncate"
                ? done.removed + " events of " + streamId + " removed"
                : action === "archive"
                  ? done.removed + " events of " + streamId + " archived"
                  : streamId + " undeleted"
            )
          })
        })
        .catch(failed)
    })
  }
  function loadStates(streamId) {
    var category = streamId.split("-")[0]
    var known = info.deciders.indexOf(category) >= 0
    $("timeTravel").classList.toggle("hidden", !known)
    $("noDecider").classList.toggle("hidden", known)
    if (!known) return Promise.resolve()
    var params = new URLSearchParams()
    params.set("limit", "1000")
    return getJson("streams/" + encodeURIComponent(streamId) + "/states", params).then(function (body) {
      state.steps = [{ version: 0, type: "initial state", state: body.initialState, error: null }].concat(
        body.steps.map(function (s) {
          return { version: s.event.version, type: s.event.type, state: s.state, error: s.error }
        })
      )
      showStep(state.steps.length - 1)
    })
  }
  function showStep(index) {
    var steps = state.steps
    state.step = Math.max(0, Math.min(steps.length - 1, index))
    var step = steps[state.step]
    var last = steps[steps.length - 1].version
    $("stateVersion").textContent =
      (step.version === 0 ? "before version 1" : "after version " + step.version + " of " + last + ": " + step.type) +
      (step.error ? " (" + step.error + ")" : "")
    $("stateJson").textContent = JSON.stringify(step.state, null, 2)
    $("prevState").disabled = $("firstState").disabled = state.step === 0
    $("nextState").disabled = $("lastState").disabled = state.step === steps.length - 1
  }

  // ---------------------------------------------------------------------------------------------
  // runners and charts
  // ---------------------------------------------------------------------------------------------

  function progressText(p) {
    if (p === null) return ""
    var percent = p.total > 0 ? Math.floor((100 * p.done) / p.total) : 100
    return (
      "~" +
      percent +
      "% (" +
      p.done +
      "/" +
      p.total +
      "), " +
      p.rate.toFixed(0) +
      "/s" +
      (p.etaSeconds === null ? "" : ", " + Math.ceil(p.etaSeconds) + " s left")
    )
  }
  function partitionsText(p) {
    var owned = p.owned.map(function (o) {
      return (
        "#" +
        o.partition +
        " " +
        o.state +
        " at " +
        o.checkpoint.transaction +
        ":" +
        o.checkpoint.position +
        (o.heldBack ? ", held back by " + (o.heldBack.blocker || "an open transaction") : "")
      )
    })
    return p.owned.length + "/" + p.partitions + " by " + p.worker + (owned.length ? ": " + owned.join("; ") : "")
  }
  // a confirmation step in place of the action's button; the periodic refresh leaves its table alone
  function confirmStep(cell, question, action) {
    var original = Array.prototype.slice.call(cell.childNodes)
    var box = el("span", null, "confirm")
    box.appendChild(el("span", question))
    state.confirming = cell
    var restore = function () {
      state.confirming = null
      cell.replaceChildren.apply(cell, original)
    }
    var yes = button("Confirm", function () {
      restore()
      action()
    })
    box.appendChild(yes)
    box.appendChild(button("Cancel", restore))
    cell.replaceChildren(box)
    yes.focus()
  }
  function rebuild(name) {
    say("rebuilding " + name + "...")
    return request("POST", "admin/projections/" + encodeURIComponent(name) + "/rebuild", null, true)
      .then(function () {
        say("rebuild of " + name + " started: its runners catch up again")
        return loadRunners()
      })
      .catch(failed)
  }
  // a periodic refresh keeps a table whose row is being confirmed or has the keyboard focus
  function busy(tbody) {
    return (state.confirming !== null && tbody.contains(state.confirming)) || tbody.contains(document.activeElement)
  }
  function loadRunners(periodic) {
    return getJson("projections")
      .then(function (body) {
        var tbody = $("runnerRows")
        if (periodic === true && busy(tbody)) return
        tbody.replaceChildren()
        if (body.projections.length === 0) emptyRow(tbody, 7, "no runners in this process")
        body.projections.forEach(function (p) {
          var tr = el("tr")
          tr.appendChild(el("td", p.name + " v" + p.version))
          tr.appendChild(el("td", p.state, "state-" + p.state))
          tr.appendChild(el("td", partitionsText(p)))
          tr.appendChild(el("td", p.lag.events + " events, " + p.lag.seconds.toFixed(1) + " s", "num"))
          tr.appendChild(el("td", progressText(p.progress), "num"))
          tr.appendChild(el("td", p.lastError === null ? "" : p.lastError))
          var actions = el("td")
          if (info.admin && info.projections.indexOf(p.name) >= 0) {
            actions.appendChild(
              button(
                "Rebuild",
                function () {
                  confirmStep(actions, "Rebuild " + p.name + " from the start?", function () {
                    rebuild(p.name)
                  })
                },
                "Rebuild " + p.name + " v" + p.version
              )
            )
          }
          tr.appendChild(actions)
          tbody.appendChild(tr)
        })
      })
      .catch(failed)
  }
  function chart(svg, summary, samples, value, unit) {
    svg.replaceChildren()
    summary.replaceChildren()
    var width = 600
    var height = 180
    var left = 50
    var top = 10
    var bottom = 20
    var series = {}
    var keys = []
    samples.forEach(function (sample, i) {
      sample.runners.forEach(function (r) {
        var key = r.name + " v" + r.version + " (" + r.worker + ")"
        if (!series[key]) {
          series[key] = []
          keys.push(key)
        }
        series[key].push({ i: i, v: value(r) })
      })
    })
    var max = 0
    keys.forEach(function (k) {
      series[k].forEach(function (p) {
        if (p.v > max) max = p.v
      })
    })
    var scale = max > 0 ? max : 1
    var span = Math.max(1, samples.length - 1)
    var axis = document.createElementNS(svgNs, "path")
    axis.setAttribute("class", "axis")
    axis.setAttribute("d", "M" + left + " " + top + " V" + (height - bottom) + " H" + width)
    svg.appendChild(axis)
    var label = function (x, y, text, anchor) {
      var t = document.createElementNS(svgNs, "text")
      t.setAttribute("x", String(x))
      t.setAttribute("y", String(y))
      if (anchor) t.setAttribute("text-anchor", anchor)
      t.textContent = text
      svg.appendChild(t)
    }
    label(left - 4, top + 10, formatNumber(max), "end")
    label(left - 4, height - bottom, "0", "end")
    var seconds = Math.round(span * info.sampleIntervalSeconds)
    label(left, height - 4, "-" + seconds + " s")
    label(width, height - 4, "now", "end")
    keys.forEach(function (k, n) {
      var points = series[k].map(function (p) {
        var x = left + ((width - left) * p.i) / span
        var y = height - bottom - ((height - bottom - top) * p.v) / scale
        return x.toFixed(1) + "," + y.toFixed(1)
      })
      var line = document.createElementNS(svgNs, "polyline")
      line.setAttribute("class", "series-" + (n % 5))
      line.setAttribute("points", points.join(" "))
      line.setAttribute("data-runner", k)
      svg.appendChild(line)
      var values = series[k]
      var now = values[values.length - 1].v
      var peak = Math.max.apply(
        null,
        values.map(function (p) {
          return p.v
        })
      )
      var item = el("li")
      var swatch = document.createElementNS(svgNs, "svg")
      swatch.setAttribute("class", "swatch chart")
      swatch.setAttribute("viewBox", "0 0 30 6")
      swatch.setAttribute("aria-hidden", "true")
      var sample = document.createElementNS(svgNs, "polyline")
      sample.setAttribute("class", "series-" + (n % 5))
      sample.setAttribute("points", "0,3 30,3")
      swatch.appendChild(sample)
      item.appendChild(swatch)
      item.appendChild(
        document.createTextNode(
          k + ": now " + formatNumber(now) + " " + unit + ", peak " + formatNumber(peak) + " " + unit
        )
      )
      item.setAttribute("data-runner", k)
      item.setAttribute("data-peak", String(peak))
      item.setAttribute("data-now", String(now))
      summary.appendChild(item)
    })
    if (keys.length === 0) summary.appendChild(el("li", "no samples yet"))
  }
  function formatNumber(n) {
    return n >= 100 ? String(Math.round(n)) : String(Math.round(n * 10) / 10)
  }
  function loadSamples() {
    return getJson("console/samples")
      .then(function (body) {
        chart(
          $("lagChart"),
          $("lagSummary"),
          body.samples,
          function (r) {
            return r.lagEvents
          },
          "events"
        )
        chart(
          $("throughputChart"),
          $("throughputSummary"),
          body.samples,
          function (r) {
            return r.throughput
          },
          "events/s"
        )
      })
      .catch(failed)
  }

  // ---------------------------------------------------------------------------------------------
  // dead letters
  // ---------------------------------------------------------------------------------------------

  function letterAction(letter, action) {
    var path = "admin/dead-letters/" + encodeURIComponent(letter.projection.name) + "/" + letter.id + "/" + action
    return request("POST", path, null, true)
      .then(function () {
        say(
          action === "retry"
            ? "dead letter " + letter.id + ": retry requested"
            : "dead letter " + letter.id + " discarded"
        )
        return loadDeadLetters()
      })
      .catch(failed)
  }
  // an error's first line, the rest (a stack trace) folded away
  function errorCell(error) {
    var lines = error.split("\n")
    var cell = el("td")
    if (lines.length === 1) {
      cell.textContent = error
      return cell
    }
    var details = el("details")
    details.appendChild(el("summary", lines[0]))
    details.appendChild(el("pre", lines.slice(1).join("\n")))
    cell.appendChild(details)
    return cell
  }
  function loadDeadLetters(periodic) {
    return getJson("dead-letters")
      .then(function (body) {
        var tbody = $("deadLetterRows")
        if (periodic === true && busy(tbody)) return
        tbody.replaceChildren()
        $("deadLetterCount").textContent = body.deadLetters.length + " dead letter(s)"
        if (body.deadLetters.length === 0) emptyRow(tbody, 7, "no dead letters")
        body.deadLetters.forEach(function (letter) {
          var tr = el("tr")
          tr.dataset.id = String(letter.id)
          tr.appendChild(el("td", letter.id, "num"))
          tr.appendChild(el("td", letter.projection.name + " v" + letter.projection.version + " #" + letter.partition))
          tr.appendChild(el("td", letter.event.streamId + "@" + letter.event.version + " " + letter.event.type))
          tr.appendChild(errorCell(letter.error))
          tr.appendChild(el("td", letter.at))
          tr.appendChild(el("td", letter.retryRequested ? "requested" : ""))
          var actions = el("td")
          if (info.admin) {
            var id = letter.id
            actions.appendChild(
              button(
                "Retry",
                function () {
                  confirmStep(actions, "Retry dead letter " + id + "?", function () {
                    letterAction(letter, "retry")
                  })
                },
                "Retry dead letter " + id
              )
            )
            actions.appendChild(document.createTextNode(" "))
            actions.appendChild(
              button(
                "Discard",
                function () {
                  confirmStep(actions, "Delete dead letter " + id + " for good?", function () {
                    letterAction(letter, "discard")
                  })
                },
                "Discard dead letter " + id
              )
            )
          }
          tr.appendChild(actions)
          tbody.appendChild(tr)
        })
      })
      .catch(failed)
  }

  // ---------------------------------------------------------------------------------------------
  // sagas
  // ---------------------------------------------------------------------------------------------

  function loadSagas(after) {
    var name = $("sagaName").value
    if (!name) return Promise.resolve()
    var params = new URLSearchParams()
    if ($("sagaStatus").value) params.set("status", $("sagaStatus").value)
    if (after) params.set("after", after)
    params.set("limit", "50")
    return getJson("sagas/" + encodeURIComponent(name), params)
      .then(function (page) {
        state.sagaNext = page.next
        $("sagaNext").disabled = page.next === null
        var tbody = $("sagaRows")
        tbody.replaceChildren()
        if (page.instances.length === 0) emptyRow(tbody, 5, "no instances")
        page.instances.forEach(function (i) {
          var tr = el("tr")
          var cell = el("td")
          cell.appendChild(
            button(i.id, function () {
              showSaga(name, i.id)
            })
          ).className = "link"
          tr.appendChild(cell)
          tr.appendChild(el("td", i.status, "state-" + i.status))
          tr.appendChild(el("td", i.version, "num"))
          tr.appendChild(el("td", i.updatedAt))
          tr.appendChild(el("td", i.error === null ? "" : i.error))
          tbody.appendChild(tr)
        })
      })
      .catch(failed)
  }
  function showSaga(name, id) {
    return getJson("sagas/" + encodeURIComponent(name) + "/" + encodeURIComponent(id))
      .then(function (s) {
        $("sagaDetailTitle").textContent = name + " " + id
        var dl = $("sagaDetailList")
        dl.replaceChildren()
        var row = function (term, value) {
          dl.appendChild(el("dt", term))
          var dd = el("dd")
          dd.appendChild(el("pre", value))
          dl.appendChild(dd)
        }
        row("status", s.status + ", version " + s.version)
        row("state", JSON.stringify(s.state, null, 2))
        row("compensations recorded", String(s.compensations))
        row(
          "deadlines",
          s.pendingTimeouts.length === 0
            ? "none"
            : s.pendingTimeouts
                .map(function (t) {
                  return t.name + " due " + t.dueAt
                })
                .join("\n")
        )
        if (s.error !== null) row("error", s.error)
        $("sagaDetail").classList.remove("hidden")
      })
      .catch(failed)
  }

  // ---------------------------------------------------------------------------------------------
  // wiring
  // ---------------------------------------------------------------------------------------------

  function refresh(periodic) {
    return Promise.all([loadRunners(periodic === true), loadSamples(), loadDeadLetters(periodic === true)])
  }
  function schedule() {
    if (state.timer !== null) clearInterval(state.timer)
    state.timer = $("autoRefresh").checked
      ? setInterval(
          function () {
            refresh(true)
          },
          Math.max(1000, info.sampleIntervalSeconds * 1000)
        )
      : null
  }

  $("filters").addEventListener("submit", function (e) {
    e.preventDefault()
    loadEvents(null)
  })
  $("next").addEventListener("click", function () {
    loadEvents(state.next)
  })
  $("first").addEventListener("click", function () {
    loadEvents(null)
  })
  $("followLive").addEventListener("click", toggleLive)
  $("streamForm").addEventListener("submit", function (e) {
    e.preventDefault()
    openStream($("streamId").value.trim(), 1)
  })
  $("streamNextButton").addEventListener("click", function () {
    openStream(state.stream, state.streamNext)
  })
  $("deleteStream").addEventListener("click", function () {
    streamAction("delete", "Delete " + state.stream + "? (Undelete restores it)")
  })
  $("undeleteStream").addEventListener("click", function () {
    streamAction("undelete", "Undelete " + state.stream + "?")
  })
  $("hardDeleteStream").addEventListener("click", function () {
    streamAction("hard-delete", "Delete " + state.stream + " for good? Its events cannot be restored.")
  })
  $("truncateStream").addEventListener("click", function () {
    var before = $("truncateBefore").value.trim()
    if (!/^[1-9][0-9]*$/.test(before)) return say("truncate before: a version, 1 or more")
    streamAction("truncate", "Remove the events of " + state.stream + " below version " + before + "?", {
      before: before
    })
  })
  $("archiveStream").addEventListener("click", function () {
    // the version box, when filled, bounds the archiving as it bounds a truncation
    var before = $("truncateBefore").value.trim()
    if (before !== "" && !/^[1-9][0-9]*$/.test(before)) return say("archive before: a version, 1 or more")
    var which = before === "" ? "every event" : "the events below version " + before
    streamAction(
      "archive",
      "Archive " + which + " of " + state.stream + "? They leave the log and stay readable from the archive.",
      before === "" ? null : { before: before }
    )
  })
  $("eraseForm").addEventListener("submit", function (e) {
    e.preventDefault()
    var subject = $("eraseSubject").value.trim()
    if (subject === "") return
    var form = $("eraseForm")
    confirmStep(form, "Erase " + subject + " for good? Its personal data can never be read again.", function () {
      request("POST", "admin/subjects/" + encodeURIComponent(subject) + "/erase", null, true)
        .then(function () {
          say(subject + " erased: its personal fields read as erased")
        })
        .catch(failed)
    })
  })
  $("closeStream").addEventListener("click", function () {
    $("streamView").classList.add("hidden")
  })
  $("firstState").addEventListener("click", function () {
    showStep(0)
  })
  $("prevState").addEventListener("click", function () {
    showStep(state.step - 1)
  })
  $("nextState").addEventListener("click", function () {
    showStep(state.step + 1)
  })
  $("lastState").addEventListener("click", function () {
    showStep(state.steps.length - 1)
  })
  $("timeTravel").addEventListener("keydown", function (e) {
    if (e.key === "ArrowLeft") showStep(state.step - 1)
    else if (e.key === "ArrowRight") showStep(state.step + 1)
    else return
    e.preventDefault()
  })
  $("refreshRunners").addEventListener("click", function () {
    refresh(false)
  })
  $("autoRefresh").addEventListener("change", schedule)
  $("refreshDeadLetters").addEventListener("click", function () {
    loadDeadLetters(false)
  })
  $("sagaForm").addEventListener("submit", function (e) {
    e.preventDefault()
    loadSagas(null)
  })
  $("sagaNext").addEventListener("click", function () {
    loadSagas(state.sagaNext)
  })

  getJson("console")
    .then(function (body) {
      info = body
      $("adminArea").classList.toggle("hidden", !info.admin)
      $("eraseForm").classList.toggle("hidden", !info.admin)
      $("streamAdmin").classList.toggle("hidden", !info.admin)
      info.sagas.forEach(function (name) {
        var option = el("option", name)
        option.value = name
        $("sagaName").appendChild(option)
      })
      schedule()
      document.body.dataset.ready = "true"
      return Promise.all([loadEvents(null), refresh(false), loadSagas(null)])
    })
    .catch(failed)
})()
