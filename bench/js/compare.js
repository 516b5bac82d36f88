// SPDX-License-Identifier: Apache-2.0
// Compares bench/fhirpath_bench (our engine) with fhirpath.js 5.2.2 on bench/fhirpath_cases.json.
// Both sides: expression compiled once, then evaluated on the parsed resource; median of
// 3 runs of at least 1 s each. Figures are CPU time per evaluation (Google Benchmark cpu_time;
// process.cpuUsage() for Node, which also counts V8's helper threads), because wall time on a
// shared machine mostly measures the other processes; wall-time ratios are printed too.
// Usage: node bench/js/compare.js BUILD_DIR/bin/fhirpath_bench
'use strict';
const {execFileSync} = require('child_process');
const path = require('path');

const benchBinary = process.argv[2];
if (!benchBinary) {
  console.error('usage: node bench/js/compare.js BUILD_DIR/bin/fhirpath_bench');
  process.exit(2);
}
const median = (values) => values.slice().sort((a, b) => a - b)[Math.floor(values.length / 2)];

const ours = {};
const report = JSON.parse(execFileSync(benchBinary, [
  '--benchmark_filter=evaluate/', '--benchmark_repetitions=3', '--benchmark_min_time=1',
  '--benchmark_format=json'], {encoding: 'utf8', maxBuffer: 64 << 20}));
for (const b of report.benchmarks) {
  if (b.run_type !== 'iteration') continue;
  const name = b.run_name.replace(/^evaluate\//, '');
  const scale = b.time_unit === 'ns' ? 1 : b.time_unit === 'us' ? 1e3 : 1e6;
  (ours[name] = ours[name] || []).push({cpu: b.cpu_time * scale, wall: b.real_time * scale});
}

const theirs = {};
for (let run = 0; run < 3; ++run) {
  const rows = JSON.parse(execFileSync(process.execPath, [
    path.join(__dirname, 'fhirpath_bench.js'), '--json', '--min-seconds', '1'], {encoding: 'utf8'}));
  for (const r of rows) {
    (theirs[r.name] = theirs[r.name] || []).push({cpu: r.cpu_ns_per_eval, wall: r.ns_per_eval});
  }
}

console.log('| case | fhir-gateway CPU ns/eval | fhirpath.js 5.2.2 CPU ns/eval | speed-up (CPU) | speed-up (wall) |');
console.log('|---|---:|---:|---:|---:|');
let logCpu = 0;
let logWall = 0;
let count = 0;
for (const name of Object.keys(theirs)) {
  if (!ours[name]) continue;
  const a = median(ours[name].map((x) => x.cpu));
  const b = median(theirs[name].map((x) => x.cpu));
  const wallRatio = median(theirs[name].map((x) => x.wall)) / median(ours[name].map((x) => x.wall));
  logCpu += Math.log(b / a);
  logWall += Math.log(wallRatio);
  ++count;
  console.log(`| ${name} | ${a.toFixed(0)} | ${b.toFixed(0)} | ${(b / a).toFixed(1)}x | ${wallRatio.toFixed(1)}x |`);
}
console.log(`| geometric mean | | | ${Math.exp(logCpu / count).toFixed(1)}x | ${Math.exp(logWall / count).toFixed(1)}x |`);
