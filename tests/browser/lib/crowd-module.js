// An extra module's JS client (crowddetector, platedetector), generated now
// by kurento-module-creator from crates/kms-<name>/kmd and registered into
// the harness's kurento-client, as an application registers
// kurento-module-<name>. Used by crowddetector.test.js, platedetector.test.js
// and bench-modules.js.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..', '..', '..');

/** Generates and registers the module `name` (a crate
 * crates/kms-<name>); returns the directory to remove. */
function register(h, name = 'crowddetector') {
  let creator = path.join(path.dirname(h.BIN), 'kurento-module-creator');
  if (!fs.existsSync(creator)) {
    execFileSync('cargo', ['build', '-q', '-p', 'module-creator'], { cwd: ROOT, stdio: 'inherit' });
    creator = path.join(ROOT, 'target', 'debug', 'kurento-module-creator');
  }
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-crowd-js-'));
  execFileSync(creator, ['-r', path.join(ROOT, 'crates', `kms-${name}`, 'kmd'), '-c', out, '--js']);
  const dir = path.join(out, name);
  // It require()s kurento-client as an application's node_modules would
  // provide it: the instance the harness uses.
  fs.symlinkSync(path.join(__dirname, '..', 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  h.kurentoClient.register(require(dir));
  return out;
}

/** Builders for the module's complex types (the client checks that
 * parameters are instances of them). */
function types(h) {
  const type = (name) => h.kurentoClient.getComplexType(name);
  const point = (x, y) => type('RelativePoint')({ x, y });
  const rect = (x0, y0, x1, y1) => [point(x0, y0), point(x1, y0), point(x1, y1), point(x0, y1)];
  const roi = (id, points, config) =>
    type('RegionOfInterest')({ id, points, regionOfInterestConfig: type('RegionOfInterestConfig')(config) });
  return { point, rect, roi };
}

module.exports = { register, types };
