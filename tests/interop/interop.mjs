// SPDX-License-Identifier: Apache-2.0
// Interoperability (issue 15): the real fhir-gateway binary driven by an outside FHIR client
// library, fhir-kit-client (npm, pinned by package-lock.json, installed by `scripts/dev deps`).
// Run by ctest: node interop.mjs <fhir-gateway binary> <source dir>. Exit 0 when every check
// holds; a missing node or library fails (it is never skipped).
//
// Checks: capabilities, read, vread, history (instance, type, system with `next` paging),
// conditional read (304), If-Match conflict (412), Subscription create/read/update/delete; and,
// when the gateway lists search-type in its CapabilityStatement, search with paging
// through `next` links.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from 'fhir-kit-client';

const [binary, source] = process.argv.slice(2);
if (!binary || !source) {
  console.error('usage: node interop.mjs <fhir-gateway> <source dir>');
  process.exit(2);
}

let failures = 0;
function check(condition, what) {
  if (condition) {
    console.log(`ok   ${what}`);
  } else {
    failures += 1;
    console.log(`FAIL ${what}`);
  }
}

// The sample configuration without its `auth` block (and so without the feeds' hie `client`,
// which needs one): the client library reads anonymously, on loopback, as the contract allows.
function openConfig(dataDir) {
  const config = JSON.parse(readFileSync(path.join(source, 'config/sample.json'), 'utf8'));
  delete config.auth;
  for (const feed of config.feeds ?? []) delete feed.client;
  const file = path.join(dataDir, 'config.json');
  writeFileSync(file, JSON.stringify(config));
  return file;
}

// Starts the gateway on a free port with that configuration and a fresh data directory.
function startGateway(dataDir) {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, ['serve', '--config', openConfig(dataDir), '--data', dataDir,
      '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
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
    child.on('exit', (code) => reject(new Error(`fhir-gateway exited (${code}): ${out}`)));
  });
}

async function statusOf(promise) {
  try {
    await promise;
    return 200;
  } catch (error) {
    return error.response?.status ?? -1;
  }
}

async function ingest(base, file) {
  const answer = await fetch(`${base}/ingest/econsult`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: readFileSync(path.join(source, 'tests/data/econsult', file)),
  });
  check(answer.status === 202, `POST /ingest/econsult ${file} answers 202 (${answer.status})`);
  return answer.json();
}

const dataDir = mkdtempSync(path.join(tmpdir(), 'gateway-interop-'));
const { child, base } = await startGateway(dataDir);
try {
  const client = new Client({ baseUrl: `${base}/fhir` });

  // Capabilities.
  const statement = await client.capabilityStatement();
  check(statement.resourceType === 'CapabilityStatement', 'capabilities: a CapabilityStatement');
  const taskEntry = statement.rest[0].resource.find((r) => r.type === 'Task');
  const taskCodes = new Set((taskEntry?.interaction ?? []).map((i) => i.code));
  check(['read', 'vread', 'history-instance', 'history-type'].every((c) => taskCodes.has(c)),
    'capabilities: Task read, vread, history-instance, history-type');
  const subscriptionEntry = statement.rest[0].resource.find((r) => r.type === 'Subscription');
  check((subscriptionEntry?.extension ?? []).length === 10, 'capabilities: the 10 topics on the Subscription entry');

  // Data: an e-consult request, then its response (the Task gets version 2).
  const first = await ingest(base, 'request.json');
  await ingest(base, 'response.json');
  const taskId = first.entry.find((e) => e.resource.resourceType === 'Task').resource.id;

  // Read and vread.
  const task = await client.read({ resourceType: 'Task', id: taskId });
  check(task.meta?.versionId === '2', `read: Task/${taskId} is at version 2 (${task.meta?.versionId})`);
  const etag = Client.httpFor(task).response.headers.get('etag');
  check(etag === 'W/"2"', `read: ETag W/"2" (${etag})`);
  const version1 = await client.vread({ resourceType: 'Task', id: taskId, version: '1' });
  check(version1.meta?.versionId === '1' && version1.status !== task.status,
    `vread: version 1 is the earlier Task (${version1.status} then ${task.status})`);

  // History: instance, type, and the system history paged through `next` links.
  const instance = await client.history({ resourceType: 'Task', id: taskId });
  check(instance.type === 'history' && instance.entry.length === 2 && instance.entry[0].resource.meta.versionId === '2',
    'history-instance: two versions, newest first');
  const typeHistory = await client.typeHistory({ resourceType: 'Task' });
  check(typeHistory.entry.every((e) => e.resource.resourceType === 'Task') && typeHistory.entry.length >= 2,
    'history-type: Tasks only');
  const everything = await client.systemHistory({ options: { headers: {} } });
  let page = await client.request('_history?_count=3');
  const seen = [];
  let pages = 0;
  while (page && pages < 200) {
    pages += 1;
    for (const entry of page.entry ?? []) seen.push(`${entry.fullUrl}|${entry.resource.meta.versionId}`);
    page = await client.nextPage({ bundle: page });
  }
  const all = (await client.request('_history?_count=1000')).entry.map((e) => `${e.fullUrl}|${e.resource.meta.versionId}`);
  check(pages > 1 && JSON.stringify(seen) === JSON.stringify(all),
    `history-system: ${pages} pages of 3 through next links give every version once (${seen.length} of ${all.length})`);
  check(everything.type === 'history', 'history-system: a history Bundle');

  // Conditional read: 304 for the current version, 200 for another.
  check(await statusOf(client.read({ resourceType: 'Task', id: taskId, options: { headers: { 'If-None-Match': 'W/"2"' } } })) === 304,
    'conditional read: If-None-Match W/"2" is 304');
  check(await statusOf(client.read({ resourceType: 'Task', id: taskId, options: { headers: { 'If-None-Match': 'W/"1"' } } })) === 200,
    'conditional read: If-None-Match W/"1" is 200');

  // Subscription CRUD, and If-Match conflicts.
  const backport = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/';
  const body = {
    resourceType: 'Subscription',
    meta: { profile: [`${backport}backport-subscription`] },
    status: 'requested',
    reason: 'interop',
    criteria: 'https://fhir.alignment-gateway.org/SubscriptionTopic/econsult-requested',
    channel: {
      type: 'rest-hook', endpoint: 'http://127.0.0.1:9/notify', payload: 'application/fhir+json',
      _payload: { extension: [{ url: `${backport}backport-payload-content`, valueCode: 'id-only' }] },
    },
  };
  const created = await client.create({ resourceType: 'Subscription', body });
  const createdResponse = Client.httpFor(created).response;
  check(createdResponse.status === 201 && created.id, `create: Subscription/${created.id} is 201`);
  check((createdResponse.headers.get('location') ?? '').endsWith(`/Subscription/${created.id}/_history/1`),
    `create: Location is the versioned URL (${createdResponse.headers.get('location')})`);
  const readBack = await client.read({ resourceType: 'Subscription', id: created.id });
  check(readBack.reason === 'interop', 'read: the Subscription as created');
  const updated = await client.update({ resourceType: 'Subscription', id: created.id,
    body: { ...body, id: created.id, reason: 'interop, updated' }, options: { headers: { 'If-Match': 'W/"1"' } } });
  check(updated.reason === 'interop, updated' && updated.meta.versionId === '2', 'update: If-Match W/"1" gives version 2');
  check(await statusOf(client.update({ resourceType: 'Subscription', id: created.id, body: { ...body, id: created.id },
    options: { headers: { 'If-Match': 'W/"1"' } } })) === 412, 'update: a stale If-Match is 412');
  check(await statusOf(client.delete({ resourceType: 'Subscription', id: created.id, options: { headers: { 'If-Match': 'W/"1"' } } })) === 412,
    'delete: a stale If-Match is 412');
  check(await statusOf(client.delete({ resourceType: 'Subscription', id: created.id })) === 200, 'delete: 200');
  check(await statusOf(client.read({ resourceType: 'Subscription', id: created.id })) === 404, 'read after delete: 404');

  // Search with paging through `next` links, once the gateway serves search.
  // (Checked whenever the CapabilityStatement lists search-type for Provenance.)
  const provenanceEntry = statement.rest[0].resource.find((r) => r.type === 'Provenance');
  if ((provenanceEntry?.interaction ?? []).some((i) => i.code === 'search-type')) {
    let searchPage = await client.search({ resourceType: 'Provenance', searchParams: { _count: 1 } });
    const ids = [];
    let searchPages = 0;
    while (searchPage && searchPages < 100) {
      searchPages += 1;
      for (const entry of searchPage.entry ?? []) {
        if (entry.search?.mode !== 'outcome') ids.push(entry.resource.id);
      }
      searchPage = await client.nextPage({ bundle: searchPage });
    }
    check(searchPages > 1 && new Set(ids).size === ids.length && ids.length >= 2,
      `search: Provenance?_count=1 through next links, ${searchPages} pages, no id twice`);
  } else {
    console.log('note: the CapabilityStatement lists no search-type: the gateway has no search yet, search paging not checked');
  }
} catch (error) {
  failures += 1;
  console.log(`FAIL ${error.stack ?? error} ${JSON.stringify(error.response?.data ?? '')}`);
} finally {
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));
  rmSync(dataDir, { recursive: true, force: true });
}
console.log(failures === 0 ? 'interop: all checks hold' : `interop: ${failures} check(s) failed`);
process.exit(failures === 0 ? 0 : 1);
