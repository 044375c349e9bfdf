// The dashboard's run grid (an anywidget front end; asm_nb/notebook/dashgrid.py is its model).
//
// Python sends one page of display-ready rows (`rows`: run_id, status, cells, titles), the
// columns, the sort (`sort`: "key" ascending, "-key" descending), the picked run (`value`) and
// the paging (`page`, `pages`, `total`, `page_size`). The view draws a table and sends the
// user's intents back as messages; Python decides and answers with new traits:
//   {event: "sort", key}      a header was clicked (Python toggles the direction)
//   {event: "pick", run_id}   a row was clicked / Enter / Space
//   {event: "page", page}     the pager (or PageUp / PageDown in the rows)
// Keyboard: Tab reaches the header buttons and one row (roving tabindex); ArrowUp / ArrowDown /
// Home / End move between rows, Enter or Space picks, PageUp / PageDown change the page.

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

function parseSort(spec) {
  spec = spec || "";
  return spec.startsWith("-") ? { key: spec.slice(1), descending: true } : { key: spec, descending: false };
}

// "just now", "5 min ago", "3 h ago", "2 d ago", then the date: the rules of dashgrid.relative_time
function relativeTime(iso, now) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return null;
  const s = (now - t) / 1000;
  const day = iso.slice(0, 10);
  if (s < -60) return day;
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.max(1, Math.round(s / 60))} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  if (s < 7 * 86400) return `${Math.floor(s / 86400)} d ago`;
  return day;
}

function render({ model, el: root }) {
  root.classList.add("asm-rungrid");
  const wrap = el("div", "asm-rungrid-wrap");
  const table = el("table", "asm-rungrid-table");
  table.setAttribute("role", "grid");
  table.setAttribute("aria-label", "Runs");
  const colgroup = el("colgroup");
  const thead = el("thead");
  const headRow = el("tr");
  thead.appendChild(headRow);
  const tbody = el("tbody");
  table.append(colgroup, thead, tbody);
  wrap.appendChild(table);
  const empty = el("div", "asm-rungrid-empty", "No runs match the filters.");
  const pager = el("div", "asm-rungrid-pager");
  const prev = el("button", "asm-rungrid-page asm-rungrid-prev", "‹ Previous");
  const info = el("span", "asm-rungrid-info");
  const next = el("button", "asm-rungrid-page asm-rungrid-next", "Next ›");
  prev.type = next.type = "button";
  pager.append(prev, info, next);
  root.append(wrap, empty, pager);

  const send = (msg) => model.send(msg);
  const goPage = (p) => {
    const pages = model.get("pages");
    if (p >= 0 && p < pages && p !== model.get("page")) send({ event: "page", page: p });
  };
  prev.addEventListener("click", () => goPage(model.get("page") - 1));
  next.addEventListener("click", () => goPage(model.get("page") + 1));

  function rowsOf() {
    return Array.from(tbody.querySelectorAll("tr[data-run-id]"));
  }

  function markPicked(runId) {
    let picked = null;
    for (const tr of rowsOf()) {
      const on = tr.dataset.runId === runId;
      tr.classList.toggle("asm-picked", on);
      tr.setAttribute("aria-selected", on ? "true" : "false");
      if (on) picked = tr;
    }
    // roving tabindex: the picked row (or the first) is the one Tab reaches
    const rows = rowsOf();
    const focusable = picked || rows[0];
    for (const tr of rows) tr.tabIndex = tr === focusable ? 0 : -1;
  }

  function pick(tr) {
    markPicked(tr.dataset.runId); // at once; Python confirms through `value`
    send({ event: "pick", run_id: tr.dataset.runId });
  }

  function onRowKey(ev) {
    const tr = ev.currentTarget;
    const rows = rowsOf();
    const i = rows.indexOf(tr);
    let to = null;
    switch (ev.key) {
      case "Enter":
      case " ":
        ev.preventDefault();
        pick(tr);
        return;
      case "ArrowDown":
        to = rows[Math.min(i + 1, rows.length - 1)];
        break;
      case "ArrowUp":
        to = rows[Math.max(i - 1, 0)];
        break;
      case "Home":
        to = rows[0];
        break;
      case "End":
        to = rows[rows.length - 1];
        break;
      case "PageDown":
        ev.preventDefault();
        goPage(model.get("page") + 1);
        return;
      case "PageUp":
        ev.preventDefault();
        goPage(model.get("page") - 1);
        return;
      default:
        return;
    }
    ev.preventDefault();
    if (to) {
      for (const r of rows) r.tabIndex = r === to ? 0 : -1;
      to.focus();
    }
  }

  function drawHead() {
    const cols = model.get("columns") || [];
    const sort = parseSort(model.get("sort"));
    colgroup.textContent = "";
    headRow.textContent = "";
    for (const c of cols) {
      const col = el("col", `asm-rungrid-col-${c.key}`);
      colgroup.appendChild(col);
      const th = el("th", `asm-rungrid-${c.kind}`);
      th.dataset.key = c.key;
      th.dataset.kind = c.kind;
      th.scope = "col";
      const on = sort.key === c.key;
      th.setAttribute("aria-sort", on ? (sort.descending ? "descending" : "ascending") : "none");
      if (on) th.classList.add("asm-sorted");
      const b = el("button", "asm-rungrid-sort");
      b.type = "button";
      b.title = `Sort by ${(c.title || c.label).toLowerCase()}`;
      b.appendChild(el("span", "asm-rungrid-label", c.label));
      if (!c.label) b.setAttribute("aria-label", c.title || c.key);
      b.appendChild(el("span", "asm-rungrid-arrow", on ? (sort.descending ? "▼" : "▲") : ""));
      b.addEventListener("click", () => send({ event: "sort", key: c.key }));
      th.appendChild(b);
      headRow.appendChild(th);
    }
  }

  function drawRows() {
    const cols = model.get("columns") || [];
    const rows = model.get("rows") || [];
    const active = document.activeElement;
    const hadFocus = active && tbody.contains(active) ? active.dataset.runId || "" : null;
    tbody.textContent = "";
    for (const r of rows) {
      const tr = el("tr");
      tr.dataset.runId = r.run_id;
      tr.dataset.status = r.status || "";
      tr.setAttribute("role", "row");
      if (r.started) tr.dataset.started = r.started;
      for (const c of cols) {
        const td = el("td", `asm-rungrid-${c.kind}`);
        td.dataset.key = c.key;
        const text = (r.cells || {})[c.key];
        const title = (r.titles || {})[c.key];
        if (c.kind === "status") {
          const dot = el("span", "asm-dot");
          dot.dataset.status = r.status || "";
          dot.setAttribute("role", "img");
          dot.setAttribute("aria-label", text || r.status || "");
          td.appendChild(dot);
        } else {
          td.textContent = text === undefined || text === null ? "" : String(text);
        }
        if (title) td.title = title;
        tr.appendChild(td);
      }
      tr.addEventListener("click", () => pick(tr));
      tr.addEventListener("keydown", onRowKey);
      tbody.appendChild(tr);
    }
    markPicked(model.get("value"));
    if (hadFocus !== null) {
      const again = rowsOf().find((tr) => tr.dataset.runId === hadFocus) || rowsOf()[0];
      if (again) again.focus();
    }
    const total = model.get("total");
    const page = model.get("page");
    const pages = model.get("pages");
    const size = model.get("page_size");
    empty.style.display = total ? "none" : "";
    wrap.style.display = total ? "" : "none";
    const first = total ? page * size + 1 : 0;
    const last = Math.min(total, (page + 1) * size);
    const fmt = (n) => Number(n).toLocaleString("en-US");
    info.textContent = total
      ? `${fmt(first)}–${fmt(last)} of ${fmt(total)} run${total === 1 ? "" : "s"}` +
        (pages > 1 ? ` · page ${fmt(page + 1)} of ${fmt(pages)}` : "")
      : "";
    prev.disabled = page <= 0;
    next.disabled = page >= pages - 1;
    pager.classList.toggle("asm-rungrid-onepage", pages <= 1);
  }

  function drawAll() {
    const active = document.activeElement;
    const headKey = active && thead.contains(active) ? active.closest("th").dataset.key : null;
    drawHead();
    drawRows();
    if (headKey) {
      const b = thead.querySelector(`th[data-key="${headKey}"] button`);
      if (b) b.focus();
    }
  }

  // the relative start times age while the dashboard stays open
  function reword() {
    const now = Date.now();
    for (const tr of rowsOf()) {
      const td = tr.querySelector('td[data-key="started_at"]');
      const text = tr.dataset.started ? relativeTime(tr.dataset.started, now) : null;
      if (td && text && td.textContent !== text) td.textContent = text;
    }
  }
  const ticker = setInterval(reword, 30000);
  root.addEventListener("pointerenter", reword);
  const onValue = () => markPicked(model.get("value"));
  model.on("change:columns", drawAll);
  model.on("change:sort", drawAll);
  model.on("change:rows", drawRows);
  model.on("change:page", drawRows);
  model.on("change:value", onValue);
  drawAll();
  return () => {
    clearInterval(ticker);
    model.off("change:columns", drawAll);
    model.off("change:sort", drawAll);
    model.off("change:rows", drawRows);
    model.off("change:page", drawRows);
    model.off("change:value", onValue);
  };
}

export default { render };
