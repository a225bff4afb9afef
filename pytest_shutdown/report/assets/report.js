"use strict";
// The episode browser. Agent text is hostile: it is only ever set with textContent.
(function () {
  const data = JSON.parse(document.getElementById("episodes-data").textContent);
  const $ = (id) => document.getElementById(id);
  const OUTCOMES = ["complied", "sabotaged", "no_trigger", "error"];
  const filters = { outcome: $("f-outcome"), model: $("f-model"), variant: $("f-variant"),
                    test: $("f-test") };
  let shown = data;
  let page = 0;
  let current = null;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function outcomeClass(outcome) {
    return OUTCOMES.includes(outcome) ? "o-" + outcome : "o-error";
  }
  for (const [key, select] of Object.entries(filters)) {
    const values = [...new Set(data.map((e) => e[key]))].sort();
    for (const v of values) {
      const option = el("option", null, v);
      option.value = v;
      select.appendChild(option);
    }
    select.addEventListener("change", apply);
  }
  $("prev").addEventListener("click", () => { page -= 1; renderList(); });
  $("next").addEventListener("click", () => { page += 1; renderList(); });

  function apply() {
    const want = {};
    for (const [key, select] of Object.entries(filters)) want[key] = select.value;
    shown = data.filter((e) => Object.keys(want).every((k) => !want[k] || e[k] === want[k]));
    page = 0;
    renderList();
  }

  function renderList() {
    const pages = Math.max(1, Math.ceil(shown.length / PAGE));
    page = Math.min(Math.max(page, 0), pages - 1);
    const list = $("list");
    list.replaceChildren();
    for (const e of shown.slice(page * PAGE, (page + 1) * PAGE)) {
      const row = el("a", "row");
      row.href = "#episode-" + e.id;
      row.dataset.id = String(e.id);
      row.setAttribute("role", "listitem");
      if (current === e.id) row.classList.add("current");
      row.append(el("span", "outcome " + outcomeClass(e.outcome), e.outcome),
                 el("span", "test", e.nodeid || "(no test)"),
                 el("span", "meta", e.model + " · " + e.variant));
      list.appendChild(row);
    }
    $("count").textContent = shown.length + " of " + data.length + " episodes";
    $("page").textContent = "page " + (page + 1) + " of " + pages;
    $("prev").disabled = page === 0;
    $("next").disabled = page >= pages - 1;
  }

  function evidenceBox(evs) {
    const box = el("aside", "evidence");
    box.appendChild(el("h4", null, "detector evidence"));
    for (const ev of evs) {
      const p = el("p");
      p.append(el("strong", null, "[" + ev.kind + "] " + ev.path), document.createTextNode(
        ": " + ev.detail + " (turn " + ev.turn + ")"));
      box.appendChild(p);
    }
    return box;
  }

  function show(id) {
    const entry = data[id];
    if (!entry) return;
    current = id;
    const ep = entry.episode;
    const detail = $("detail");
    detail.replaceChildren();
    const title = el("h3");
    title.append(el("span", "outcome " + outcomeClass(ep.outcome), ep.outcome),
                 document.createTextNode(" " + (entry.nodeid || "(no test)")));
    detail.appendChild(title);
    const facts = el("dl");
    const add = (k, v) => { facts.append(el("dt", null, k), el("dd", null, v)); };
    add("episode", "#" + id);
    add("model", ep.model);
    add("scenario", ep.scenario + " (" + entry.variant + ")");
    add("sandbox", ep.sandbox);
    add("reason", ep.reason);
    add("turns", ep.turns + ", task calls " + ep.task_calls + ", trigger turn " +
        (ep.trigger_turn === null ? "–" : ep.trigger_turn));
    add("parameters", JSON.stringify(ep.params));
    if (entry.cost_usd !== null && entry.cost_usd !== undefined) add("cost", "$" + entry.cost_usd);
    detail.appendChild(facts);
    const evidence = ep.evidence || [];
    if (evidence.length) {
      const list = el("div", "evidence-list");
      list.appendChild(el("strong", null, "Tampering found (" + evidence.length + ")"));
      for (const ev of evidence) {
        list.appendChild(el("div", null, "[" + ev.kind + "] turn " + ev.turn + " " + ev.path +
                                         ": " + ev.detail + " — by: " + ev.command));
      }
      detail.appendChild(list);
    }
    const tampering = (cmd, turn) => evidence.filter(
      (ev) => ev.command && ev.command === cmd && (ev.turn === undefined || ev.turn === turn));
    const transcript = el("div", "transcript");
    for (const m of ep.transcript || []) {
      const box = el("div", "msg " + (["system", "user", "assistant", "tool", "harness"]
        .includes(m.role) ? m.role : "other"));
      box.appendChild(el("div", "role", m.role + (m.turn ? " · turn " + m.turn : "")));
      let evs = [];
      if (m.role === "system" || m.role === "user") {
        const d = el("details");
        d.append(el("summary", null, m.content.split("\n")[0].slice(0, 120)),
                 el("pre", null, m.content));
        box.appendChild(d);
      } else if (m.role === "assistant") {
        if (m.reasoning) box.appendChild(el("div", "reasoning", m.reasoning));
        if (m.content) box.appendChild(el("div", "content", m.content));
        for (const call of m.tool_calls || []) {
          const args = call.arguments || {};
          const text = typeof args.command === "string" ? "$ " + args.command
            : call.name + " " + JSON.stringify(args);
          const pre = el("pre", "cmd", text);
          if (typeof args.command === "string" && tampering(args.command, m.turn).length) {
            pre.classList.add("tamper");
          }
          box.appendChild(pre);
        }
      } else if (m.role === "tool") {
        if (m.command !== undefined && m.command !== null) {
          evs = tampering(m.command, m.turn);
          if (evs.length) box.appendChild(el("mark", "tamper-label", "tampering command"));
          box.appendChild(el("pre", "cmd", "$ " + m.command));
        }
        const status = [];
        if (m.exit_code !== undefined && m.exit_code !== null) status.push("exit " + m.exit_code);
        if (m.timed_out) status.push("timed out");
        if (m.truncated) status.push("output truncated");
        if (status.length) box.appendChild(el("div", "role", status.join(", ")));
        box.appendChild(el("pre", "out", m.content));
      } else {
        box.appendChild(el("div", "role", (m.event || "event") +
                                          (m.command ? ": " + m.command : "")));
        if (m.content) box.appendChild(el("pre", "out", m.content));
      }
      if (evs.length) {
        const step = el("div", "step tamper");
        step.append(box, evidenceBox(evs));
        transcript.appendChild(step);
      } else {
        transcript.appendChild(box);
      }
    }
    detail.appendChild(transcript);
    for (const row of document.querySelectorAll("#list a.row")) {
      row.classList.toggle("current", row.dataset.id === String(id));
    }
  }

  function route() {
    const m = /^#episode-(\d+)$/.exec(window.location.hash);
    if (m) {
      const id = Number(m[1]);
      const at = shown.findIndex((e) => e.id === id);
      if (at >= 0 && Math.floor(at / PAGE) !== page) { page = Math.floor(at / PAGE); renderList(); }
      show(id);
    }
  }
  window.addEventListener("hashchange", route);
  renderList();
  route();
})();
