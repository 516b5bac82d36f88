// SPDX-License-Identifier: Apache-2.0
// Bulk Data export (issue 16) through an outside client written from the Bulk Data Access IG 2.0
// (https://hl7.org/fhir/uv/bulkdata/export.html), with nothing but node's own fetch: kick-off
// with `Prefer: respond-async`, poll the Content-Location honouring Retry-After, read the
// manifest, download every output file and check it. Run by ctest:
//   node bulk_export.mjs <fhir-gateway binary> <source dir>
// Exit 0 when every check holds.
//
// Checks: a system export holds every resource exactly once, as NDJSON of resources of the file's
// type, with counts equal to the manifest's and to a search of each type (_summary=count); `_type`
// and `_since` narrow it; a POST kick-off with Parameters; a Group found by `Group?identifier=`
// exports its members (and `$davinci-data-export` is its alias); polling faster than Retry-After
// is 429; DELETE removes the job and its files; the CapabilityStatement lists the operations.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const [binary, source] = process.argv.slice(2);
if (!binary || !source) {
  console.error('usage: node bulk_export.mjs <fhir-gateway> <source dir>');
  process.exit(2);
}

let failures = 0;
function check(condition, what) {
  console.log(`${condition ? 'ok  ' : 'FAIL'} ${what}`);
  if (!condition) failures += 1;
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The sample configuration without its `auth` block: an open gateway on loopback.
function openConfig(dataDir) {
  const config = JSON.parse(readFileSync(path.join(source, 'config/sample.json'), 'utf8'));
  delete config.auth;
  for (const feed of config.feeds ?? []) delete feed.client;
  config.export = { maxResourcesPerFile: 2 };  // several files per type even for a small set
  const file = path.join(dataDir, 'config.json');
  writeFileSync(file, JSON.stringify(config));
  return file;
}

function startGateway(dataDir) {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, ['serve', '--config', openConfig(dataDir), '--data', dataDir, '--listen', '127.0.0.1:0'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no "listening on" within 60 s: ${out}`)), 60000);
    const onData = (chunk) => {
      out += chunk.toString();
      const match = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (match) {
        clearTimeout(timer);
        resolve({ child, base: match[1] });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => reject(new Error(`gateway exited (${code}): ${out}`)));
  });
}

async function post(url, body, contentType) {
  const answer = await fetch(url, { method: 'POST', headers: { 'Content-Type': contentType }, body });
  await answer.text();
  return answer.status;
}

// IG "Bulk Data Kick-off Request".
async function kickOff(url, init = {}) {
  const headers = { Accept: 'application/fhir+json', Prefer: 'respond-async', ...(init.headers ?? {}) };
  const answer = await fetch(url, { ...init, headers });
  const text = await answer.text();
  return { status: answer.status, location: answer.headers.get('content-location'), text };
}

// IG "Bulk Data Status Request": poll, waiting as Retry-After says, until 200 (or an error).
async function waitForManifest(statusUrl) {
  for (let attempt = 0; attempt < 600; attempt += 1) {
    const answer = await fetch(statusUrl, { headers: { Accept: 'application/json' } });
    const text = await answer.text();
    if (answer.status === 200) return JSON.parse(text);
    // 429: polled sooner than Retry-After said; wait as told (IG "Bulk Data Status Request").
    if (answer.status !== 202 && answer.status !== 429) throw new Error(`status ${answer.status}: ${text}`);
    const wait = Number(answer.headers.get('retry-after') ?? '1');
    await sleep(Math.max(1, wait) * 1000 + 50);
  }
  throw new Error('the export did not finish');
}

// IG "File Request": every output file, checked line by line.
async function download(manifest) {
  const byType = new Map();
  let linesOk = true;
  let countsOk = true;
  for (const output of manifest.output) {
    const answer = await fetch(output.url, { headers: { Accept: 'application/fhir+ndjson' } });
    const text = await answer.text();
    if (answer.status !== 200 || !(answer.headers.get('content-type') ?? '').startsWith('application/fhir+ndjson')) {
      linesOk = false;
      continue;
    }
    const lines = text.split('\n').filter((line) => line.length > 0);
    if (lines.length !== output.count) countsOk = false;
    for (const line of lines) {
      let resource;
      try {
        resource = JSON.parse(line);
      } catch {
        linesOk = false;
        continue;
      }
      if (resource.resourceType !== output.type || typeof resource.id !== 'string') linesOk = false;
      if (!byType.has(output.type)) byType.set(output.type, []);
      byType.get(output.type).push(resource.id);
    }
  }
  return { byType, linesOk, countsOk };
}

function onceEach(byType) {
  for (const ids of byType.values()) {
    if (new Set(ids).size !== ids.length) return false;
  }
  return true;
}

async function searchCount(base, type) {
  const answer = await fetch(`${base}/fhir/${type}?_summary=count`, { headers: { Accept: 'application/fhir+json' } });
  return (await answer.json()).total;
}

async function main() {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'bulk-export-'));
  let gateway;
  try {
    gateway = await startGateway(dataDir);
    const { base } = gateway;
    const data = (...parts) => readFileSync(path.join(source, 'tests/data', ...parts));
    check(await post(`${base}/ingest/roster/lakeshore-medicaid`, data('mappers/roster/roster.csv'), 'text/csv') < 300, 'a roster file is ingested');
    check(await post(`${base}/ingest/claims/lakeshore-medicaid`, data('mappers/lakeshore-medicaid/claims.csv'), 'text/csv') < 300, 'a claims file is ingested');
    check(await post(`${base}/ingest/econsult`, data('econsult/request.json'), 'application/json') === 202, 'an e-consult is ingested');

    const metadata = await (await fetch(`${base}/fhir/metadata`)).json();
    const rest = metadata.rest[0];
    const typeOps = (type) => (rest.resource.find((r) => r.type === type)?.operation ?? []).map((o) => o.name);
    check((rest.operation ?? []).some((o) => o.name === 'export'), 'the CapabilityStatement lists system $export');
    check(typeOps('Patient').includes('export'), 'the CapabilityStatement lists Patient $export');
    check(typeOps('Group').includes('export') && typeOps('Group').includes('davinci-data-export'),
      'the CapabilityStatement lists Group $export and $davinci-data-export');

    // Without Prefer: respond-async the kick-off is refused.
    const sync = await fetch(`${base}/fhir/$export`, { headers: { Accept: 'application/fhir+json' } });
    check(sync.status === 400, `a kick-off without Prefer: respond-async is 400 (${sync.status})`);
    await sync.text();

    // System export.
    const kicked = await kickOff(`${base}/fhir/$export?_outputFormat=${encodeURIComponent('application/fhir+ndjson')}`);
    check(kicked.status === 202 && kicked.location, `system kick-off answers 202 with Content-Location (${kicked.status})`);
    const manifest = await waitForManifest(kicked.location);
    check(typeof manifest.transactionTime === 'string' && manifest.request.includes('/fhir/$export'), 'the manifest has transactionTime and request');
    check(manifest.requiresAccessToken === false && Array.isArray(manifest.error), 'the manifest has requiresAccessToken and error');
    const all = await download(manifest);
    check(all.linesOk, 'every file is NDJSON of resources of its type');
    check(all.countsOk, 'every file holds as many lines as the manifest says');
    check(onceEach(all.byType), 'every resource appears exactly once');
    check(manifest.output.some((o) => o.count === 2) || manifest.output.length === 0, 'files are split at maxResourcesPerFile');
    let searchesAgree = all.byType.size > 3;
    for (const [type, ids] of all.byType) {
      const total = await searchCount(base, type);
      if (total !== ids.length) {
        searchesAgree = false;
        console.log(`     ${type}: export ${ids.length}, search ${total}`);
      }
    }
    for (const type of ['Patient', 'Coverage', 'Group']) {
      if (!all.byType.has(type)) searchesAgree = false;
    }
    check(searchesAgree, `counts equal a search of each type (${[...all.byType.keys()].join(', ')})`);

    // _type narrows.
    const typed = await download(await waitForManifest((await kickOff(`${base}/fhir/$export?_type=Patient,Coverage`)).location));
    check([...typed.byType.keys()].sort().join() === 'Coverage,Patient', '_type=Patient,Coverage exports only those types');
    check(typed.byType.get('Patient')?.length === all.byType.get('Patient')?.length, '_type keeps every Patient');

    // _since narrows: only what was written after it.
    await sleep(50);
    const since = new Date().toISOString();
    await sleep(50);
    check(await post(`${base}/ingest/econsult`, data('econsult/response.json'), 'application/json') === 202, 'another e-consult is ingested');
    const recent = await download(await waitForManifest((await kickOff(`${base}/fhir/$export?_since=${encodeURIComponent(since)}`)).location));
    let newer = recent.byType.size > 0;
    let total = 0;
    for (const ids of recent.byType.values()) total += ids.length;
    let allCount = 0;
    for (const ids of all.byType.values()) allCount += ids.length;
    for (const [type, ids] of recent.byType) {
      const answer = await fetch(`${base}/fhir/${type}?_lastUpdated=ge${encodeURIComponent(since)}&_summary=count`);
      if ((await answer.json()).total !== ids.length) newer = false;
    }
    check(newer && total < allCount, `_since exports only what changed since (${total} of ${allCount})`);

    // POST kick-off with Parameters.
    const posted = await kickOff(`${base}/fhir/Patient/$export`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/fhir+json' },
      body: JSON.stringify({ resourceType: 'Parameters', parameter: [{ name: '_type', valueString: 'Patient,Claim' },
        { name: '_outputFormat', valueString: 'application/fhir+ndjson' }] }),
    });
    check(posted.status === 202, `POST Patient/$export with Parameters answers 202 (${posted.status})`);
    const patientLevel = await download(await waitForManifest(posted.location));
    check([...patientLevel.byType.keys()].sort().join() === 'Claim,Patient', 'the POSTed _type is applied');

    // Polling faster than Retry-After: 429 (a job kept running long enough: many small pages).
    const polled = await kickOff(`${base}/fhir/$export`);
    const first = await fetch(polled.location);
    await first.text();
    const second = await fetch(polled.location);
    await second.text();
    check(first.status === 200 || (first.status === 202 && (second.status === 429 || second.status === 200)),
      `a poll right after a 202 is 429 (${first.status}, ${second.status})`);
    if (second.status === 429) check(second.headers.get('retry-after') !== null, 'the 429 carries Retry-After');
    const polledManifest = await waitForManifest(polled.location);

    // DELETE removes the job and its files.
    const fileUrl = polledManifest.output[0]?.url;
    const deleted = await fetch(polled.location, { method: 'DELETE' });
    await deleted.text();
    check(deleted.status === 202, `DELETE on the status URL answers 202 (${deleted.status})`);
    const gone = await fetch(polled.location);
    await gone.text();
    check(gone.status === 404, `the status URL is 404 after DELETE (${gone.status})`);
    if (fileUrl) {
      const goneFile = await fetch(fileUrl);
      await goneFile.text();
      check(goneFile.status === 404, `a file is 404 after DELETE (${goneFile.status})`);
    }

    // Group: found by identifier (Group?identifier=), exported with its members.
    const groups = await (await fetch(`${base}/fhir/Group?_count=10`)).json();
    const group = groups.entry?.[0]?.resource;
    check(group !== undefined, 'an attribution Group was ingested');
    if (group) {
      const identifier = group.identifier?.[0];
      const byIdentifier = await (await fetch(`${base}/fhir/Group?identifier=${encodeURIComponent(`${identifier.system}|${identifier.value}`)}`)).json();
      check(byIdentifier.entry?.some((e) => e.resource.id === group.id), 'Group?identifier=system|value finds the payer\'s list');
      const members = (group.member ?? []).map((m) => m.entity.reference.split('/').pop()).sort();
      const groupExport = await download(await waitForManifest((await kickOff(`${base}/fhir/Group/${group.id}/$export`)).location));
      const exported = [...(groupExport.byType.get('Patient') ?? [])].sort();
      check(members.length > 0 && exported.join() === [...new Set(members)].join(), `Group/$export exports the Group's members (${exported.join()})`);
      check(onceEach(groupExport.byType), 'the Group export holds every resource once');
      const alias = await kickOff(`${base}/fhir/Group/${group.id}/$davinci-data-export?exportType=hl7.fhir.us.davinci-atr`);
      check(alias.status === 202, `$davinci-data-export is accepted (${alias.status})`);
      const aliasManifest = await waitForManifest(alias.location);
      const aliasPatients = [...((await download(aliasManifest)).byType.get('Patient') ?? [])].sort();
      check(aliasPatients.join() === exported.join(), 'the alias exports the same members');
    }
  } finally {
    if (gateway) gateway.child.kill('SIGTERM');
    await sleep(300);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().then(() => {
  console.log(failures === 0 ? 'all checks passed' : `${failures} check(s) failed`);
  process.exit(failures === 0 ? 0 : 1);
}, (error) => {
  console.error(error);
  process.exit(1);
});
