// Server process measurements for the benchmarks (bench-*.js): CPU from
// utime+stime in /proc/<pid>/stat, RSS and threads from /proc/<pid>/status.
'use strict';

const fs = require('node:fs');

const TICK = 100; // USER_HZ

function cpuTicks(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]);
}

function status(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return { rssMiB: Number(/VmRSS:\s+(\d+)/.exec(s)[1]) / 1024, threads: Number(/Threads:\s+(\d+)/.exec(s)[1]) };
}

/** Percent of one core the process used over `secs`. */
async function cpuOver(pid, secs) {
  const t0 = cpuTicks(pid);
  await new Promise((r) => setTimeout(r, secs * 1000));
  return ((cpuTicks(pid) - t0) / TICK / secs) * 100;
}

module.exports = { cpuTicks, status, cpuOver };
