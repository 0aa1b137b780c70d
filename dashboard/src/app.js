// The dashboard page (README: Dashboard): polls the server's
// /dashboard/api/* and draws what it answers. Pipelines' GStreamer graphs
// (getGstreamerDot) are laid out by Graphviz compiled to WebAssembly
// (@viz-js/viz) and shown as SVG; per-endpoint bitrate, packet loss and RTT
// are plotted with uPlot from counters sampled every second.
//
// For tests and curious people the page exposes what it drew:
// `.graph[data-pipeline][data-nodes]` (nodes in the SVG) and
// `.endpoint[data-endpoint][data-points]` (samples plotted) with the last
// plotted bitrates in `data-kbps-in`/`data-kbps-out`.
import { instance as vizInstance } from '@viz-js/viz';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './style.css';

const STATS_EVERY_MS = 1000;
const OVERVIEW_EVERY_MS = 2000;
const DOT_EVERY_MS = 5000;
/** Samples kept per endpoint (5 minutes at one a second). */
const KEEP = 300;

const token = new URLSearchParams(location.search).get('access_token');
const headers = token ? { Authorization: `Bearer ${token}` } : {};

function api(path) {
  return fetch(`api/${path}`, { headers, cache: 'no-store' }).then((r) => {
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
    return r;
  });
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function setStatus(text, error = false) {
  const s = document.getElementById('status');
  s.textContent = text;
  s.classList.toggle('error', error);
}

// ---- pipelines and their graphs -------------------------------------------

let viz = null;
const vizReady = vizInstance().then((v) => { viz = v; });
/** pipeline id → { card, graph, endpoints, dot, dotAt, elementKey } */
const cards = new Map();

function renderPipelines(overview) {
  const root = document.getElementById('pipelines');
  const seen = new Set();
  for (const p of overview.pipelines) {
    seen.add(p.id);
    let c = cards.get(p.id);
    if (!c) {
      const graph = el('div', { class: 'graph', 'data-pipeline': p.id },
        el('div', { class: 'note muted' }, 'drawing the graph…'));
      const card = el('div', { class: 'pipeline', 'data-pipeline': p.id });
      c = { card, graph, head: el('div'), list: el('div'), endpoints: el('div'), dot: null, dotAt: 0, elementKey: '' };
      card.append(c.head, zoomBar(graph), c.graph, c.list, c.endpoints);
      root.append(card);
      cards.set(p.id, c);
    }
    c.head.replaceChildren(
      el('h3', {}, `MediaPipeline ${p.name && p.name !== p.id ? `“${p.name}” ` : ''}`, el('code', {}, p.id)),
      el('div', { class: 'muted' }, `sessions: ${p.sessions.length ? p.sessions.join(', ') : 'none'}`),
    );
    const rows = p.elements.map((e) => el('tr', {},
      el('td', {}, e.class), el('td', {}, el('code', {}, e.id)), el('td', {}, e.name !== e.id ? e.name : '')));
    c.list.replaceChildren(el('table', {},
      el('thead', {}, el('tr', {}, el('th', {}, `Elements (${p.elements.length})`), el('th', {}, 'Id'), el('th', {}, 'Name'))),
      el('tbody', {}, ...rows)));
    const key = p.elements.map((e) => e.id).join(',');
    if (key !== c.elementKey || Date.now() - c.dotAt > DOT_EVERY_MS) {
      c.elementKey = key;
      c.dotAt = Date.now();
      drawGraph(p.id, c).catch((e) => console.warn('graph', p.id, e));
    }
  }
  for (const [id, c] of cards) {
    if (!seen.has(id)) { c.card.remove(); cards.delete(id); }
  }
}

/** Fit to the width, or a multiple of it (the graph scrolls). */
function zoomBar(graph) {
  const bar = el('div', { class: 'zoom' }, el('span', { class: 'muted' }, 'GStreamer graph (getGstreamerDot): '));
  for (const [label, width] of [['fit', '100%'], ['2×', '200%'], ['4×', '400%'], ['8×', '800%']]) {
    const b = el('button', { type: 'button' }, label);
    b.addEventListener('click', () => {
      graph.style.setProperty('--graph-width', width);
      for (const x of bar.querySelectorAll('button')) x.classList.toggle('on', x === b);
    });
    if (width === '100%') b.classList.add('on');
    bar.append(b);
  }
  return bar;
}

async function drawGraph(id, c) {
  const dot = await (await api(`dot?pipeline=${encodeURIComponent(id)}`)).text();
  if (dot === c.dot) return;
  await vizReady;
  let svg;
  try {
    svg = viz.renderSVGElement(dot);
  } catch (e) {
    c.graph.replaceChildren(el('div', { class: 'note' }, `Graphviz could not lay out this graph: ${e.message}`));
    return;
  }
  c.dot = dot;
  // Graphviz sizes the SVG in points; the page scales it (viewBox kept).
  svg.removeAttribute('width');
  svg.removeAttribute('height');
  c.graph.replaceChildren(svg);
  c.graph.dataset.nodes = String(svg.querySelectorAll('g.node').length);
}

// ---- sessions -------------------------------------------------------------

function renderSessions(overview) {
  const byPipeline = new Map();
  for (const p of overview.pipelines) for (const s of p.sessions) byPipeline.set(s, (byPipeline.get(s) || 0) + 1);
  const rows = overview.sessions.map((s) => el('tr', {},
    el('td', {}, el('code', {}, s.id)),
    el('td', {}, s.connected ? 'connected' : 'waiting for reconnection'),
    el('td', {}, String(byPipeline.get(s.id) || 0))));
  if (!rows.length) rows.push(el('tr', {}, el('td', { class: 'muted', colspan: '3' }, 'no sessions')));
  document.querySelector('#sessions tbody').replaceChildren(...rows);
}

// ---- endpoint plots -------------------------------------------------------

/** endpoint id → { box, last, data: [t, ...series], plots } */
const endpoints = new Map();

const PLOTS = [
  { title: 'Bitrate (kbit/s)', series: [['in', '#1f77b4'], ['out', '#ff7f0e', [6, 4]]] },
  { title: 'Packets lost (per second)', series: [['in', '#d62728'], ['reported by peer', '#9467bd']] },
  { title: 'RTT (ms)', series: [['rtt', '#2ca02c']] },
];

function newEndpoint(e) {
  const box = el('div', { class: 'endpoint', 'data-endpoint': e.id, 'data-points': '0' },
    el('h4', {}, `${e.class} `, el('code', {}, e.id)));
  const charts = el('div', { class: 'charts' });
  box.append(charts);
  const data = [[], [], [], [], [], []];
  const plots = PLOTS.map((p) => {
    const target = el('div', { class: 'chart' });
    charts.append(target);
    return new uPlot({
      title: p.title, width: 340, height: 170,
      scales: { x: { time: true } },
      legend: { live: false },
      series: [{}, ...p.series.map(([label, stroke, dash]) => ({ label, stroke, dash, width: 1.5, spanGaps: true }))],
      axes: [{}, { size: 50 }],
    }, [[], ...p.series.map(() => [])], target);
  });
  return { box, last: null, data, plots, pipeline: e.pipeline };
}

function addSample(ep, t, e) {
  const last = ep.last;
  ep.last = { t, e };
  if (!last) return;
  const dt = (t - last.t) / 1000;
  if (dt <= 0) return;
  const rate = (a, b) => Math.max(0, (a - b) / dt);
  const d = ep.data;
  d[0].push(t / 1000);
  d[1].push(rate(e.bytesIn, last.e.bytesIn) * 8 / 1000);
  d[2].push(rate(e.bytesOut, last.e.bytesOut) * 8 / 1000);
  d[3].push(rate(e.packetsLostIn, last.e.packetsLostIn));
  d[4].push(rate(e.packetsLostOut, last.e.packetsLostOut));
  d[5].push(e.rttMs == null ? null : e.rttMs);
  if (d[0].length > KEEP) for (const s of d) s.shift();
  ep.plots[0].setData([d[0], d[1], d[2]]);
  ep.plots[1].setData([d[0], d[3], d[4]]);
  ep.plots[2].setData([d[0], d[5]]);
  ep.box.dataset.points = String(d[0].length);
  ep.box.dataset.kbpsIn = d[1][d[1].length - 1].toFixed(0);
  ep.box.dataset.kbpsOut = d[2][d[2].length - 1].toFixed(0);
}

function renderStats(reply) {
  const seen = new Set();
  for (const e of reply.endpoints) {
    seen.add(e.id);
    let ep = endpoints.get(e.id);
    if (!ep) { ep = newEndpoint(e); endpoints.set(e.id, ep); }
    const c = cards.get(e.pipeline);
    if (c && ep.box.parentNode !== c.endpoints) c.endpoints.append(ep.box);
    addSample(ep, reply.t, e);
  }
  for (const [id, ep] of endpoints) {
    if (!seen.has(id)) { ep.plots.forEach((p) => p.destroy()); ep.box.remove(); endpoints.delete(id); }
  }
}

// ---- polling --------------------------------------------------------------

function every(ms, fn) {
  const run = async () => {
    try { await fn(); } catch (e) { setStatus(String(e.message || e), true); }
    setTimeout(run, ms);
  };
  run();
}

every(OVERVIEW_EVERY_MS, async () => {
  const overview = await (await api('overview')).json();
  renderSessions(overview);
  renderPipelines(overview);
  setStatus(`server ${overview.serverId} · ${overview.sessions.length} sessions · ` +
    `${overview.pipelines.length} pipelines · updated ${new Date().toLocaleTimeString()}`);
});

every(STATS_EVERY_MS, async () => {
  renderStats(await (await api('stats')).json());
});
