// SPDX-License-Identifier: Apache-2.0
// Compares bench/fhirpath_bench (our engine) with fhirpath.js 5.2.2 on bench/fhirpath_cases.json.
// Both sides: expression compiled once, then evaluated on the parsed resource (fhirpath.js after
// 1 s of warm-up, so that it is timed with optimised code, as a long-running server runs it;
// Google Benchmark's own warm-up is enough for ours). The two engines
// are run back to back for each case, ROUNDS times in turn (case by case, ours then theirs), so
// that both sides of one ratio see the same machine load; the ratio of a case is the median of
// its per-round ratios. Figures are CPU time per evaluation (Google Benchmark cpu_time;
// process.cpuUsage() for Node, which also counts V8's helper threads), because wall time on a
// shared machine mostly measures the other processes; the wall-time geometric mean is printed too.
// Usage: node bench/js/compare.js BUILD_DIR/bin/fhirpath_bench [ROUNDS] [SECONDS_PER_RUN]
'use strict';
const {execFileSync} = require('child_process');
const fs = require('fs');
const path = require('path');

const benchBinary = process.argv[2];
if (!benchBinary) {
  console.error('usage: node bench/js/compare.js BUILD_DIR/bin/fhirpath_bench [ROUNDS] [SECONDS]');
  process.exit(2);
}
const rounds = Number(process.argv[3] || 3);
const seconds = Number(process.argv[4] || 0.5);
const median = (values) => {
  const sorted = values.slice().sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const cases = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'fhirpath_cases.json'), 'utf8'));

function ours(name) {
  const report = JSON.parse(execFileSync(benchBinary, [
    `--benchmark_filter=^evaluate/${name}$`, `--benchmark_min_time=${seconds}`,
    '--benchmark_format=json'], {encoding: 'utf8', maxBuffer: 64 << 20}));
  const b = report.benchmarks.find((x) => x.run_type === 'iteration');
  if (!b || b.error_occurred) throw new Error(`fhirpath_bench: no result for ${name}`);
  const scale = b.time_unit === 'ns' ? 1 : b.time_unit === 'us' ? 1e3 : 1e6;
  return {cpu: b.cpu_time * scale, wall: b.real_time * scale};
}

function theirs(name) {
  const rows = JSON.parse(execFileSync(process.execPath, [
    path.join(__dirname, 'fhirpath_bench.js'), '--json', '--min-seconds', String(seconds),
    '--warmup-seconds', '1', '--case', name], {encoding: 'utf8'}));
  return {cpu: rows[0].cpu_ns_per_eval, wall: rows[0].ns_per_eval};
}

const samples = {};
for (let round = 0; round < rounds; ++round) {
  for (const c of cases) {
    const a = ours(c.name);
    const b = theirs(c.name);
    (samples[c.name] = samples[c.name] || []).push({a, b});
  }
}

console.log(`${rounds} rounds, ${seconds} s per run and side; CPU ns per evaluation (medians)`);
console.log('| case | fhir-gateway CPU ns/eval | fhirpath.js 5.2.2 CPU ns/eval | speed-up (CPU) |');
console.log('|---|---:|---:|---:|');
let logCpu = 0;
let logWall = 0;
for (const c of cases) {
  const runs = samples[c.name];
  const ratio = median(runs.map((r) => r.b.cpu / r.a.cpu));
  logCpu += Math.log(ratio);
  logWall += Math.log(median(runs.map((r) => r.b.wall / r.a.wall)));
  console.log(`| ${c.name} | ${median(runs.map((r) => r.a.cpu)).toFixed(0)} | ` +
              `${median(runs.map((r) => r.b.cpu)).toFixed(0)} | ${ratio.toFixed(1)}x |`);
}
const count = cases.length;
console.log(`| **geometric mean** | | | **${Math.exp(logCpu / count).toFixed(1)}x** |`);
console.log(`(wall-time geometric mean: ${Math.exp(logWall / count).toFixed(1)}x)`);
