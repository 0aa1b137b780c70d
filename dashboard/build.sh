#!/usr/bin/env bash
# Builds the dashboard page (README: Dashboard) into dashboard/dist/:
# index.html, dashboard.js (the page's code with uPlot and Graphviz — viz.js,
# WebAssembly inlined — bundled by esbuild: nothing is loaded from a CDN) and
# dashboard.css. Needs Node.js and npm (ci/setup.sh --with-tests installs
# them); the server build does not. The server serves this directory when
# mediaServer.net.websocket.dashboard.enabled is true (assets: another copy).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
if [[ ! -x node_modules/.bin/esbuild || ! -d node_modules/uplot || ! -d node_modules/@viz-js/viz ]]; then
  npm ci --ignore-scripts --no-audit --no-fund >/dev/null
fi
rm -rf dist.tmp
mkdir -p dist.tmp
node_modules/.bin/esbuild src/app.js --bundle --minify --format=iife --platform=browser \
  --target=chrome100,firefox100,safari15 --outfile=dist.tmp/dashboard.js --log-level=warning
cp src/index.html dist.tmp/index.html
rm -rf dist
mv dist.tmp dist
echo "dashboard built: $here/dist ($(du -sh dist | cut -f1))"
