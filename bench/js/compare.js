// SPDX-License-Identifier: Apache-2.0
// Compares bench/fhirpath_bench (our engine) with fhirpath.js 5.2.2 on bench/fhirpath_cases.json.
// Both sides: expression compiled once, then evaluated on the parsed resource; median of
// 3 runs of at least 1 s each; CPU-bound single thread.
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
  const ns = b.time_unit === 'ns' ? b.real_time : b.time_unit === 'us' ? b.real_time * 1e3 : b.real_time * 1e6;
  (ours[name] = ours[name] || []).push(ns);
}

const theirs = {};
for (let run = 0; run < 3; ++run) {
  const rows = JSON.parse(execFileSync(process.execPath, [
    path.join(__dirname, 'fhirpath_bench.js'), '--json', '--min-seconds', '1'], {encoding: 'utf8'}));
  for (const r of rows) (theirs[r.name] = theirs[r.name] || []).push(r.ns_per_eval);
}

console.log('| case | fhir-gateway ns/eval | fhirpath.js 5.2.2 ns/eval | speed-up |');
console.log('|---|---:|---:|---:|');
let logSum = 0;
let count = 0;
for (const name of Object.keys(theirs)) {
  if (!ours[name]) continue;
  const a = median(ours[name]);
  const b = median(theirs[name]);
  logSum += Math.log(b / a);
  ++count;
  console.log(`| ${name} | ${a.toFixed(0)} | ${b.toFixed(0)} | ${(b / a).toFixed(1)}x |`);
}
console.log(`| geometric mean | | | ${Math.exp(logSum / count).toFixed(1)}x |`);
