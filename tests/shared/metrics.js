// Reads a server's /metrics and parses it with a real Prometheus text
// parser (Python's prometheus_client, Debian python3-prometheus-client),
// and checks it with `promtool check metrics` when Debian's prometheus
// package is installed.
'use strict';

const { spawnSync } = require('node:child_process');
const http = require('node:http');

const PARSER = `
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        out.setdefault(s.name, []).append({"labels": s.labels, "value": s.value})
print(json.dumps(out))
`;

function get(port, path, headers = {}) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    }).on('error', reject);
  });
}

/** Parsed samples: name → [{ labels, value }]. Throws if the text does not
 * parse. */
function parse(text) {
  const r = spawnSync('/usr/bin/python3', ['-c', PARSER], { input: text });
  if (r.status !== 0) throw new Error(`prometheus_client could not parse /metrics: ${r.stderr}`);
  return JSON.parse(r.stdout.toString());
}

/** `promtool check metrics` output, or null without promtool. */
function promtool(text) {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text });
  if (r.error) return null;
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** The value of one sample (labels must match the given ones), or
 * undefined. */
function value(samples, name, labels = {}) {
  const hit = (samples[name] || []).find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return hit ? hit.value : undefined;
}

async function scrape(port, headers) {
  const r = await get(port, '/metrics', headers);
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
  return { text: r.body, samples: parse(r.body), contentType: r.headers['content-type'] };
}

module.exports = { get, parse, promtool, value, scrape };
