// SPDX-License-Identifier: Apache-2.0
// Issue 20, the browser Acceptance item: Debian's headless `chromium`, driven over the Chrome
// DevTools Protocol (CDP, `--remote-debugging-pipe`: the protocol's messages over two pipes
// rather than a TCP port, so no debugging port is opened), against the real gateway with auth on
// and the ScorecardE2e population (tests/data/scorecard: rosters of three payers, 1067 events)
// posted through the ingest routes, plus a few bad inputs so that the quarantine has something.
// Run by ctest:
//   node scorecard_browser.mjs <fhir-gateway binary> <source dir> <artifact dir>
// Checks, each printed `ok`/`FAIL`; exit 0 when all hold:
//  - POST /scorecard/session: a valid token gives the cookie (HttpOnly, Secure, SameSite=Strict,
//    Path=/scorecard, 15 min); a token in the URL, no token, a payer's token are refused; the
//    browser itself exchanges the token (fetch from the gateway's origin) and keeps the cookie.
//  - both pages load (200) with no console error, no exception and no request leaving
//    loopback (every request the page makes is to the gateway or a data: URL);
//  - every figure of the pages equals the API's: `$evaluate-measure` (called with a token, at
//    the link the figure gives) and GET /scorecard/quality?format=json;
//  - the filters (set in the form and submitted) change the figures, which still equal the API's;
//  - a practice client's session opens its own report and not another practice's (404) nor the
//    convener's page (403);
//  - the practice report prints (print media hides the form; a PDF is written);
//  - screenshots and the PDF are kept in <artifact dir> (the paths are printed).
// `chromium` or `node` missing fails (ctest's command checks), never skips.

import { spawn } from 'node:child_process';
import { generateKeyPairSync, sign, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const [binary, source, artifacts] = process.argv.slice(2);
if (!binary || !source || !artifacts) {
  console.error('usage: node scorecard_browser.mjs <fhir-gateway> <source dir> <artifact dir>');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

let failures = 0;
function check(condition, what, detail = '') {
  console.log(`${condition ? 'ok  ' : 'FAIL'} ${what}${!condition && detail ? `\n     ${detail}` : ''}`);
  if (!condition) failures += 1;
}

const OWN_PRACTICE = '1093817413';    // PRACTICES[0] of tests/data/scorecard/generate.py
const OTHER_PRACTICE = '1093817421';  // PRACTICES[1]
const PAYERS = [['lakeshore-medicaid', 'lakeshore-medicaid'], ['northwind-commercial', 'northwind-commercial'], ['prairie-medicare', 'x12-837p']];
const data = path.join(source, 'tests/data/scorecard');
const work = mkdtempSync(path.join(tmpdir(), 'scorecard-browser-'));
const children = [];

// ---- the gateway, with auth on -------------------------------------------------------------
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const jwks = { keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'ES384', use: 'sig' }] };

const receiver = createServer((request, response) => {
  request.resume();
  request.on('end', () => { response.writeHead(200); response.end(); });
});
await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
const receiverUrl = `http://127.0.0.1:${receiver.address().port}/bundles`;

const config = {
  dataDir: path.join(work, 'var'),
  payers: PAYERS.map(([id, format]) => ({ id, name: id, format, endpoint: receiverUrl })),
  auth: {
    createSigningKey: true,
    clients: [
      { id: 'convener', kind: 'admin', jwks },
      { id: 'clinic', kind: 'practice', practiceNpi: OWN_PRACTICE, jwks },
      { id: 'lakeshore', kind: 'payer', payerId: 'lakeshore-medicaid', jwks },
    ],
  },
};
writeFileSync(path.join(work, 'config.json'), JSON.stringify(config));

function startGateway() {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, ['serve', '--config', path.join(work, 'config.json'), '--listen', '127.0.0.1:0'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no "listening on" within 60 s: ${out}`)), 60000);
    const onData = (chunk) => {
      out += chunk.toString();
      const match = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => reject(new Error(`gateway exited (${code}): ${out}`)));
  });
}
const base = await startGateway();

// SMART Backend Services: a client assertion (ES384) for a token.
const b64 = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
async function token(client) {
  const now = Math.floor(Date.now() / 1000);
  const signing = `${b64({ alg: 'ES384', kid: 'k1', typ: 'JWT' })}.${b64({ iss: client, sub: client, aud: `${base}/auth/token`, exp: now + 60, jti: randomUUID() })}`;
  const signature = sign('sha384', Buffer.from(signing), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url');
  const form = new URLSearchParams({
    grant_type: 'client_credentials',
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: `${signing}.${signature}`,
  });
  const answer = await fetch(`${base}/auth/token`, { method: 'POST', body: form });
  const body = await answer.json();
  if (answer.status !== 200) throw new Error(`token for ${client}: ${answer.status} ${JSON.stringify(body)}`);
  return body.access_token;
}
const tokens = { convener: await token('convener'), clinic: await token('clinic'), lakeshore: await token('lakeshore') };
const api = async (client, url, init = {}) =>
  fetch(url.startsWith('http') ? url : base + url, { ...init, headers: { ...(init.headers ?? {}), Authorization: `Bearer ${tokens[client]}` } });

// ---- the population (as ScorecardE2e posts it) and a few bad inputs -----------------------------
for (const [payer] of PAYERS) {
  const answer = await api('convener', `/ingest/roster/${payer}`, { method: 'POST', headers: { 'Content-Type': 'text/csv' }, body: readFileSync(path.join(data, `roster-${payer}.csv`)) });
  check(answer.status === 200, `roster ${payer} accepted`, await answer.text());
}
const events = readFileSync(path.join(data, 'events.ndjson'), 'utf8').split('\n').filter((line) => line.trim());
let posted = 0;
for (let at = 0; at < events.length; at += 8) {
  const statuses = await Promise.all(events.slice(at, at + 8).map(async (line) => {
    const consult = ['request', 'response', 'closed', 'cancelled'].includes(JSON.parse(line).eventType);
    const answer = await api('convener', consult ? '/ingest/econsult' : '/ingest/care-management', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: line });
    await answer.text();
    return answer.status;
  }));
  posted += statuses.filter((status) => status === 202).length;
}
check(posted === events.length, `every fixture event accepted (${posted} of ${events.length})`);
// Quarantined: an HRSN answer outside the value set, an e-consult without its patient, a roster
// row whose sex has no translation.
const bad = JSON.parse(events.find((line) => line.includes('"hrsn-screening"')));
bad.eventId = 'bad-hrsn-1';
bad.screening.answers[0].answerLoinc = 'LA9999-9';
let answer = await api('convener', '/ingest/care-management', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(bad) });
check(answer.status === 422, 'a bad HRSN screening is refused (quarantined)', await answer.text());
const noPatient = JSON.parse(events.find((line) => line.includes('"eventType":"request"')));
noPatient.eventId = 'bad-request-1';
delete noPatient.patient;
answer = await api('convener', '/ingest/econsult', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(noPatient) });
check(answer.status === 422, 'an e-consult without a patient is refused (quarantined)', await answer.text());
const rosterHeader = readFileSync(path.join(data, 'roster-lakeshore-medicaid.csv'), 'utf8').split('\n')[0];
answer = await api('convener', '/ingest/roster/lakeshore-medicaid', { method: 'POST', headers: { 'Content-Type': 'text/csv' },
  body: `${rosterHeader}\nLMC900000,Doe,Jane,19490522,X,medicaid,20260701,,${OWN_PRACTICE},1467583914,20260701,,2106-3,2135-2,es\n` });
check(answer.status === 200 && (await answer.json()).rejected === 1, 'a roster row with an untranslatable sex is quarantined');

// ---- the session exchange, from outside the browser ------------------------------------------
answer = await api('convener', '/scorecard/session', { method: 'POST' });
const cookie = answer.headers.get('set-cookie') ?? '';
check(answer.status === 200, 'POST /scorecard/session with the admin token: 200', `${answer.status} ${await answer.text()}`);
for (const attribute of ['HttpOnly', 'Secure', 'SameSite=Strict', 'Path=/scorecard', 'Max-Age=900']) {
  check(cookie.split(';').map((part) => part.trim()).includes(attribute), `the session cookie has ${attribute}`, cookie);
}
check(/^scorecard_session=[0-9a-f]{64};/.test(cookie) && !cookie.includes(tokens.convener), 'the cookie is a random id, not the token', cookie);
answer = await fetch(`${base}/scorecard/session?access_token=${tokens.convener}`, { method: 'POST' });
check(answer.status === 400 && !answer.headers.get('set-cookie'), 'a token in the URL is refused (400), no cookie');
answer = await fetch(`${base}/scorecard/session`, { method: 'POST' });
check(answer.status === 401 && !answer.headers.get('set-cookie'), 'no token: 401, no cookie');
answer = await api('lakeshore', '/scorecard/session', { method: 'POST' });
check(answer.status === 403, "a payer's token gets no session (403)");
answer = await fetch(`${base}/scorecard`);
check(answer.status === 401, 'GET /scorecard without a session: 401');
answer = await fetch(`${base}/scorecard`, { headers: { Cookie: 'scorecard_session=0000' } });
check(answer.status === 401, 'GET /scorecard with an unknown session id: 401');
answer = await fetch(`${base}/scorecard`, { headers: { Cookie: cookie.split(';')[0] } });
check(answer.status === 200 && (answer.headers.get('content-security-policy') ?? '').startsWith("default-src 'none'"),
  'GET /scorecard with the cookie: 200 and a Content-Security-Policy that allows nothing from outside');
await answer.text();

// ---- chromium over the DevTools protocol (pipe) ------------------------------------------------
const browser = spawn('chromium', [
  '--headless=new', '--no-sandbox', '--disable-gpu', '--remote-debugging-pipe', `--user-data-dir=${path.join(work, 'profile')}`,
  '--no-first-run', '--no-default-browser-check', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--disable-extensions', '--disable-default-apps', '--metrics-recording-only', '--mute-audio',
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1', 'about:blank',
], { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'], detached: true });  // its own process group: see the clean-up
children.push(browser);
let browserLog = '';
browser.stderr.on('data', (chunk) => { browserLog = (browserLog + chunk.toString()).slice(-4000); });
const toBrowser = browser.stdio[3];
const fromBrowser = browser.stdio[4];
let nextId = 1;
const waiting = new Map();
const listeners = [];
let buffered = Buffer.alloc(0);
fromBrowser.on('data', (chunk) => {
  buffered = Buffer.concat([buffered, chunk]);
  let end;
  while ((end = buffered.indexOf(0)) >= 0) {
    const message = JSON.parse(buffered.subarray(0, end).toString());
    buffered = buffered.subarray(end + 1);
    if (message.id && waiting.has(message.id)) {
      const { resolve, reject, method } = waiting.get(message.id);
      waiting.delete(message.id);
      if (message.error) reject(new Error(`${method}: ${JSON.stringify(message.error)}`));
      else resolve(message.result);
    } else if (message.method) {
      for (const listener of listeners) listener(message);
    }
  }
});
function cdp(method, params = {}, sessionId = undefined) {
  const id = nextId++;
  const message = { id, method, params };
  if (sessionId) message.sessionId = sessionId;
  return new Promise((resolve, reject) => {
    waiting.set(id, { resolve, reject, method });
    toBrowser.write(`${JSON.stringify(message)}\0`);
    setTimeout(() => { if (waiting.delete(id)) reject(new Error(`${method}: no answer in 60 s; chromium said: ${browserLog}`)); }, 60000);
  });
}

// A tab in its own browser context (its own cookie jar), with what it logs and requests recorded.
async function openTab() {
  const { browserContextId } = await cdp('Target.createBrowserContext');
  const { targetId } = await cdp('Target.createTarget', { url: 'about:blank', browserContextId });
  const { sessionId } = await cdp('Target.attachToTarget', { targetId, flatten: true });
  const tab = { sessionId, errors: [], requests: [], documents: [], answered: [], loaded: null };
  listeners.push((message) => {
    if (message.sessionId !== sessionId) return;
    const { method, params } = message;
    if (method === 'Runtime.consoleAPICalled' && ['error', 'assert'].includes(params.type)) {
      tab.errors.push(`console.${params.type}: ${params.args.map((arg) => arg.value ?? arg.description).join(' ')}`);
    } else if (method === 'Runtime.exceptionThrown') {
      tab.errors.push(`exception: ${params.exceptionDetails.text}`);
    } else if (method === 'Log.entryAdded' && params.entry.level === 'error') {
      tab.errors.push(`log (${params.entry.source}): ${params.entry.text} ${params.entry.url ?? ''}`);
    } else if (method === 'Network.requestWillBeSent') {
      tab.requests.push(params.request.url);
    } else if (method === 'Network.responseReceived') {
      tab.answered.push(params.response.url);
      if (params.type === 'Document') tab.documents.push({ url: params.response.url, status: params.response.status });
    } else if (method === 'Page.loadEventFired' && tab.loaded) {
      tab.loaded();
    }
  });
  for (const domain of ['Page', 'Runtime', 'Log', 'Network']) await cdp(`${domain}.enable`, {}, sessionId);
  return tab;
}
async function navigate(tab, url) {
  tab.errors.length = 0;
  tab.requests.length = 0;
  tab.documents.length = 0;
  const loaded = new Promise((resolve) => { tab.loaded = resolve; });
  await cdp('Page.navigate', { url }, tab.sessionId);
  await loaded;
  return tab.documents.at(-1)?.status;
}
// Runs `expression` (which submits the page's form) and waits for the next page to load.
async function submit(tab, expression) {
  tab.errors.length = 0;
  tab.requests.length = 0;
  tab.documents.length = 0;
  const loaded = new Promise((resolve) => { tab.loaded = resolve; });
  await evaluate(tab, expression);
  await loaded;
  return tab.documents.at(-1)?.status;
}
async function evaluate(tab, expression) {
  const { result, exceptionDetails } = await cdp('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true }, tab.sessionId);
  if (exceptionDetails) throw new Error(`${expression}: ${JSON.stringify(exceptionDetails)}`);
  return result.value;
}
async function screenshot(tab, name) {
  const { data: png } = await cdp('Page.captureScreenshot', { format: 'png', captureBeyondViewport: true }, tab.sessionId);
  const file = path.join(artifacts, name);
  writeFileSync(file, Buffer.from(png, 'base64'));
  console.log(`     screenshot: ${file}`);
}
// The browser exchanges the token itself: fetch() from a page of the gateway's origin, so the
// Set-Cookie lands in the browser's own jar (a browser cannot send the token on navigation).
// /healthz is that page (JSON: no Content-Security-Policy to forbid the fetch). Chromium asks for
// its /favicon.ico after it loads (401 without a session); that answer is awaited here (at most
// 3 s) so that it is not counted as an error of the page opened next.
async function signIn(tab, client) {
  await navigate(tab, `${base}/healthz`);
  const status = await evaluate(tab, `fetch('/scorecard/session', {method: 'POST', headers: {Authorization: 'Bearer ${tokens[client]}'}}).then((r) => r.status)`);
  for (let waited = 0; waited < 3000 && !tab.answered.some((url) => url.endsWith('/favicon.ico')); waited += 100) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return status;
}
function checkClean(tab, page) {
  check(tab.errors.length === 0, `${page}: no console error`, tab.errors.join('\n     '));
  const outside = tab.requests.filter((url) => !url.startsWith(`${base}/`) && !url.startsWith('data:'));
  check(tab.requests.length > 0 && outside.length === 0, `${page}: no request leaves loopback (${tab.requests.length} requests)`, outside.join(' '));
}

// Every figure of the page against the API. Figures: [data-measure] (the MeasureReport at the
// figure's link) and [data-quality] (GET /scorecard/quality?format=json).
const FIGURES = `[...document.querySelectorAll('[data-measure]')].map((e) => ({measure: e.dataset.measure, group: e.dataset.group,
  stratum: e.dataset.stratum, population: e.dataset.population ?? '', value: e.dataset.value, link: e.getAttribute('href') ?? ''}))`;
const QUALITY = `[...document.querySelectorAll('[data-quality]')].map((e) => ({key: e.dataset.quality, value: e.dataset.value}))`;
const reports = new Map();
async function report(client, link) {
  const key = `${client} ${link}`;
  if (!reports.has(key)) {
    const reply = await api(client, link);
    reports.set(key, reply.status === 200 ? await reply.json() : { status: reply.status });
  }
  return reports.get(key);
}
function apiValue(measureReport, figure) {
  const group = (measureReport.group ?? []).find((item) => item.id === figure.group);
  if (!group) return 'no group';
  let cell = group;
  if (figure.stratum) {
    const payer = (group.stratifier ?? []).find((item) => item.code?.[0]?.coding?.[0]?.code === 'payer');
    cell = (payer?.stratum ?? []).find((item) => item.value?.text === figure.stratum);
    if (!cell) return 'none';
  }
  if (figure.population === 'score') {
    if (cell.measureScore) return String(cell.measureScore.value);
    return (cell.population ?? []).some((item) => item.count === undefined) ? 'masked' : 'none';
  }
  const population = (cell.population ?? []).find((item) => item.code?.coding?.[0]?.code === figure.population);
  if (!population) return 'none';
  return population.count === undefined ? 'masked' : String(population.count);
}
const same = (a, b) => a === b || (a !== '' && b !== '' && !Number.isNaN(Number(a)) && Number(a) === Number(b));
async function checkFigures(tab, client, page) {
  const figures = await evaluate(tab, FIGURES);
  const wrong = [];
  let masked = 0;
  for (const figure of figures) {
    const expected = apiValue(await report(client, figure.link), figure);
    if (!same(figure.value, expected)) wrong.push(`${figure.measure}/${figure.group}[${figure.stratum}].${figure.population}: page ${figure.value}, API ${expected}`);
    if (figure.value === 'masked') masked += 1;
  }
  const links = new Set(figures.map((figure) => figure.link));
  check(figures.length > 20 && wrong.length === 0, `${page}: its ${figures.length} measure figures equal $evaluate-measure's (${links.size} calls, ${masked} suppressed)`, wrong.slice(0, 10).join('\n     '));
  check([...links].every((link) => link.startsWith('/fhir/Measure/') && link.includes('/$evaluate-measure?')), `${page}: every figure links to its $evaluate-measure call`);
  return figures;
}
async function checkQuality(tab, page) {
  const shown = await evaluate(tab, QUALITY);
  const reply = await api('convener', '/scorecard/quality?format=json');
  const quality = await reply.json();
  const wrong = [];
  for (const { key, value } of shown) {
    const [list, name, field] = key.split('|');
    let expected;
    if (!name) expected = quality[list];
    else if (list === 'feeds') expected = quality.feeds.find((item) => item.destination === name)?.[field];
    else expected = quality[list].find((item) => item.key === name)?.[field];
    if (String(expected) !== value) wrong.push(`${key}: page ${value}, API ${expected}`);
  }
  check(shown.length >= 10 && wrong.length === 0, `${page}: its ${shown.length} data-quality figures equal /scorecard/quality?format=json`, wrong.join('\n     '));
  return quality;
}

try {
  const { product } = await cdp('Browser.getVersion');
  console.log(`     browser: ${product}`);

  // The convener.
  const admin = await openTab();
  check(await signIn(admin, 'convener') === 200, 'the browser exchanges the admin token for a session');
  const { cookies } = await cdp('Network.getCookies', { urls: [`${base}/scorecard`] }, admin.sessionId);
  const jar = cookies.find((item) => item.name === 'scorecard_session');
  check(jar && jar.httpOnly && jar.secure && jar.sameSite === 'Strict' && jar.path === '/scorecard',
    'the browser keeps the cookie (HttpOnly, Secure, SameSite=Strict, Path=/scorecard) on http://127.0.0.1', JSON.stringify(cookies));
  check(await evaluate(admin, 'document.cookie') === '', 'scripts cannot read the session cookie (HttpOnly)');

  const period = 'periodStart=2026-01-01&periodEnd=2026-12-31';
  check(await navigate(admin, `${base}/scorecard?${period}`) === 200, 'GET /scorecard loads (200) in the browser');
  checkClean(admin, '/scorecard');
  const region = await checkFigures(admin, 'convener', '/scorecard');
  const quality = await checkQuality(admin, '/scorecard');
  check(quality.elements.find((item) => item.key === 'hrsn-screening')?.quarantined >= 1 &&
        quality.elements.find((item) => item.key === 'econsult')?.quarantined >= 1 &&
        quality.sources.find((item) => item.key === 'lakeshore-medicaid')?.quarantined >= 1,
    'the bad inputs are counted where they belong (HRSN, e-consults, the lakeshore-medicaid roster)', JSON.stringify(quality.elements));
  check(quality.sources.find((item) => item.key === 'scorecard-ehr')?.accepted === events.length,
    `the EHR source's accepted records are its ${events.length} events`, JSON.stringify(quality.sources));
  check(await evaluate(admin, "document.querySelectorAll('svg rect').length") > 10, '/scorecard draws its charts as inline SVG');
  await screenshot(admin, 'scorecard-region.png');

  // Filters, through the form.
  const members = (figures, stratum) => figures.find((item) => item.measure === 'attributed-members' && item.group === 'members' && item.stratum === stratum && item.population === 'initial-population')?.value;
  check(await submit(admin, `document.querySelector('select[name=payer]').value = 'lakeshore-medicaid'; document.querySelector('form.filters').requestSubmit(); true`) === 200,
    'the filter form submits (200)');
  const url = await evaluate(admin, 'location.href');
  check(url.includes('payer=lakeshore-medicaid'), 'the payer filter submits as a query parameter', url);
  checkClean(admin, '/scorecard?payer=');
  const byPayer = await checkFigures(admin, 'convener', '/scorecard?payer=lakeshore-medicaid');
  check(members(byPayer, 'lakeshore-medicaid') !== undefined && members(byPayer, 'lakeshore-medicaid') !== members(region, ''),
    `the payer filter changes the figures (attributed members ${members(region, '')} → ${members(byPayer, 'lakeshore-medicaid')})`);
  await screenshot(admin, 'scorecard-payer.png');
  check(await submit(admin, `document.querySelector('select[name=payer]').value = ''; document.querySelector('select[name=practice]').value = '${OWN_PRACTICE}'; document.querySelector('form.filters').requestSubmit(); true`) === 200,
    'the practice filter submits (200)');
  checkClean(admin, '/scorecard?practice=');
  const byPractice = await checkFigures(admin, 'convener', '/scorecard?practice=');
  check(members(byPractice, '') !== undefined && members(byPractice, '') !== members(region, ''),
    `the practice filter changes the figures (attributed members ${members(region, '')} → ${members(byPractice, '')})`);
  check(byPractice.every((figure) => figure.link.includes('subject=Organization')), "the practice filter's figures link to calls with the practice's subject");
  check(await navigate(admin, `${base}/scorecard?periodStart=2026-07-01&periodEnd=2026-07-31`) === 200, 'the period filter loads');
  const july = await checkFigures(admin, 'convener', '/scorecard (July)');
  check(members(july, '') !== members(region, ''), `the period filter changes the figures (${members(region, '')} → ${members(july, '')})`);
  check(await navigate(admin, `${base}/scorecard/practice/${OTHER_PRACTICE}?${period}`) === 200, "the admin opens any practice's report");

  // A practice.
  const clinic = await openTab();
  check(await signIn(clinic, 'clinic') === 200, "the browser exchanges the practice's token for a session");
  check(await navigate(clinic, `${base}/scorecard/practice/${OWN_PRACTICE}?${period}`) === 200, 'the practice opens its own unified report (200)');
  checkClean(clinic, '/scorecard/practice/{own}');
  const own = await checkFigures(clinic, 'clinic', '/scorecard/practice/{own}');
  const payerColumns = new Set(own.filter((figure) => figure.stratum).map((figure) => figure.stratum));
  check(payerColumns.size === 3, `the unified report shows every payer beside the total (${[...payerColumns].join(', ')})`);
  check(await evaluate(clinic, "document.querySelectorAll('svg').length") > 5, 'the unified report draws inline SVG charts');
  await screenshot(clinic, 'practice-report.png');
  await cdp('Emulation.setEmulatedMedia', { media: 'print' }, clinic.sessionId);
  check(await evaluate(clinic, "getComputedStyle(document.querySelector('form.filters')).display") === 'none', 'print media hides the form (printable)');
  await screenshot(clinic, 'practice-report-print.png');
  const { data: pdf } = await cdp('Page.printToPDF', { printBackground: true }, clinic.sessionId);
  writeFileSync(path.join(artifacts, 'practice-report.pdf'), Buffer.from(pdf, 'base64'));
  console.log(`     pdf: ${path.join(artifacts, 'practice-report.pdf')}`);
  check(Buffer.from(pdf, 'base64').subarray(0, 5).toString() === '%PDF-', 'the unified report prints to PDF');
  await cdp('Emulation.setEmulatedMedia', { media: '' }, clinic.sessionId);

  check(await navigate(clinic, `${base}/scorecard/practice/${OTHER_PRACTICE}?${period}`) === 404, "the practice cannot open another practice's report (404)");
  check(!(await evaluate(clinic, 'document.body.innerText')).includes('Unified'), "nothing of the other practice's report is shown");
  await screenshot(clinic, 'practice-other-404.png');
  check(await navigate(clinic, `${base}/scorecard`) === 403, "the practice cannot open the convener's page (403)");
  check(await navigate(clinic, `${base}/scorecard/quality`) === 403, "the practice cannot open the data-quality page (403)");
} catch (error) {
  check(false, `the browser run ended: ${error.stack ?? error}`);
} finally {
  try { await Promise.race([cdp('Browser.close'), new Promise((resolve) => setTimeout(resolve, 5000))]); } catch { /* already gone */ }
  // Chromium's helper processes (and the launcher script's child) outlive a kill of the one we
  // spawned and keep writing the profile: the whole process group goes, and the work folder is
  // removed once every child has exited.
  try { process.kill(-browser.pid, 'SIGKILL'); } catch { /* already gone */ }
  for (const child of children) child.kill('SIGKILL');
  await Promise.all(children.map((child) => (child.exitCode !== null || child.signalCode !== null)
    ? null : new Promise((resolve) => { child.once('exit', resolve); setTimeout(resolve, 5000); })));
  receiver.close();
  rmSync(work, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
}
console.log(failures === 0 ? 'all checks hold' : `${failures} check(s) failed`);
process.exit(failures === 0 ? 0 : 1);
