// SPDX-License-Identifier: Apache-2.0
// fhirpath.js 5.2.2 timing for the cases in ../fhirpath_cases.json, the same way
// bench/fhirpath_bench.cc times our engine: each expression compiled once with
// fhirpath.compile(expression, r4 model), then evaluated repeatedly on the parsed resource.
// Usage: node bench/js/fhirpath_bench.js [--json] [--min-seconds S] [--warmup-seconds S]
//                                      [--case NAME]
'use strict';
const fs = require('fs');
const path = require('path');
const fhirpath = require('fhirpath');
const r4 = require('fhirpath/fhir-context/r4');

const args = process.argv.slice(2);
const asJson = args.includes('--json');
const minIndex = args.indexOf('--min-seconds');
const minSeconds = minIndex >= 0 ? Number(args[minIndex + 1]) : 1.0;
// Warm-up by time, so the JIT has optimised the code (and its compiler threads are idle) before
// CPU time is counted.
const warmIndex = args.indexOf('--warmup-seconds');
const warmupSeconds = warmIndex >= 0 ? Number(args[warmIndex + 1]) : 1.0;
const caseIndex = args.indexOf('--case');
const onlyCase = caseIndex >= 0 ? args[caseIndex + 1] : null;

const root = path.resolve(__dirname, '..', '..');
const cases = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'fhirpath_cases.json'), 'utf8'));
const inputs = path.join(root, 'tests', 'data', 'fhirpath', 'input');

const results = [];
for (const c of cases) {
  if (onlyCase !== null && c.name !== onlyCase) continue;
  const resource = JSON.parse(fs.readFileSync(path.join(inputs, c.resource), 'utf8'));
  const compiled = fhirpath.compile(c.expression, r4);
  const output = compiled(resource);
  // Warm up the JIT, then time batches until minSeconds have passed.
  const warmStart = process.hrtime.bigint();
  while (Number(process.hrtime.bigint() - warmStart) / 1e9 < warmupSeconds) {
    for (let i = 0; i < 100; ++i) compiled(resource);
  }
  let iterations = 0;
  let batch = 100;
  const start = process.hrtime.bigint();
  const cpuStart = process.cpuUsage();
  let elapsed = 0;
  while (elapsed < minSeconds) {
    for (let i = 0; i < batch; ++i) compiled(resource);
    iterations += batch;
    elapsed = Number(process.hrtime.bigint() - start) / 1e9;
    if (elapsed < minSeconds / 10) batch *= 2;
  }
  const cpu = process.cpuUsage(cpuStart);  // microseconds, all threads of the process
  results.push({name: c.name, ns_per_eval: (elapsed * 1e9) / iterations,
                cpu_ns_per_eval: ((cpu.user + cpu.system) * 1e3) / iterations, iterations,
                result: JSON.stringify(output)});
}
if (asJson) {
  process.stdout.write(JSON.stringify(results) + '\n');
} else {
  for (const r of results) {
    console.log(`${r.name.padEnd(20)} ${r.ns_per_eval.toFixed(0).padStart(10)} ns/eval ` +
                `(${r.cpu_ns_per_eval.toFixed(0)} ns CPU)  ${r.result}`);
  }
}
