// headcount's live view: reads the agent's JSON API (/v1/self,
// /v1/members?all=true, /v1/history) and its event stream (/v1/events).
// Rows are kept by member name and updated in place; every change is
// batched into one DOM update per animation frame, so a burst of a
// thousand events costs one layout.
'use strict';

(() => {
  const STATES = ['alive', 'suspect', 'dead', 'left'];
  const WINDOW_MS = 10 * 60 * 1000; // what the charts show
  const MAX_SAMPLES = 600;
  const MAX_EVENTS = 200; // timeline entries kept on the page
  const POLL_MS = 1000;
  const $ = (id) => document.getElementById(id);
  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });
  // Made once: toLocaleString() builds a formatter on every call, which a
  // thousand rows notice.
  const fullTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
  const clockTime = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });

  // name -> { m: member JSON, changed: server ms or null, row, cells, shown }
  const members = new Map();
  const order = []; // names with a row, sorted as the table
  const dirty = new Set();
  const pendingEvents = [];
  let frame = 0;
  let offset = 0; // server clock minus ours, in ms
  let selfName = null;
  let samples = [];
  let lastSeq = 0;
  let mismatches = 0;
  let resyncing = false;
  const filter = { states: new Set(STATES), q: '' };

  const serverNow = () => Date.now() + offset;

  function schedule() {
    if (!frame) frame = requestAnimationFrame(flush);
  }

  async function getJSON(path) {
    const r = await fetch(path, { cache: 'no-store', credentials: 'same-origin' });
    if (r.status === 401) {
      // The cookie is gone or the token changed: the page asks again.
      location.reload();
      throw new Error('unauthorized');
    }
    if (!r.ok) throw new Error(`${path}: ${r.status}`);
    return r.json();
  }

  // ---- members ------------------------------------------------------------

  /** Records `m`; `when` is the server time of its last change, if known. */
  function upsert(m, when) {
    const e = members.get(m.name);
    if (!e) {
      members.set(m.name, { m, changed: when ?? serverNow(), row: null, cells: null, shown: null, flash: false });
    } else {
      if (e.m.state !== m.state) {
        e.changed = when ?? serverNow();
        e.flash = true;
      } else if (when != null && e.changed == null) {
        e.changed = when;
      }
      e.m = m;
    }
    dirty.add(m.name);
    schedule();
  }

  function forget(name) {
    const e = members.get(name);
    if (!e) return;
    e.gone = true;
    dirty.add(name);
    schedule();
  }

  function tagsText(m) {
    if (m.tags && typeof m.tags === 'object') {
      return Object.keys(m.tags).sort().map((k) => `${k}=${m.tags[k]}`);
    }
    return m.meta ? [m.meta] : [];
  }

  function makeRow(e) {
    const tr = document.createElement('tr');
    const cells = {};
    for (const [key, cls] of [['name', 'name'], ['state', 'state'], ['addr', 'addr'], ['inc', 'num'], ['tags', 'tags'], ['changed', 'changed']]) {
      const td = document.createElement('td');
      td.className = cls;
      tr.appendChild(td);
      cells[key] = td;
    }
    cells.badge = document.createElement('span');
    cells.state.appendChild(cells.badge);
    cells.name.textContent = e.m.name;
    tr.dataset.name = e.m.name;
    if (e.m.name === selfName) tr.classList.add('is-self');
    e.row = tr;
    e.cells = cells;
    e.r = {}; // what is rendered, to touch only what changed
  }

  function fillRow(e) {
    const { m, cells, r } = e;
    if (r.state !== m.state) {
      e.row.dataset.state = m.state;
      cells.badge.className = `badge ${m.state}`;
      cells.badge.textContent = m.state;
      r.state = m.state;
    }
    if (r.addr !== m.addr) { cells.addr.textContent = m.addr; r.addr = m.addr; }
    if (r.inc !== m.incarnation) { cells.inc.textContent = String(m.incarnation); r.inc = m.incarnation; }
    const tags = tagsText(m);
    const tagKey = tags.join('\u0000');
    if (r.tags !== tagKey) {
      cells.tags.textContent = '';
      for (const t of tags) {
        const s = document.createElement('span');
        s.className = 'tag';
        s.textContent = t.length > 120 ? `${t.slice(0, 120)}…` : t;
        cells.tags.appendChild(s);
      }
      r.tags = tagKey;
    }
    renderAge(e);
    if (e.flash) {
      e.flash = false;
      e.row.classList.remove('flash');
      void e.row.offsetWidth; // restart the animation
      e.row.classList.add('flash');
    }
  }

  function renderAge(e) {
    const text = e.changed == null ? '–' : ago(serverNow() - e.changed);
    if (e.r.age !== text) {
      e.cells.changed.textContent = text;
      e.r.age = text;
      if (e.changed != null) e.cells.changed.title = fullTime.format(new Date(e.changed - offset));
    }
  }

  function ago(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 5) return 'just now';
    if (s < 60) return `${s} s ago`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ago`;
    const h = Math.floor(m / 60);
    if (h < 48) return `${h} h ago`;
    return `${Math.floor(h / 24)} days ago`;
  }

  function matches(e) {
    return filter.states.has(e.m.state) && (filter.q === '' || e.m.name.toLowerCase().includes(filter.q));
  }

  function applyFilter(e) {
    const shown = matches(e);
    if (e.shown !== shown) {
      e.row.hidden = !shown;
      e.shown = shown;
    }
  }

  /** Index of the first name in `order` sorting after `name`. */
  function position(name) {
    let lo = 0;
    let hi = order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (collator.compare(order[mid], name) <= 0) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  function flush() {
    frame = 0;
    const tbody = $('rows');
    const added = [];
    let removed = false;
    for (const name of dirty) {
      const e = members.get(name);
      if (!e) continue;
      if (e.gone) {
        if (e.row) { e.row.remove(); removed = true; }
        members.delete(name);
        continue;
      }
      if (!e.row) { makeRow(e); added.push(e); }
      fillRow(e);
      applyFilter(e);
    }
    dirty.clear();
    if (removed) {
      const keep = order.filter((n) => members.has(n));
      order.length = 0;
      order.push(...keep);
    }
    if (added.length > 32) {
      // Many at once (the first load): sort everything, append in one go.
      for (const e of added) order.push(e.m.name);
      order.sort(collator.compare);
      const frag = document.createDocumentFragment();
      for (const n of order) frag.appendChild(members.get(n).row);
      tbody.appendChild(frag);
    } else {
      for (const e of added) {
        const i = position(e.m.name);
        const next = i < order.length ? members.get(order[i]).row : null;
        tbody.insertBefore(e.row, next);
        order.splice(i, 0, e.m.name);
      }
    }
    flushEvents();
    updateCounts();
    if (members.size > 0 && !document.body.dataset.rendered) {
      document.body.dataset.rendered = String(performance.now());
    }
  }

  function updateCounts() {
    const counts = { alive: 0, suspect: 0, dead: 0, left: 0 };
    if (selfName === null) return counts; // nothing read yet: keep the dashes
    let shown = 0;
    for (const e of members.values()) {
      counts[e.m.state] = (counts[e.m.state] || 0) + 1;
      if (e.shown) shown += 1;
    }
    for (const s of STATES) {
      const n = $(`n-${s}`);
      const text = String(counts[s]);
      if (n.textContent !== text) n.textContent = text;
      n.parentElement.classList.toggle('nonzero', counts[s] > 0);
    }
    $('shown').textContent = shown === members.size ? `${members.size} members` : `${shown} of ${members.size} shown`;
    $('empty').hidden = shown > 0 || members.size === 0;
    return counts;
  }

  // ---- filters ------------------------------------------------------------

  function readFilterFromUrl() {
    const p = new URLSearchParams(location.search);
    const st = p.get('state');
    if (st) {
      const wanted = st.split(',').filter((s) => STATES.includes(s));
      if (wanted.length) filter.states = new Set(wanted);
    }
    filter.q = (p.get('q') || '').trim().toLowerCase();
    $('filter').value = p.get('q') || '';
  }

  function filterChanged() {
    for (const b of document.querySelectorAll('.chip')) {
      b.setAttribute('aria-pressed', String(filter.states.has(b.dataset.state)));
    }
    for (const b of document.querySelectorAll('.count')) {
      b.classList.toggle('selected', filter.states.size === 1 && filter.states.has(b.dataset.only));
    }
    for (const e of members.values()) if (e.row) applyFilter(e);
    updateCounts();
    const p = new URLSearchParams();
    if (filter.states.size < STATES.length) p.set('state', [...filter.states].join(','));
    if (filter.q) p.set('q', $('filter').value.trim());
    const qs = p.toString();
    history.replaceState(null, '', qs ? `?${qs}` : location.pathname);
  }

  function wireFilters() {
    for (const b of document.querySelectorAll('.chip')) {
      b.addEventListener('click', () => {
        const s = b.dataset.state;
        if (filter.states.has(s)) filter.states.delete(s); else filter.states.add(s);
        filterChanged();
      });
    }
    for (const b of document.querySelectorAll('.count')) {
      b.addEventListener('click', () => {
        const s = b.dataset.only;
        const only = filter.states.size === 1 && filter.states.has(s);
        filter.states = only ? new Set(STATES) : new Set([s]);
        filterChanged();
      });
    }
    let t = 0;
    $('filter').addEventListener('input', () => {
      clearTimeout(t);
      t = setTimeout(() => {
        filter.q = $('filter').value.trim().toLowerCase();
        filterChanged();
      }, 80);
    });
  }

  // ---- timeline -----------------------------------------------------------

  function describe(ev) {
    const n = ev.name || (ev.member && ev.member.name) || '?';
    switch (ev.kind) {
      case 'join': return `${n} joined${ev.member ? ` at ${ev.member.addr}` : ''}`;
      case 'suspect': return ev.from && ev.from !== n ? `${n} is suspected by ${ev.from}` : `${n} is suspect`;
      case 'dead': return `${n} was declared dead`;
      case 'left': return `${n} left the cluster`;
      case 'alive': return `${n} refuted the suspicion: alive (incarnation ${ev.member ? ev.member.incarnation : '?'})`;
      case 'update': return `${n} updated its metadata`;
      case 'conflict': return `name conflict: ${ev.text || n}`;
      case 'user': return `message: ${ev.text ?? ''}`;
      case 'lagged': return `the event stream fell behind (${ev.text}); resynchronised`;
      default: return n;
    }
  }

  function addEvent(ev, fresh) {
    // A hidden tab runs no animation frames: keep only what would be shown.
    if (pendingEvents.length >= MAX_EVENTS) pendingEvents.shift();
    pendingEvents.push({ ev, fresh });
    schedule();
  }

  function flushEvents() {
    if (!pendingEvents.length) return;
    const list = $('events');
    const frag = document.createDocumentFragment();
    // Newest on top.
    for (let i = pendingEvents.length - 1; i >= 0; i -= 1) {
      const { ev, fresh } = pendingEvents[i];
      const li = document.createElement('li');
      li.className = `ev-${ev.kind}${fresh ? ' new' : ''}`;
      const time = document.createElement('time');
      const d = new Date((ev.t ?? serverNow()) - offset);
      time.textContent = clockTime.format(d);
      time.dateTime = d.toISOString();
      const kind = document.createElement('span');
      kind.className = 'kind';
      kind.textContent = ev.kind === 'alive' ? 'refuted' : ev.kind;
      const what = document.createElement('span');
      what.className = 'what';
      what.textContent = describe(ev);
      li.append(time, kind, what);
      frag.appendChild(li);
      if (frag.childNodes.length >= MAX_EVENTS) break;
    }
    pendingEvents.length = 0;
    list.insertBefore(frag, list.firstChild);
    while (list.childNodes.length > MAX_EVENTS) list.lastChild.remove();
    $('no-events').hidden = list.childNodes.length > 0;
  }

  // ---- charts -------------------------------------------------------------

  const SVG = 'http://www.w3.org/2000/svg';

  function svgEl(name, attrs) {
    const el = document.createElementNS(SVG, name);
    for (const k of Object.keys(attrs)) el.setAttribute(k, attrs[k]);
    return el;
  }

  /** The time the charts span: from the first sample (at least a
   * minute), up to ten minutes. */
  function span() {
    const first = samples.length ? samples[0].t : serverNow();
    return Math.min(WINDOW_MS, Math.max(60 * 1000, serverNow() - first));
  }

  /** Points of `key` over the span, as [x 0..600, value]. */
  function series(key) {
    const end = serverNow();
    const width = span();
    const out = [];
    for (const s of samples) {
      const x = 600 - ((end - s.t) / width) * 600;
      if (x >= -1) out.push([x, s[key] || 0]);
    }
    return out;
  }

  function spanText() {
    const s = Math.round(span() / 1000);
    return s < 120 ? `${s} s ago` : `${Math.round(s / 60)} min ago`;
  }

  function pathOf(points, max, step) {
    let d = '';
    let prevY = null;
    for (const [x, v] of points) {
      const y = 96 - (v / max) * 90;
      if (d === '') d = `M${x.toFixed(1)} ${y.toFixed(1)}`;
      else if (step) d += `H${x.toFixed(1)}V${y.toFixed(1)}`;
      else d += `L${x.toFixed(1)} ${y.toFixed(1)}`;
      prevY = y;
    }
    return { d, lastY: prevY };
  }

  function drawCharts() {
    for (const el of document.querySelectorAll('.axis .from')) el.textContent = spanText();
    const health = series('health');
    const hmax = Math.max(4, ...health.map((p) => p[1]));
    const hsvg = $('health-chart');
    hsvg.textContent = '';
    hsvg.dataset.points = String(health.length);
    hsvg.appendChild(svgEl('line', { class: 'grid', x1: 0, x2: 600, y1: 6, y2: 6 }));
    if (health.length) {
      const allZero = health.every((p) => p[1] === 0);
      const { d } = pathOf(health, hmax, true);
      const last = health[health.length - 1][0];
      hsvg.appendChild(svgEl('path', { class: 'health-area', d: `${d}V96H${health[0][0].toFixed(1)}Z` }));
      hsvg.appendChild(svgEl('path', { class: allZero ? 'zero' : 'health', d: `${d}H${Math.max(last, 600).toFixed(1)}` }));
    }
    const latest = samples[samples.length - 1];
    if (latest) {
      $('health-now').textContent = String(latest.health);
      $('health-note').textContent = `0 is healthy · peak ${Math.max(...health.map((p) => p[1]))}`;
    }

    const pin = series('pkts_in');
    const pout = series('pkts_out');
    const rmax = Math.max(1, ...pin.map((p) => p[1]), ...pout.map((p) => p[1]));
    const rsvg = $('rate-chart');
    rsvg.textContent = '';
    rsvg.dataset.points = String(pin.length);
    rsvg.appendChild(svgEl('line', { class: 'grid', x1: 0, x2: 600, y1: 6, y2: 6 }));
    if (pin.length > 1) {
      rsvg.appendChild(svgEl('path', { class: 'in', d: pathOf(pin, rmax, false).d }));
      rsvg.appendChild(svgEl('path', { class: 'out', d: pathOf(pout, rmax, false).d }));
    }
    if (latest) {
      $('rate-now').textContent = `${latest.pkts_in} / ${latest.pkts_out}`;
      $('rate-note').textContent = `peak ${rmax}/s`;
    }
  }

  // ---- live data ----------------------------------------------------------

  function onMember(kind, m, from) {
    const prev = members.get(m.name);
    const stateChanged = !prev || prev.m.state !== m.state;
    upsert(m);
    let tl = null;
    if (kind === 'join' && stateChanged) tl = 'join';
    else if (kind === 'leave' && stateChanged) tl = m.state === 'left' ? 'left' : 'dead';
    else if (kind === 'suspect' && stateChanged) tl = 'suspect';
    else if (kind === 'update') tl = 'update';
    if (tl) addEvent({ kind: tl, name: m.name, member: m, from, t: serverNow() }, true);
  }

  function setConn(state, text) {
    $('conn').dataset.state = state;
    $('conn-text').textContent = text;
  }

  function connect() {
    const es = new EventSource('/v1/events', { withCredentials: true });
    let opened = false;
    es.addEventListener('open', () => {
      setConn('live', 'live');
      // After a reconnection, members may have changed unseen.
      if (opened) resync();
      opened = true;
    });
    es.addEventListener('error', () => {
      setConn(es.readyState === EventSource.CLOSED ? 'down' : 'reconnecting', 'reconnecting');
    });
    for (const kind of ['join', 'leave', 'update']) {
      es.addEventListener(kind, (ev) => onMember(kind, JSON.parse(ev.data)));
    }
    es.addEventListener('suspect', (ev) => {
      const d = JSON.parse(ev.data);
      onMember('suspect', d.member, d.from);
    });
    es.addEventListener('conflict', (ev) => {
      const d = JSON.parse(ev.data);
      addEvent({ kind: 'conflict', name: d.existing.name, text: `${d.existing.name} at ${d.existing.addr} and at ${d.other.addr}`, t: serverNow() }, true);
    });
    es.addEventListener('user', (ev) => {
      const d = JSON.parse(ev.data);
      const text = d.message.length > 256 ? `${d.message.slice(0, 256)}…` : d.message;
      addEvent({ kind: 'user', text, t: serverNow() }, true);
    });
    es.addEventListener('health', (ev) => {
      $('health-now').textContent = String(JSON.parse(ev.data).health_score);
    });
    // The agent no longer had our place in its log: a snapshot follows as
    // joins; members gone meanwhile are only in a fresh list.
    es.addEventListener('resync', () => resync());
    es.addEventListener('lagged', (ev) => {
      addEvent({ kind: 'lagged', text: `${JSON.parse(ev.data).missed} events missed`, t: serverNow() }, true);
      // The server ends the stream; EventSource reconnects, then resyncs.
    });
  }

  /** Reads the whole member list again (after a reconnection or a drift). */
  async function resync() {
    if (resyncing) return;
    resyncing = true;
    try {
      const list = await getJSON('/v1/members?all=true');
      const seen = new Set();
      for (const m of list.members) {
        seen.add(m.name);
        upsert(m);
      }
      for (const name of members.keys()) if (!seen.has(name)) forget(name);
    } catch (_) {
      // The next poll tries again.
    } finally {
      resyncing = false;
    }
  }

  let polling = false;

  async function poll() {
    if (polling) return; // a slow agent: one request at a time
    polling = true;
    let h;
    try {
      h = await getJSON(`/v1/history?since=${lastSeq}`);
      if ($('conn').dataset.state === 'down') setConn('reconnecting', 'reconnecting');
    } catch (_) {
      setConn('down', 'agent unreachable');
      return;
    } finally {
      polling = false;
    }
    offset = h.now - Date.now();
    lastSeq = h.seq;
    if (h.samples.length) {
      samples = samples.concat(h.samples).slice(-MAX_SAMPLES);
      drawCharts();
    }
    for (const ev of h.events) {
      // The event stream carries the rest; a refutation has no event.
      if (ev.kind === 'alive' && ev.member) {
        upsert(ev.member, ev.t);
        addEvent(ev, true);
      }
    }
    // Members reaped, or changes the stream could not say: when the
    // counts disagree twice in a row, read the list again.
    const latest = samples[samples.length - 1];
    if (latest && !frame) {
      const counts = updateCounts();
      const same = STATES.every((s) => counts[s] === latest[s]);
      mismatches = same ? 0 : mismatches + 1;
      if (mismatches >= 2) {
        mismatches = 0;
        resync();
      }
    }
  }

  function refreshAges() {
    for (const e of members.values()) if (e.row && e.shown) renderAge(e);
  }

  async function start() {
    readFilterFromUrl();
    wireFilters();
    filterChanged();
    let self;
    let hist;
    let list;
    try {
      [self, hist, list] = await Promise.all([
        getJSON('/v1/self'),
        getJSON('/v1/history'),
        getJSON('/v1/members?all=true'),
      ]);
    } catch (e) {
      setConn('down', 'agent unreachable');
      $('self').textContent = `Cannot read the agent's API: ${e.message}. Retrying…`;
      setTimeout(start, 3000);
      return;
    }
    // For measurements (docs/web-view.md): when the data had arrived.
    document.body.dataset.data = String(performance.now());
    offset = hist.now - Date.now();
    selfName = self.name;
    document.title = `${self.name} · headcount`;
    const selfEl = $('self');
    selfEl.textContent = '';
    const b = document.createElement('b');
    b.textContent = self.name;
    selfEl.append(b, ` · ${self.addr} · incarnation ${self.incarnation}`);
    $('health-node').textContent = `of ${self.name}`;
    samples = hist.samples.slice(-MAX_SAMPLES);
    lastSeq = hist.seq;
    for (const ev of hist.events) addEvent(ev, false);
    const changed = hist.last_change || {};
    for (const m of list.members) upsert(m, changed[m.name]);
    drawCharts();
    schedule();
    connect();
    setInterval(poll, POLL_MS);
    setInterval(refreshAges, 5000);
  }

  start();
})();
