// Manta dashboard: the browser side of manta_manager's web dashboard.
// Contract with the server: docs/dashboard.md. Plain ES2020, no dependencies.
// Sections: util, api, auth, router, views (nodes, swarms, swarm), charts, live, boot.
// Everything the server sends is inserted as text (textContent / attributes), never as HTML.
'use strict';

(() => {

// ===================================================================== util

const $ = (id) => document.getElementById(id);
const SVG_NS = 'http://www.w3.org/2000/svg';
const HISTORY_MAX = 120;          // node samples kept (10 min at one every 5 s)
const LOGS_MAX = 3000;            // log entries kept in the page
const GUESS_KEY = 'metrics.val_acc';  // the key preselected when the swarm has it
const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });
const dateFmt = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
const clockFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}
function svgEl(tag, attrs) {
  const e = document.createElementNS(SVG_NS, tag);
  if (attrs) for (const k in attrs) e.setAttribute(k, attrs[k]);
  return e;
}
function setText(e, text) {           // only touches the DOM when the text changes
  text = text == null ? '' : String(text);
  if (e.textContent !== text) e.textContent = text;
}
function setBadge(e, status) {
  const s = status ? String(status) : '—';
  e.className = 'badge badge-' + s.toLowerCase().replace(/[^a-z]/g, '');
  setText(e, s);
}
function badge(status) { const b = el('span'); setBadge(b, status); return b; }
function fmtTime(ms) { return ms ? dateFmt.format(new Date(ms)) : '—'; }
function fmtClock(ms) { return ms ? clockFmt.format(new Date(ms)) : '—'; }
function fmtPct(v) { return typeof v === 'number' ? v.toFixed(1) + ' %' : '—'; }
function fmtBytes(n) {
  if (typeof n !== 'number') return '?';
  const u = ['B', 'KB', 'MB', 'GB', 'TB']; let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return n.toFixed(i ? 1 : 0) + ' ' + u[i];
}
function fmtDuration(ms) {
  if (typeof ms !== 'number' || ms < 0) return '—';
  if (ms < 1000) return ms + ' ms';
  const s = ms / 1000;
  if (s < 60) return s.toFixed(1) + ' s';
  const m = Math.floor(s / 60), r = Math.floor(s % 60);
  if (m < 60) return m + ' min ' + String(r).padStart(2, '0') + ' s';
  return Math.floor(m / 60) + ' h ' + String(m % 60).padStart(2, '0') + ' min';
}
function shortId(id) { return id ? String(id).slice(0, 8) + '…' : '—'; }
function fmtNum(v) {
  if (typeof v !== 'number' || !isFinite(v)) return '—';
  const a = Math.abs(v);
  return a !== 0 && (a >= 1e6 || a < 1e-3) ? v.toExponential(2) : String(+v.toPrecision(4));
}
function debounce(fn, ms) {
  let t = null;
  return () => { clearTimeout(t); t = setTimeout(fn, ms); };
}
// At most one call per `ms`: the first at once, the last of a burst at the end of the window.
function throttle(fn, ms) {
  let last = 0, timer = null;
  return () => {
    const wait = last + ms - Date.now();
    if (wait <= 0) { last = Date.now(); fn(); }
    else if (!timer) timer = setTimeout(() => { timer = null; last = Date.now(); fn(); }, wait);
  };
}
// One run of an async function at a time; calls during a run collapse into one more run.
function serial(fn) {
  let running = false, again = false;
  return async () => {
    if (running) { again = true; return; }
    running = true;
    try { do { again = false; await fn(); } while (again); } finally { running = false; }
  };
}

// Redraws are skipped while the tab is hidden and done once when it shows again.
const pendingDraws = new Map();
function draw(part, fn) {
  if (document.hidden) pendingDraws.set(part, fn); else { pendingDraws.delete(part); fn(); }
}
// Run fn once the next frame is painted: what is below the fold waits for what is above it.
function afterPaint(fn) {
  if (document.hidden) setTimeout(fn, 0);     // no frames while hidden
  else requestAnimationFrame(() => setTimeout(fn, 0));
}
function flushDraws() {
  const fns = [...pendingDraws.values()];
  pendingDraws.clear();
  for (const fn of fns) fn();
}

function report(err) {               // a failed request other than "signed out"
  if (!err || err.status === 401) return;
  const b = $('banner');
  b.textContent = err.message || String(err);
  b.hidden = false;
}
function clearBanner() { $('banner').hidden = true; }

// ===================================================================== api

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

const api = {
  csrf: '',
  async call(method, path, body) {
    const headers = { Accept: 'application/json' };
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    if (method !== 'GET') {
      if (this.csrf) headers['X-Manta-Csrf'] = this.csrf;
      if (body !== undefined) { headers['Content-Type'] = 'application/json'; init.body = JSON.stringify(body); }
    }
    let res;
    try { res = await fetch(path, init); } catch (e) {
      throw new ApiError(0, 'The manager cannot be reached: check that it runs and try again.');
    }
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) {
      const msg = data && typeof data.error === 'string' && data.error
        ? data.error : `The manager answered ${res.status} ${res.statusText}.`;
      // A 401 anywhere but sign-in and the session check means the session has ended.
      if (res.status === 401 && path !== '/api/login' && path !== '/api/session') auth.ended();
      throw new ApiError(res.status, msg);
    }
    if (data === null) throw new ApiError(res.status, 'The manager sent an answer that is not JSON.');
    return data;
  },
  get(path) { return this.call('GET', path); },
  post(path, body) { return this.call('POST', path, body); },
};

// ===================================================================== auth

const auth = {
  user: null,
  signedIn: false,
  tokenMode: false,

  init() {
    $('login-password-mode').addEventListener('click', () => this.setMode(false));
    $('login-token-mode').addEventListener('click', () => this.setMode(true));
    $('login-form').addEventListener('submit', (ev) => { ev.preventDefault(); this.submit(); });
    $('signout').addEventListener('click', () => this.signOut());
  },

  setMode(token) {
    this.tokenMode = token;
    $('login-password-fields').hidden = token;
    $('login-token-fields').hidden = !token;
    $('login-password-mode').setAttribute('aria-selected', String(!token));
    $('login-token-mode').setAttribute('aria-selected', String(token));
    $('login-error').textContent = '';
    (token ? $('login-token') : $('login-user')).focus();
  },

  // On load: the view's requests go out at once, beside GET /api/session (a round trip less
  // before anything is drawn; the view draws into the hidden app); a 401 on any of them shows
  // the sign-in form.
  async check() {
    this.signedIn = true;
    this.tentative = true;
    router.route();
    try { this.start(await api.get('/api/session'), true); } catch (e) {
      this.tentative = false;
      this.signedIn = false;
      this.showLogin(e.status === 401 ? '' : e.message);
    }
  },

  async submit() {
    let body;
    if (this.tokenMode) {
      const token = $('login-token').value.trim();
      if (!token) { $('login-error').textContent = 'Paste a user token.'; return; }
      body = { token };
    } else {
      const user = $('login-user').value.trim(), password = $('login-password').value;
      if (!user || !password) { $('login-error').textContent = 'Enter your user name and password.'; return; }
      body = { user, password };
    }
    const btn = $('login-submit');
    btn.disabled = true;
    $('login-error').textContent = '';
    try {
      const s = await api.post('/api/login', body);
      $('login-password').value = '';
      $('login-token').value = '';
      this.start(s);
    } catch (e) {
      $('login-error').textContent = e.message;
    } finally { btn.disabled = false; }
  },

  start(s, routed) {
    this.tentative = false;
    this.user = s.user;
    this.signedIn = true;
    api.csrf = s.csrf || '';
    $('user-name').textContent = s.user || '';
    $('manager-version').textContent = s.manager && s.manager.version ? 'manager ' + s.manager.version : '';
    $('boot').hidden = true;
    $('login-view').hidden = true;
    $('app').hidden = false;
    live.start();
    if (!routed) router.route();
  },

  showLogin(message) {
    live.stop();
    router.leave();
    nodesView.forget();
    this.signedIn = false;
    api.csrf = '';
    $('boot').hidden = true;
    $('app').hidden = true;
    $('login-view').hidden = false;
    $('login-error').textContent = message || '';
    const d = $('confirm-dialog');
    if (d.open) d.close();
    (this.tokenMode ? $('login-token') : $('login-user')).focus();
  },

  ended() {                           // any later 401
    if (this.tentative) { this.tentative = false; this.signedIn = false; this.showLogin(''); }
    else if (this.signedIn) this.showLogin('Your session has ended: sign in again.');
  },

  async signOut() {
    live.stop();                      // before the stream ends on its own
    this.signedIn = false;
    try { await api.post('/api/logout'); } catch (e) { /* signed out either way */ }
    this.showLogin('');
  },
};

// ===================================================================== router

// #/nodes, #/swarms, #/swarms/ID; anything else goes to #/swarms.
const router = {
  view: null,

  parse() {
    const parts = location.hash.replace(/^#\/?/, '').split('/');
    if (parts[0] === 'nodes' && parts.length === 1) return { name: 'nodes' };
    if (parts[0] === 'swarms' && parts.length === 1) return { name: 'swarms' };
    if (parts[0] === 'swarms' && parts.length === 2 && parts[1]) {
      try { return { name: 'swarm', id: decodeURIComponent(parts[1]) }; } catch (e) { return null; }
    }
    return null;
  },

  route() {
    if (!auth.signedIn) return;
    let r = this.parse();
    if (!r) { history.replaceState(null, '', '#/swarms'); r = { name: 'swarms' }; }
    this.leave();
    clearBanner();
    const views = { nodes: nodesView, swarms: swarmsView, swarm: swarmView };
    $('view-nodes').hidden = r.name !== 'nodes';
    $('view-swarms').hidden = r.name !== 'swarms';
    $('view-swarm').hidden = r.name !== 'swarm';
    for (const [id, on] of [['nav-nodes', r.name === 'nodes'], ['nav-swarms', r.name !== 'nodes']]) {
      if (on) $(id).setAttribute('aria-current', 'page'); else $(id).removeAttribute('aria-current');
    }
    this.view = views[r.name];
    this.view.enter(r);
  },

  leave() {
    if (this.view) this.view.leave();
    this.view = null;
  },
};

// ===================================================================== views: nodes

const nodesView = {
  active: false,
  model: new Map(),                   // id → node, with .history kept here
  loaded: false,
  now: 0,
  updatedAt: 0,
  rows: new Map(),                    // id → row cells
  order: [],

  enter() {
    this.active = true;
    // Live events keep the model current; fetch again only when it may be stale.
    if (this.loaded && Date.now() - this.updatedAt < 12000) draw('nodes', () => this.render());
    else this.load();
  },
  leave() { this.active = false; },
  onChange() { /* node rows follow the `nodes` event */ },
  forget() { this.model = new Map(); this.loaded = false; this.updatedAt = 0; },

  async load() {
    try { this.ingest(await api.get('/api/nodes'), true); } catch (e) { report(e); }
  },

  // A full answer (with history) or a live `nodes` event (without: append its values).
  ingest(d, full) {
    if (!full && !this.loaded) return;
    const now = d.now_ms || Date.now();
    const next = new Map();
    for (const n of d.nodes || []) {
      const old = this.model.get(n.id);
      let hist;
      if (full || Array.isArray(n.history)) {
        hist = Array.isArray(n.history) ? n.history.slice(-HISTORY_MAX) : [];
      } else {
        hist = old ? old.history : [];
        const last = hist[hist.length - 1];
        if ((n.cpu || n.memory) && (!last || last[0] < now)) {
          hist.push([now, n.cpu ? n.cpu.percent : null, n.memory ? n.memory.percent : null]);
          if (hist.length > HISTORY_MAX) hist.splice(0, hist.length - HISTORY_MAX);
        }
      }
      n.history = hist;
      next.set(n.id, n);
    }
    this.model = next;
    this.now = now;
    this.loaded = true;
    this.updatedAt = Date.now();
    if (this.active) draw('nodes', () => this.render());
  },

  makeRow(id) {
    const tr = el('tr');
    tr.dataset.nodeId = id;
    const r = { tr };
    r.alias = tr.appendChild(el('td', 'node-alias'));
    r.host = tr.appendChild(el('td', 'muted'));
    const idCell = tr.appendChild(el('td', 'mono', shortId(id)));
    idCell.title = id;
    r.status = tr.appendChild(el('td', 'node-status')).appendChild(el('span'));
    r.platform = tr.appendChild(el('td', 'small'));
    r.datasets = tr.appendChild(el('td', 'small'));
    r.running = tr.appendChild(el('td', 'num node-running'));
    r.cpu = tr.appendChild(el('td', 'num node-cpu'));
    r.mem = tr.appendChild(el('td', 'num node-memory'));
    const spark = svgEl('svg', { class: 'spark', viewBox: '0 0 120 28', width: '120', height: '28', 'aria-hidden': 'true' });
    r.cpuLine = spark.appendChild(svgEl('polyline', { class: 'spark-cpu' }));
    r.memLine = spark.appendChild(svgEl('polyline', { class: 'spark-mem' }));
    tr.appendChild(el('td', 'spark-cell')).appendChild(spark);
    return r;
  },

  fillRow(r, n) {
    setText(r.alias, n.alias || '—');
    setText(r.host, n.hostname || '');
    setBadge(r.status, n.status);
    r.status.title = 'last seen ' + fmtTime(n.last_seen_ms);
    setText(r.platform, n.platform || '');
    setText(r.datasets, Array.isArray(n.datasets) ? n.datasets.join(', ') : '');
    setText(r.running, n.running == null ? '—' : n.running);
    setText(r.cpu, fmtPct(n.cpu && n.cpu.percent));
    r.cpu.title = n.cpu && n.cpu.count ? n.cpu.count + ' CPUs' : '';
    setText(r.mem, fmtPct(n.memory && n.memory.percent));
    r.mem.title = n.memory ? fmtBytes(n.memory.used) + ' of ' + fmtBytes(n.memory.total) : '';
    r.cpuLine.setAttribute('points', charts.sparkPoints(n.history, 1, this.now));
    r.memLine.setAttribute('points', charts.sparkPoints(n.history, 2, this.now));
  },

  render() {
    const ids = [...this.model.keys()];
    const same = ids.length === this.order.length && ids.every((id, i) => id === this.order[i]);
    if (!same) {                      // rows added, removed or moved: one rebuild in a fragment
      const frag = document.createDocumentFragment();
      const rows = new Map();
      for (const id of ids) {
        const r = this.rows.get(id) || this.makeRow(id);
        this.fillRow(r, this.model.get(id));
        rows.set(id, r);
        frag.appendChild(r.tr);
      }
      const tbody = $('nodes-table').tBodies[0];
      tbody.textContent = '';
      tbody.appendChild(frag);
      this.rows = rows;
      this.order = ids;
    } else {
      for (const [id, n] of this.model) this.fillRow(this.rows.get(id), n);
    }
    let connected = 0;
    for (const n of this.model.values()) if (n.status === 'CONNECTED') connected++;
    setText($('nodes-summary'), `${ids.length} node${ids.length === 1 ? '' : 's'}, ${connected} connected`);
    $('nodes-empty').hidden = ids.length > 0;
  },

  alias(id) { const n = this.model.get(id); return n ? n.alias : ''; },
};

// ===================================================================== views: swarms

const swarmsView = {
  active: false,

  init() {
    // A click anywhere on a row opens the swarm (the name is also a real link).
    $('swarms-table').tBodies[0].addEventListener('click', (ev) => {
      const tr = ev.target.closest('tr[data-swarm-id]');
      if (tr && !ev.target.closest('a')) location.hash = '#/swarms/' + encodeURIComponent(tr.dataset.swarmId);
    });
    this.refresh = throttle(() => this.load(), 1000);
  },
  enter() { this.active = true; this.load(); },
  leave() { this.active = false; },
  onChange() { this.refresh(); },

  async load() {
    if (!this.active) return;
    let d;
    try { d = await api.get('/api/swarms'); } catch (e) { return report(e); }
    if (this.active) draw('swarms', () => this.render(d.swarms || []));
  },

  rows: new Map(),                    // id → row cells, kept so rows are updated in place
  order: [],

  makeRow(id) {
    const tr = el('tr');
    tr.dataset.swarmId = id;
    const r = { tr };
    r.link = tr.appendChild(el('td', 'swarm-name')).appendChild(el('a'));
    r.link.href = '#/swarms/' + encodeURIComponent(id);
    tr.appendChild(el('td', 'mono', shortId(id))).title = id;
    r.status = tr.appendChild(el('td', 'swarm-status')).appendChild(el('span'));
    r.iteration = tr.appendChild(el('td', 'num swarm-iteration'));
    r.created = tr.appendChild(el('td', 'small nowrap'));
    r.updated = tr.appendChild(el('td', 'small nowrap'));
    r.detail = tr.appendChild(el('td', 'small detail-cell'));
    return r;
  },

  render(list) {
    let running = 0;
    const rows = new Map();
    for (const s of list) {
      if (s.status === 'RUNNING') running++;
      const r = this.rows.get(s.id) || this.makeRow(s.id);
      setText(r.link, s.name || s.id);
      setBadge(r.status, s.status);
      setText(r.iteration, s.iteration);
      setText(r.created, fmtTime(s.created_ms));
      setText(r.updated, fmtTime(s.updated_ms));
      setText(r.detail, s.detail || '');
      rows.set(s.id, r);
    }
    const ids = [...rows.keys()];
    if (ids.length !== this.order.length || ids.some((id, i) => id !== this.order[i])) {
      const frag = document.createDocumentFragment();
      for (const r of rows.values()) frag.appendChild(r.tr);
      const tbody = $('swarms-table').tBodies[0];
      tbody.textContent = '';
      tbody.appendChild(frag);
      this.order = ids;
    }
    this.rows = rows;
    setText($('swarms-summary'), `${list.length} swarm${list.length === 1 ? '' : 's'}, ${running} running`);
    $('swarms-empty').hidden = list.length > 0;
  },
};

// ===================================================================== views: one swarm

const swarmView = {
  active: false,
  id: null,
  gen: 0,                             // bumped on enter/leave: late answers are dropped
  data: null,
  sigs: {},                           // JSON of what was drawn last, to skip identical redraws
  names: new Map(),                   // node id → alias, for the logs filter and errors
  keys: [],
  key: '',
  series: null,                       // { key, seq, nodes: Map(id → {alias, pts}), mean: [[it, v]] }
  logGen: 0,
  logSeq: null,
  logLast: -1,
  logCount: 0,

  init() {
    this.fetchSeries = serial(() => this.loadSeries());
    this.followLogs = serial(() => this.loadLogsAfter());
    this.refreshDetail = throttle(() => this.loadDetail(), 1000);
    const refilter = debounce(() => this.loadLogs(), 300);
    $('key-select').addEventListener('change', () => {
      this.key = $('key-select').value;
      this.series = null;
      this.fetchSeries();
    });
    $('logs-search').addEventListener('input', refilter);
    $('logs-iteration').addEventListener('input', refilter);
    $('logs-node').addEventListener('change', refilter);
    $('logs-follow').addEventListener('change', () => { if ($('logs-follow').checked) this.followLogs(); });
    $('stop-swarm').addEventListener('click', () => this.confirmStop());
    $('confirm-no').addEventListener('click', () => $('confirm-dialog').close());
    $('confirm-yes').addEventListener('click', () => this.stop());
    charts.legendHover($('training-legend'));
  },

  url(tail) { return '/api/swarms/' + encodeURIComponent(this.id) + (tail || ''); },

  enter(r) {
    this.active = true;
    this.gen++;
    this.id = r.id;
    this.reset();
    // The chart is what takes longest to arrive: the header and graph are drawn with it, in the
    // same frame, rather than laid out once before it and again after; the tables and logs below
    // it (hundreds of rows: most of the layout's work) in the frames after it is painted.
    this.firstChart = new Promise((resolve) => { this.chartDrawn = resolve; });
    setTimeout(this.chartDrawn, 1500);  // never hold the rest longer than this
    // Series of the likely key at once, with the key list rather than after it.
    this.key = GUESS_KEY;
    this.fetchSeries();
    this.loadDetail();
    this.loadKeys();
    this.loadLogs();
  },
  leave() {
    this.active = false;
    this.gen++;
    this.logGen++;
    const d = $('confirm-dialog');
    if (d.open) d.close();
  },
  onChange() {                        // SSE `change`: lists again, series and logs since their seq
    if (this.missing) return;
    this.refreshDetail();
    this.loadKeys();
    this.fetchSeries();
    if ($('logs-follow').checked) this.followLogs();
  },

  reset() {
    this.data = null; this.sigs = {}; this.names = new Map(); this.missing = false;
    this.keys = []; this.key = ''; this.series = null; this.emptyShown = false;
    this.keyConfirmed = false; this.seriesFailed = false; this.chartShown = false;
    this.logSeq = null; this.logLast = -1; this.logCount = 0;
    for (const id of ['swarm-name', 'swarm-crumb', 'swarm-iteration', 'swarm-created', 'swarm-updated',
      'swarm-graph', 'training-chart', 'training-legend', 'training-summary', 'logs-list', 'errors-list',
      'placement-iteration', 'action-message']) $(id).textContent = '';
    setText($('swarm-id'), this.id);
    setBadge($('swarm-status'), '…');
    for (const id of ['placement-table', 'history-table']) $(id).tBodies[0].textContent = '';
    for (const id of ['swarm-detail', 'action-message', 'stop-swarm']) $(id).hidden = true;
    $('key-select').textContent = '';
    $('key-select').disabled = true;
    $('logs-node').length = 1;
    $('logs-node').value = '';
    $('logs-iteration').value = '';
    $('logs-search').value = '';
    $('logs-follow').checked = true;
  },

  // ---- header, graph, placement, history, errors (GET /api/swarms/ID)
  async loadDetail() {
    if (!this.active) return;
    const g = this.gen;
    let d;
    try { d = await api.get(this.url()); } catch (e) {
      if (g !== this.gen) return;
      if (e.status === 404) { this.missing = true; setText($('swarm-name'), 'No such swarm'); setBadge($('swarm-status'), '—'); }
      return report(e);
    }
    await this.firstChart;
    if (g !== this.gen) return;
    this.data = d;
    const placed = (d.placement && d.placement.tasks) || [];
    this.addNames(placed.map((t) => [t.node, t.node_alias]));
    draw('swarm-detail', () => this.renderDetail());
  },

  renderDetail() {
    const d = this.data;
    if (!d) return;
    setText($('swarm-name'), d.name || d.id);
    setText($('swarm-crumb'), d.name || d.id);
    setBadge($('swarm-status'), d.status);
    setText($('swarm-iteration'), d.iteration);
    setText($('swarm-created'), fmtTime(d.created_ms));
    setText($('swarm-updated'), fmtTime(d.updated_ms));
    setText($('swarm-detail'), d.detail || '');
    $('swarm-detail').hidden = !d.detail;
    $('stop-swarm').hidden = !(d.status === 'PENDING' || d.status === 'RUNNING');
    const placement = d.placement || { tasks: [] };
    this.once('graph', [d.graph, placement], () => charts.graph($('swarm-graph'), d.graph, placement));
    const g = this.gen;
    afterPaint(() => {
      if (g !== this.gen || this.data !== d) return;
      this.once('placement', placement, () => this.renderPlacement(placement));
      this.once('history', d.history, () => this.renderHistory(d.history || []));
      this.once('errors', d.errors, () => this.renderErrors(d.errors || []));
    });
  },

  once(part, value, fn) {             // redraw a part only when its data changed
    const sig = JSON.stringify(value === undefined ? null : value);
    if (this.sigs[part] !== sig) { this.sigs[part] = sig; fn(); }
  },

  renderPlacement(p) {
    const tasks = (p.tasks || []).slice().sort((a, b) =>
      collator.compare(a.alias, b.alias) || collator.compare(a.node_alias || '', b.node_alias || ''));
    const frag = document.createDocumentFragment();
    for (const t of tasks) {
      const tr = el('tr');
      tr.appendChild(el('td', 'placement-task', t.alias));
      const n = tr.appendChild(el('td', 'placement-node', t.node_alias || shortId(t.node)));
      n.title = t.node || '';
      tr.appendChild(el('td', 'placement-state')).appendChild(badge(t.state));
      frag.appendChild(tr);
    }
    const tbody = $('placement-table').tBodies[0];
    tbody.textContent = '';
    tbody.appendChild(frag);
    setText($('placement-iteration'), p.iteration != null ? 'iteration ' + p.iteration : '');
    $('placement-empty').hidden = tasks.length > 0;
  },

  renderHistory(hist) {
    const frag = document.createDocumentFragment();
    for (const h of hist.slice().sort((a, b) => b.iteration - a.iteration)) {
      const tr = el('tr');
      tr.appendChild(el('td', 'num', h.iteration));
      tr.appendChild(el('td', 'small nowrap', fmtTime(h.start_ms)));
      tr.appendChild(el('td', 'num', fmtDuration(h.end_ms - h.start_ms)));
      tr.appendChild(el('td', 'num', h.instances));
      tr.appendChild(el('td', h.errors ? 'num error-count' : 'num', h.errors));
      frag.appendChild(tr);
    }
    const tbody = $('history-table').tBodies[0];
    tbody.textContent = '';
    tbody.appendChild(frag);
    $('history-empty').hidden = hist.length > 0;
  },

  renderErrors(errors) {
    const frag = document.createDocumentFragment();
    for (const e of errors.slice().sort((a, b) => (b.ts_ms || 0) - (a.ts_ms || 0))) {
      const li = el('li');
      const meta = li.appendChild(el('div', 'log-meta'));
      meta.appendChild(el('span', 'log-node', this.names.get(e.node) || nodesView.alias(e.node) || shortId(e.node))).title = e.node || '';
      meta.appendChild(el('span', 'log-task', e.task));
      meta.appendChild(el('span', 'log-iter', 'iteration ' + e.iteration));
      meta.appendChild(el('time', 'log-time', fmtTime(e.ts_ms)));
      li.appendChild(el('pre', 'log-text', e.text));
      frag.appendChild(li);
    }
    $('errors-list').textContent = '';
    $('errors-list').appendChild(frag);
    $('errors-empty').hidden = errors.length > 0;
  },

  // Node ids → aliases seen in placement, series and logs: options of the logs filter.
  addNames(pairs) {
    let added = false;
    for (const [id, alias] of pairs) {
      if (id && !this.names.has(id)) { this.names.set(id, alias || shortId(id)); added = true; }
    }
    if (!added) return;
    const sel = $('logs-node'), keep = sel.value;
    const frag = document.createDocumentFragment();
    const opt0 = el('option', null, 'All nodes'); opt0.value = ''; frag.appendChild(opt0);
    const all = [...this.names].sort((a, b) => collator.compare(a[1], b[1]));
    for (const [id, alias] of all) { const o = el('option', null, alias); o.value = id; frag.appendChild(o); }
    sel.textContent = '';
    sel.appendChild(frag);
    sel.value = keep;
  },

  // ---- training: keys and series
  async loadKeys() {
    if (!this.active) return;
    const g = this.gen;
    let d;
    try { d = await api.get(this.url('/keys')); } catch (e) { this.chartDrawn(); return report(e); }
    if (g !== this.gen) return;
    const keys = Array.isArray(d.keys) ? d.keys : [];
    if (keys.join('\n') !== this.keys.join('\n')) { this.keys = keys; this.renderKeys(); }
    if (this.key && keys.includes(this.key)) {
      if (!this.keyConfirmed) {       // the guess was right: show (or fetch again) what it got
        this.keyConfirmed = true;
        if (this.seriesFailed) { this.seriesFailed = false; this.fetchSeries(); }
        else if (this.series && !this.chartShown) draw('chart', () => this.drawChart());
      }
      return;
    }
    const k = keys.includes(GUESS_KEY) ? GUESS_KEY : (keys[0] || '');
    this.keyConfirmed = true;
    this.seriesFailed = false;
    if (k) {                          // first key seen (or the shown one is gone)
      this.key = k;
      this.series = null;
      $('key-select').value = k;
      this.fetchSeries();
    } else if (this.key || !this.emptyShown) {
      this.key = '';
      this.series = null;
      this.emptyShown = true;
      draw('chart', () => this.drawChart());
    }
  },

  renderKeys() {
    const sel = $('key-select');
    const frag = document.createDocumentFragment();
    for (const k of this.keys) { const o = el('option', null, k); o.value = k; frag.appendChild(o); }
    if (!this.keys.length) { const o = el('option', null, 'No numeric result yet'); o.value = ''; frag.appendChild(o); }
    sel.textContent = '';
    sel.appendChild(frag);
    sel.disabled = !this.keys.length;
    sel.value = this.key;
  },

  // Full series the first time (or after a key change), then only what came after `seq`.
  async loadSeries() {
    const g = this.gen, key = this.key;
    if (!key || !this.active) return;
    const s = this.series && this.series.key === key ? this.series : null;
    let q = '/series?key=' + encodeURIComponent(key);
    if (s) q += '&after=' + encodeURIComponent(s.seq);
    let d;
    try { d = await api.get(this.url(q)); } catch (e) {
      if (g !== this.gen) return;
      if (!this.keyConfirmed) { this.seriesFailed = true; return; }   // a guess: the keys decide
      this.chartDrawn();
      return report(e);
    }
    if (g !== this.gen || key !== this.key) return;
    if (s) {
      if (this.series !== s) return;
      if (!mergeSeries(s, d)) return;
    } else {
      if (this.series) return;
      this.series = newSeries(key, d);
    }
    this.addNames([...this.series.nodes].map(([id, n]) => [id, n.alias]));
    if (!this.keyConfirmed && !this.series.mean.length && !this.series.nodes.size) return;  // wait for the keys
    draw('chart', () => this.drawChart());
  },

  drawChart() {
    const s = this.series;
    const n = charts.line($('training-chart'), $('training-legend'), s, this.key);
    const last = s && s.mean.length ? s.mean[s.mean.length - 1] : null;
    setText($('training-summary'), last ? `mean at iteration ${last[0]}: ${fmtNum(last[1])} · ${s.nodes.size} nodes · ${n} iterations` : '');
    this.chartShown = true;
    this.chartDrawn();
  },

  // ---- logs
  logParams() {
    const p = new URLSearchParams();
    const node = $('logs-node').value, it = $('logs-iteration').value.trim(), q = $('logs-search').value.trim();
    if (node) p.set('node', node);
    if (/^\d+$/.test(it)) p.set('iteration', it);
    if (q) p.set('q', q);
    return p;
  },

  async loadLogs() {                  // from scratch (first view, filters changed)
    if (!this.active) return;
    const g = this.gen, lg = ++this.logGen;
    const p = this.logParams();
    let d;
    try { d = await api.get(this.url('/logs' + (String(p) ? '?' + p : ''))); } catch (e) { return report(e); }
    await this.firstChart;
    await new Promise((resolve) => afterPaint(resolve));
    if (g !== this.gen || lg !== this.logGen) return;
    $('logs-list').textContent = '';
    this.logLast = -1;
    this.logCount = 0;
    this.logSeq = d.seq;
    this.appendLogs(d.logs || []);
  },

  async loadLogsAfter() {             // follow: only logs stored after the last answer's seq
    if (this.logSeq == null || !this.active) return;
    const g = this.gen, lg = this.logGen;
    const p = this.logParams();
    p.set('after', this.logSeq);
    p.set('limit', '2000');
    let d;
    try { d = await api.get(this.url('/logs?' + p)); } catch (e) { return report(e); }
    if (g !== this.gen || lg !== this.logGen) return;
    if (typeof d.seq === 'number' && d.seq > this.logSeq) this.logSeq = d.seq;
    if (d.logs && d.logs.length) this.appendLogs(d.logs);
  },

  appendLogs(logs) {
    const list = $('logs-list');
    const frag = document.createDocumentFragment();
    const pairs = [];
    for (const l of logs) {
      if (typeof l.seq === 'number' && l.seq <= this.logLast) continue;   // already shown
      if (typeof l.seq === 'number') this.logLast = l.seq;
      const div = el('div', 'log-entry');
      div.dataset.seq = l.seq;
      const meta = div.appendChild(el('div', 'log-meta'));
      meta.appendChild(el('span', 'log-node', l.node_alias || shortId(l.node))).title = l.node || '';
      meta.appendChild(el('span', 'log-task', l.task));
      meta.appendChild(el('span', 'log-iter', 'iteration ' + l.iteration));
      const t = meta.appendChild(el('time', 'log-time', fmtClock(l.ts_ms)));
      t.title = fmtTime(l.ts_ms);
      div.appendChild(el('pre', 'log-text', l.text));
      frag.appendChild(div);
      pairs.push([l.node, l.node_alias]);
      this.logCount++;
    }
    list.appendChild(frag);
    while (this.logCount > LOGS_MAX && list.firstChild) { list.firstChild.remove(); this.logCount--; }
    $('logs-empty').hidden = this.logCount > 0;
    this.addNames(pairs);
    if ($('logs-follow').checked && pairs.length) this.scrollLogs();
  },

  // Scroll to the newest log in the next frame, when layout is done anyway (no forced layout now).
  scrollLogs() {
    if (this.scrollPending) return;
    this.scrollPending = true;
    requestAnimationFrame(() => {
      this.scrollPending = false;
      const list = $('logs-list');
      list.scrollTop = list.scrollHeight;
    });
  },

  // ---- stopping
  confirmStop() {
    const d = this.data;
    if (!d) return;
    $('confirm-text').textContent = `Stop swarm ${d.name || ''} (${d.id})? Its tasks are stopped on every node.`;
    $('confirm-yes').disabled = false;
    $('confirm-dialog').showModal();
    $('confirm-no').focus();
  },

  async stop() {
    const g = this.gen, id = this.id;
    $('confirm-yes').disabled = true;
    $('confirm-dialog').close();
    const msg = $('action-message');
    try {
      const r = await api.post('/api/swarms/' + encodeURIComponent(id) + '/stop');
      if (g !== this.gen) return;
      msg.className = 'notice ok';
      msg.textContent = r.message || 'The swarm has stopped.';
    } catch (e) {
      if (e.status === 401 || g !== this.gen) return;
      msg.className = 'notice error';
      msg.textContent = e.message;
    }
    msg.hidden = false;
    this.loadDetail();
  },
};

// Series: { key, seq, nodes: Map(id → {alias, pts: [[it, v]] by iteration}), mean: [[it, v]] }
function newSeries(key, d) {
  const s = { key, seq: 0, nodes: new Map(), mean: [] };
  mergeSeries(s, d);
  return s;
}
function upsert(arr, it, v) {        // keeps arr sorted by iteration; same iteration replaces
  let i = arr.length - 1;
  if (i < 0 || arr[i][0] < it) { arr.push([it, v]); return; }
  while (i >= 0 && arr[i][0] > it) i--;
  if (i >= 0 && arr[i][0] === it) arr[i][1] = v; else arr.splice(i + 1, 0, [it, v]);
}
function mergeSeries(s, d) {          // returns whether anything changed
  let changed = false;
  if (typeof d.seq === 'number') s.seq = d.seq;
  for (const n of d.nodes || []) {
    let line = s.nodes.get(n.node);
    if (!line) { line = { alias: n.alias || shortId(n.node), pts: [] }; s.nodes.set(n.node, line); changed = true; }
    for (const p of n.points || []) {
      if (typeof p[1] !== 'number' || !isFinite(p[1])) continue;
      const last = line.pts[line.pts.length - 1];
      if (!last || last[0] < p[0]) line.pts.push(p); else upsert(line.pts, p[0], p[1]);   // appending is the usual case
      changed = true;
    }
  }
  for (const p of d.mean || []) {
    if (typeof p[1] === 'number' && isFinite(p[1])) { upsert(s.mean, p[0], p[1]); changed = true; }
  }
  return changed;
}

// ===================================================================== charts

const charts = {
  colour(i) { return `hsl(${Math.round((i * 137.508) % 360)}, 62%, 46%)`; },

  // "x,y x,y …" of one column of a node's history, over the 10 minutes before `now`.
  sparkPoints(hist, col, now) {
    const t0 = now - 600000, out = [];
    for (const h of hist) {
      const v = h[col];
      if (typeof v !== 'number' || h[0] < t0) continue;
      // tenths of a pixel, without toFixed (200 rows × 2 lines × 120 samples on a page load)
      const x = Math.round(((h[0] - t0) / 600000) * 1200) / 10;
      out.push(x + ',' + Math.round(270 - Math.min(100, Math.max(0, v)) * 2.6) / 10);
    }
    return out.join(' ');
  },

  // Round tick values covering [lo, hi]; integer ticks only when `integer`.
  ticks(lo, hi, count, integer) {
    if (!(hi > lo)) { const pad = Math.abs(lo) * 0.1 || 1; lo -= pad; hi += pad; }
    let step = Math.pow(10, Math.floor(Math.log10((hi - lo) / count)));
    const err = (hi - lo) / count / step;
    step *= err >= 7.5 ? 10 : err >= 3.5 ? 5 : err >= 1.5 ? 2 : 1;
    if (integer) step = Math.max(1, Math.round(step));
    const start = Math.floor(lo / step) * step, end = Math.ceil(hi / step) * step;
    const out = [];
    for (let v = start; v <= end + step * 1e-9; v += step) out.push(+v.toPrecision(12));
    return out;
  },

  // Line chart of a series: one thin polyline per node, a thick mean; returns the mean's point count.
  line(box, legend, s, key) {
    const W = 960, H = 340, L = 60, R = 16, T = 14, B = 40;
    // The <svg> element itself is kept across redraws (only its content is replaced).
    let root = box.querySelector('svg.chart');
    if (root) root.textContent = '';
    else root = svgEl('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img' });
    root.classList.remove('dim');
    root.setAttribute('data-key', key || '');
    const nodes = s ? [...s.nodes].sort((a, b) => collator.compare(a[1].alias, b[1].alias)) : [];
    const mean = s ? s.mean : [];
    let xMin = Infinity, xMax = -Infinity, yMin = Infinity, yMax = -Infinity;
    const scan = (pts) => {
      for (const p of pts) {
        if (p[0] < xMin) xMin = p[0]; if (p[0] > xMax) xMax = p[0];
        if (p[1] < yMin) yMin = p[1]; if (p[1] > yMax) yMax = p[1];
      }
    };
    for (const [, n] of nodes) scan(n.pts);
    scan(mean);
    root.setAttribute('data-iterations', String(mean.length));
    root.setAttribute('aria-label', `${key || 'no result'}: ${mean.length} iterations`);
    legend.textContent = '';
    this.lines = new Map();
    this.root = root;
    if (root.parentNode !== box) { box.textContent = ''; box.appendChild(root); }
    if (xMin === Infinity) {
      const t = root.appendChild(svgEl('text', { x: W / 2, y: H / 2, class: 'chart-empty', 'text-anchor': 'middle' }));
      t.textContent = key ? 'No value of ' + key + ' yet.' : 'The swarm has no numeric result yet.';
      return 0;
    }
    const xt = this.ticks(xMin, xMax === xMin ? xMin + 1 : xMax, 10, true);
    const yt = this.ticks(yMin, yMax, 6, false);
    const x0 = xt[0], x1 = xt[xt.length - 1], y0 = yt[0], y1 = yt[yt.length - 1];
    const sx = (W - L - R) / (x1 - x0 || 1), sy = (H - T - B) / (y1 - y0 || 1);
    const X = (v) => Math.round((L + (v - x0) * sx) * 10) / 10, Y = (v) => Math.round((H - B - (v - y0) * sy) * 10) / 10;
    // axes, grid and ticks
    const grid = root.appendChild(svgEl('g', { class: 'grid' }));
    const labels = root.appendChild(svgEl('g', { class: 'tick-labels' }));
    for (const v of yt) {
      grid.appendChild(svgEl('line', { x1: L, x2: W - R, y1: Y(v), y2: Y(v) }));
      labels.appendChild(svgEl('text', { x: L - 6, y: Y(v), dy: '0.32em', 'text-anchor': 'end' })).textContent = fmtNum(v);
    }
    for (const v of xt) {
      grid.appendChild(svgEl('line', { x1: X(v), x2: X(v), y1: T, y2: H - B, class: 'vgrid' }));
      labels.appendChild(svgEl('text', { x: X(v), y: H - B + 16, 'text-anchor': 'middle' })).textContent = String(v);
    }
    root.appendChild(svgEl('path', { class: 'axis', d: `M${L},${T}V${H - B}H${W - R}` }));
    root.appendChild(svgEl('text', { x: (L + W - R) / 2, y: H - 6, class: 'axis-label', 'text-anchor': 'middle' })).textContent = 'iteration';
    // one polyline per node; a lone point is drawn as a zero-length round-capped segment
    const pointsOf = (pts) => {
      const out = new Array(pts.length);
      for (let i = 0; i < pts.length; i++) out[i] = X(pts[i][0]) + ',' + Y(pts[i][1]);
      return pts.length === 1 ? out[0] + ' ' + out[0] : out.join(' ');
    };
    const g = root.appendChild(svgEl('g', { class: 'node-lines' }));
    const frag = document.createDocumentFragment();
    const meanItem = frag.appendChild(el('span', 'legend-item legend-mean'));
    meanItem.appendChild(el('span', 'swatch'));
    meanItem.appendChild(document.createTextNode('mean'));
    nodes.forEach(([id, n], i) => {
      const c = this.colour(i);
      const pl = g.appendChild(svgEl('polyline', { class: 'node-line', stroke: c, points: pointsOf(n.pts) }));
      pl.appendChild(svgEl('title')).textContent = n.alias;
      this.lines.set(id, pl);
      const item = frag.appendChild(el('span', 'legend-item'));
      item.dataset.node = id;
      item.appendChild(el('span', 'swatch')).style.background = c;
      item.appendChild(document.createTextNode(n.alias));
    });
    const ml = root.appendChild(svgEl('polyline', { class: 'mean-line', points: pointsOf(mean) }));
    ml.appendChild(svgEl('title')).textContent = 'mean';
    legend.appendChild(frag);
    return mean.length;
  },

  // Hovering a legend entry brings its line forward.
  legendHover(legend) {
    let on = null;
    const off = () => { if (on) on.classList.remove('hl'); if (this.root) this.root.classList.remove('dim'); on = null; };
    legend.addEventListener('mouseover', (ev) => {
      const item = ev.target.closest('.legend-item[data-node]');
      const pl = item && this.lines && this.lines.get(item.dataset.node);
      if (pl === on) return;
      off();
      if (!pl) return;
      on = pl;
      pl.classList.add('hl');
      pl.parentNode.appendChild(pl);
      this.root.classList.add('dim');
    });
    legend.addEventListener('mouseleave', off);
  },

  // Task graph: boxes in columns by `order`, edges as arrows; box colour from the placement.
  graph(box, graph, placement) {
    box.textContent = '';
    const tasks = (graph && graph.tasks) || [];
    if (!tasks.length) { box.appendChild(el('p', 'empty', 'No graph.')); return; }
    const BW = 180, BH = 58, CG = 70, RG = 18, P = 14;
    const orders = [...new Set(tasks.map((t) => t.order || 0))].sort((a, b) => a - b);
    const cols = orders.map((o) => tasks.filter((t) => (t.order || 0) === o));
    const rows = Math.max(...cols.map((c) => c.length));
    const pos = new Map();
    cols.forEach((col, ci) => col.forEach((t, ri) => {
      const off = ((rows - col.length) * (BH + RG)) / 2;    // centre short columns
      pos.set(t.alias, { x: P + ci * (BW + CG), y: P + off + ri * (BH + RG), col: ci });
    }));
    const edges = ((graph && graph.edges) || []).filter((e) => pos.has(e.from) && pos.has(e.to));
    const back = edges.some((e) => pos.get(e.to).col <= pos.get(e.from).col);
    const W = P * 2 + cols.length * BW + (cols.length - 1) * CG;
    const H = P * 2 + rows * BH + (rows - 1) * RG + (back ? 44 : 0);
    const root = svgEl('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: 'task-graph', role: 'img' });
    root.setAttribute('aria-label', `${tasks.length} tasks, ${edges.length} edges`);
    const marker = root.appendChild(svgEl('defs')).appendChild(svgEl('marker', {
      id: 'graph-arrow', viewBox: '0 0 10 10', refX: '9', refY: '5', markerWidth: '7', markerHeight: '7', orient: 'auto-start-reverse' }));
    marker.appendChild(svgEl('path', { d: 'M0,0L10,5L0,10z', class: 'arrow-head' }));
    const eg = root.appendChild(svgEl('g', { class: 'edges' }));
    for (const e of edges) {
      const a = pos.get(e.from), b = pos.get(e.to);
      let d;
      if (b.col > a.col) {
        const x1 = a.x + BW, y1 = a.y + BH / 2, x2 = b.x, y2 = b.y + BH / 2, dx = (x2 - x1) / 2;
        d = `M${x1},${y1}C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`;
      } else {                        // backwards or same column: loop under the boxes
        const x1 = a.x + BW / 2, y1 = a.y + BH, x2 = b.x + BW / 2 + 8, y2 = b.y + BH, low = H - 6;
        d = `M${x1},${y1}C${x1},${low} ${x2},${low} ${x2},${y2}`;
      }
      eg.appendChild(svgEl('path', { d, class: 'edge', 'marker-end': 'url(#graph-arrow)' }))
        .appendChild(svgEl('title')).textContent = `${e.from} → ${e.to}`;
    }
    // instances and states per task alias in the current iteration
    const states = new Map();
    for (const t of (placement && placement.tasks) || []) {
      const m = states.get(t.alias) || new Map();
      m.set(t.state, (m.get(t.state) || 0) + 1);
      states.set(t.alias, m);
    }
    const clip = (s, n) => (s.length > n ? s.slice(0, n - 1) + '…' : s);
    for (const t of tasks) {
      const p = pos.get(t.alias), st = states.get(t.alias);
      let cls = 'task-box';
      if (st) cls += st.has('FAILED') ? ' st-failed' : st.has('RUNNING') || st.has('DEPLOYED') ? ' st-running'
        : st.has('DONE') && st.size === 1 ? ' st-done' : ' st-other';
      const g = root.appendChild(svgEl('g', { class: cls, transform: `translate(${p.x},${p.y})` }));
      g.appendChild(svgEl('rect', { width: BW, height: BH, rx: 7 }));
      g.appendChild(svgEl('text', { x: 10, y: 19, class: 'task-alias' })).textContent = clip(t.alias, 22);
      const sub = [t.name !== t.alias ? t.name : '', t.method, t.gpu ? 'GPU' : ''].filter(Boolean).join(' · ');
      g.appendChild(svgEl('text', { x: 10, y: 35, class: 'task-sub' })).textContent = clip(sub, 28);
      let n = 0; if (st) for (const c of st.values()) n += c;
      const third = [(t.datasets || []).join(', '), st ? n + ' placed' : ''].filter(Boolean).join(' · ');
      g.appendChild(svgEl('text', { x: 10, y: 50, class: 'task-sub' })).textContent = clip(third, 28);
      const tip = [t.alias, 'task ' + t.name, 'method ' + t.method, 'datasets ' + ((t.datasets || []).join(', ') || '—'),
        t.gpu ? 'GPU' : 'no GPU', st ? [...st].map(([k, v]) => v + ' ' + k).join(', ') : 'not placed'];
      g.appendChild(svgEl('title')).textContent = tip.join('\n');
    }
    box.appendChild(root);
  },
};

// ===================================================================== live

// One EventSource while signed in; `change` refreshes the current view, `nodes` feeds the node rows.
const live = {
  es: null,
  opened: false,
  checking: false,
  pendingChange: false,
  reopenTimer: null,

  start() {
    if (this.es) return;
    const es = new EventSource('/api/events');
    this.es = es;
    es.addEventListener('open', () => {
      this.setState(true);
      if (this.opened) this.change();   // a reconnect may have missed changes
      this.opened = true;
    });
    es.addEventListener('change', () => this.change());
    es.addEventListener('nodes', (ev) => {
      let d;
      try { d = JSON.parse(ev.data); } catch (e) { return; }
      nodesView.ingest(d, false);
    });
    es.addEventListener('error', () => this.onError(es));
  },

  stop() {
    clearTimeout(this.reopenTimer);
    if (this.es) this.es.close();
    this.es = null;
    this.opened = false;
    this.pendingChange = false;
    this.setState(false);
  },

  change() {
    if (!auth.signedIn) return;
    if (document.hidden) { this.pendingChange = true; return; }
    if (router.view) router.view.onChange();
  },

  // EventSource reconnects by itself; ask whether the session still holds.
  async onError(es) {
    this.setState(false);
    if (this.checking || es !== this.es) return;
    this.checking = true;
    try {
      await api.get('/api/session');
      if (es === this.es && es.readyState === EventSource.CLOSED) {   // refused for good: open anew later
        clearTimeout(this.reopenTimer);
        this.reopenTimer = setTimeout(() => {
          if (es !== this.es) return;
          this.es = null;
          this.start();
          this.opened = true;           // so its `open` refreshes what was missed
        }, 5000);
      }
    } catch (e) {
      if (e.status === 401) auth.ended();
    } finally { this.checking = false; }
  },

  setState(on) {
    const s = $('live-state');
    s.classList.toggle('on', on);
    s.title = on ? 'Live updates: connected' : 'Live updates: disconnected';
  },
};

// A page kept in the back/forward cache must not keep its live stream (and a connection) open.
window.addEventListener('pagehide', (ev) => { if (ev.persisted) live.stop(); });
window.addEventListener('pageshow', (ev) => {
  if (!ev.persisted || !auth.signedIn) return;
  live.start();
  live.opened = true;                 // so its `open` refreshes what was missed
});

document.addEventListener('visibilitychange', () => {
  if (document.hidden) return;
  flushDraws();
  if (live.pendingChange) { live.pendingChange = false; live.change(); }
});

// ===================================================================== boot

auth.init();
swarmsView.init();
swarmView.init();
window.addEventListener('hashchange', () => router.route());
auth.check();

})();
