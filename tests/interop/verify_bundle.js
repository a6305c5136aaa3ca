#!/usr/bin/env node
// An independent verifier of devposture audit bundles, written from docs/audit-evidence.md
// alone (never the Python code), with Node.js built-ins only (crypto, zlib): what an auditor
// could write. tests/e2e/test_verifier_node.py runs it on real bundles.
// Usage: node verify_bundle.js BUNDLE.zip PUBLIC-KEY.pem
'use strict';
const fs = require('fs');
const crypto = require('crypto');
const zlib = require('zlib');

const problems = [];
const notes = [];
const problem = (text) => problems.push(text);

// ---------- zip ----------
function readZip(buf) {
  // End of central directory: no comment allowed, so it is the last 22 bytes.
  const eocdAt = buf.length - 22;
  if (eocdAt < 0 || buf.readUInt32LE(eocdAt) !== 0x06054b50) {
    // Maybe a comment follows: find it only to say so.
    const found = buf.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
    if (found >= 0) throw new Error('the zip has a comment or bytes after its end record');
    throw new Error('not a zip file (no end record)');
  }
  let entries = buf.readUInt16LE(eocdAt + 10);
  let cdSize = buf.readUInt32LE(eocdAt + 12);
  let cdStart = buf.readUInt32LE(eocdAt + 16);
  let cdEnd = eocdAt; // where the central directory must end
  const locAt = eocdAt - 20;
  if (locAt >= 0 && buf.readUInt32LE(locAt) === 0x07064b50) {
    const z64At = Number(buf.readBigUInt64LE(locAt + 8));
    if (buf.readUInt32LE(z64At) !== 0x06064b50) throw new Error('bad Zip64 end record');
    const z64Size = Number(buf.readBigUInt64LE(z64At + 4)) + 12;
    if (z64At + z64Size !== locAt) throw new Error('bytes between the Zip64 end record and its locator');
    entries = Number(buf.readBigUInt64LE(z64At + 32));
    cdSize = Number(buf.readBigUInt64LE(z64At + 40));
    cdStart = Number(buf.readBigUInt64LE(z64At + 48));
    cdEnd = z64At;
  }
  if (cdStart + cdSize !== cdEnd) throw new Error('bytes between the central directory and the end record');
  const members = [];
  let p = cdStart;
  for (let i = 0; i < entries; i++) {
    if (buf.readUInt32LE(p) !== 0x02014b50) throw new Error('bad central directory entry');
    const flags = buf.readUInt16LE(p + 8);
    const method = buf.readUInt16LE(p + 10);
    const crc = buf.readUInt32LE(p + 16);
    let csize = buf.readUInt32LE(p + 20);
    let usize = buf.readUInt32LE(p + 24);
    const nlen = buf.readUInt16LE(p + 28);
    const xlen = buf.readUInt16LE(p + 30);
    const clen = buf.readUInt16LE(p + 32);
    let offset = buf.readUInt32LE(p + 42);
    const name = buf.subarray(p + 46, p + 46 + nlen).toString('utf8');
    // Zip64 extra field: the values that are 0xFFFFFFFF, in order.
    let x = p + 46 + nlen;
    const xend = x + xlen;
    while (x + 4 <= xend) {
      const id = buf.readUInt16LE(x);
      const size = buf.readUInt16LE(x + 2);
      if (id === 0x0001) {
        let q = x + 4;
        if (usize === 0xffffffff) { usize = Number(buf.readBigUInt64LE(q)); q += 8; }
        if (csize === 0xffffffff) { csize = Number(buf.readBigUInt64LE(q)); q += 8; }
        if (offset === 0xffffffff) { offset = Number(buf.readBigUInt64LE(q)); q += 8; }
      }
      x += 4 + size;
    }
    if (clen !== 0) throw new Error(`member ${name} has a comment`);
    members.push({ name, flags, method, crc, csize, usize, offset });
    p = xend + clen;
  }
  if (p !== cdEnd) throw new Error('the central directory does not fill its space');
  // Members must follow each other from byte 0 with nothing between them.
  let expect = 0;
  for (const m of members) {
    if (m.offset !== expect) throw new Error(`bytes before or between members (before ${m.name})`);
    if (buf.readUInt32LE(m.offset) !== 0x04034b50) throw new Error(`no local header for ${m.name}`);
    const nlen = buf.readUInt16LE(m.offset + 26);
    const xlen = buf.readUInt16LE(m.offset + 28);
    const lname = buf.subarray(m.offset + 30, m.offset + 30 + nlen).toString('utf8');
    if (lname !== m.name) throw new Error(`member ${m.name}: its local header names ${lname}`);
    m.dataStart = m.offset + 30 + nlen + xlen;
    let end = m.dataStart + m.csize;
    if (m.flags & 0x08) { // data descriptor: optional signature, crc, sizes (4 or 8 bytes each)
      let d = end;
      if (buf.readUInt32LE(d) === 0x08074b50) d += 4;
      d += 4;
      const zip64 = m.csize >= 0xffffffff || m.usize >= 0xffffffff ||
        (buf.readUInt32LE(d) !== m.csize || buf.readUInt32LE(d + 4) !== m.usize);
      end = d + (zip64 ? 16 : 8);
    }
    expect = end;
  }
  if (expect !== cdStart) throw new Error('bytes between the last member and the central directory');
  const seen = new Map();
  for (const m of members) {
    if (seen.has(m.name)) throw new Error(`member ${m.name} appears twice`);
    const raw = buf.subarray(m.dataStart, m.dataStart + m.csize);
    let data;
    if (m.method === 0) data = Buffer.from(raw);
    else if (m.method === 8) data = zlib.inflateRawSync(raw);
    else throw new Error(`member ${m.name}: compression method ${m.method}`);
    if (data.length !== m.usize) throw new Error(`member ${m.name}: size differs from the directory's`);
    if (zlib.crc32 && (zlib.crc32(data) >>> 0) !== m.crc) throw new Error(`member ${m.name}: CRC differs`);
    seen.set(m.name, data);
  }
  return seen;
}

// ---------- the chain ----------
const FIELDS = ['at_us', 'hash', 'key', 'kind', 'payload', 'prev_hash', 'seq'];
const HEX64 = /^[0-9a-f]{64}$/;

function F(bytes) {
  const len = Buffer.alloc(8);
  len.writeBigUInt64BE(BigInt(bytes.length));
  return Buffer.concat([len, bytes]);
}
const num = (n) => Buffer.from(String(n), 'ascii');
const txt = (s) => Buffer.from(s, 'utf8');

function entryHash(e) {
  const h = crypto.createHash('sha256');
  for (const part of [txt('devposture-chain/v1'), Buffer.from(e.prev_hash, 'hex'), num(e.seq),
    txt(e.kind), num(e.at_us), txt(e.key), txt(e.payload)]) h.update(F(part));
  return h.digest('hex');
}

// Times in µs stay below 2^53 until the year 2255: JSON numbers hold them exactly.
function parseLine(line) {
  return JSON.parse(line);
}

const name = (e) => `${e.kind} record seq ${e.seq} (${e.key})`;

function checkLine(e, where) {
  const keys = Object.keys(e).sort();
  if (keys.join(',') !== FIELDS.join(',')) {
    problem(`${where} line for seq ${e.seq}: its fields are ${keys.join(', ')}, not the seven the hash covers`);
    return false;
  }
  if (!HEX64.test(e.hash) || !HEX64.test(e.prev_hash) || typeof e.payload !== 'string' ||
      typeof e.kind !== 'string' || typeof e.key !== 'string') {
    problem(`${where}: ${name(e)} is malformed`);
    return false;
  }
  if (entryHash(e) !== e.hash) {
    problem(`${where}: ${name(e)} does not match its hash: edited`);
    return false;
  }
  return true;
}

function lines(data) {
  const text = data.toString('utf8');
  if (text === '') return [];
  if (!text.endsWith('\n')) problem('a member does not end its last line');
  return text.replace(/\n$/, '').split('\n');
}

// ---------- the bundle ----------
// ---------- format 5 ----------
// A report_facts entry's records, one object a report, from its columns.
function factRecords(e, p) {
  const names = ['report_id', 'device_id', 'received_us', 'collected_us', 'agent_version', 'clock_skew_ms', 'own', 'fact_set'];
  const cols = p.columns || {};
  const n = (cols.report_id || []).length;
  if (!names.every((k) => Array.isArray(cols[k]) && cols[k].length === n)) {
    problem(`${name(e)}: its columns are not lists of one length`);
    return [];
  }
  const out = [];
  for (let i = 0; i < n; i++) out.push(Object.fromEntries(names.map((k) => [k, cols[k][i]])));
  return out;
}

// The bundle's window of fact sets and parts: an item is held with the count of group
// entries met when it was last shipped or named; every 64th group entry, those not used
// within the last 256 are dropped, then, past 48 MB (each item counted with 150 bytes more),
// the least recently used, ties in the order first held.
const WINDOW_GROUPS = 256;
const SWEEP_EVERY = 64;
const WINDOW_BYTES = 48 * 1024 * 1024;
const HELD_COST = 150;
class FactWindow {
  constructor() { this.sets = new Map(); this.parts = new Map(); this.clock = 0; }
  hold(map, key, value) {
    const had = map.get(key);
    if (had) { had.value = value; had.mark = this.clock; } else map.set(key, { value, mark: this.clock });
  }
  take(e, line) {
    const b64 = (t) => { const b = Buffer.from(t, 'base64'); if (b.toString('base64') !== t) problem(`${name(e)}: its line holds bytes that are not plain base64`); return b; };
    for (const t of line.parts || []) {
      const part = b64(t);
      this.hold(this.parts, crypto.createHash('sha256').update(part).digest('hex'), part);
    }
    for (const t of line.sets || []) {
      const set = b64(t);
      const digest = crypto.createHash('sha256').update(set).digest('hex');
      if (set.length % 36) { problem(`${name(e)}: fact set ${digest.slice(0, 16)}… is not whole references`); continue; }
      let lacking = null;
      let index = 0;
      for (let at = 0; at < set.length; at += 36) {
        const before = set.readUInt32BE(at);
        if (before < index) { lacking = 'order'; break; }
        index = before;
        const held = this.parts.get(set.subarray(at + 4, at + 36).toString('hex'));
        if (!held) { lacking = set.subarray(at + 4, at + 36).toString('hex'); break; }
        held.mark = this.clock;
      }
      if (lacking === 'order') { problem(`${name(e)}: fact set ${digest.slice(0, 16)}… places its parts out of order`); continue; }
      if (lacking) { problem(`${name(e)}: fact set ${digest.slice(0, 16)}… names part ${lacking.slice(0, 16)}…, which the bundle does not hold: deleted`); continue; }
      this.hold(this.sets, digest, set);
    }
  }
  named(digest) {
    const held = typeof digest === 'string' ? this.sets.get(digest) : undefined;
    if (held) held.mark = this.clock;
    return Boolean(held);
  }
  nextGroup() {
    this.clock++;
    if (this.clock % SWEEP_EVERY) return;
    const oldest = this.clock - WINDOW_GROUPS;
    for (const map of [this.sets, this.parts]) {
      for (const [k, v] of map) if (v.mark < oldest) map.delete(k);
      let total = 0;
      for (const v of map.values()) total += v.value.length + HELD_COST;
      if (total <= WINDOW_BYTES) continue;
      for (const [k, v] of [...map.entries()].sort((a, b) => a[1].mark - b[1].mark)) {
        if (total <= WINDOW_BYTES) break;
        map.delete(k);
        total -= v.value.length + HELD_COST;
      }
    }
  }
}

function verify(zipPath, keyPath) {
  let members;
  try {
    members = readZip(fs.readFileSync(zipPath));
  } catch (err) {
    problem(`the zip: ${err.message}`);
    return;
  }
  const manifestBytes = members.get('manifest.json');
  const sigBytes = members.get('manifest.sig');
  if (!manifestBytes || !sigBytes) { problem('manifest.json or manifest.sig is missing'); return; }

  // 1. The signature.
  const pem = fs.readFileSync(keyPath, 'utf8');
  const key = crypto.createPublicKey(pem);
  const fingerprint = 'sha256:' + crypto.createHash('sha256')
    .update(key.export({ type: 'spki', format: 'der' })).digest('hex');
  const sigText = sigBytes.toString('ascii');
  if (!/^[A-Za-z0-9+/]+={0,2}\n$/.test(sigText)) problem('manifest.sig is not base64 and one newline');
  const signed = Buffer.concat([Buffer.from('devposture-audit-bundle/v1\n'), manifestBytes]);
  if (!crypto.verify(null, signed, key, Buffer.from(sigText.trim(), 'base64'))) {
    problem('the manifest signature does not verify with this key: manifest changed or another key signed it');
  }
  const manifest = parseLine(manifestBytes.toString('utf8'));
  if (manifest.signing_key !== fingerprint) {
    problem(`the manifest names signing key ${manifest.signing_key}, the key given is ${fingerprint}`);
  }
  const format = manifest.format;
  if (!/^devposture-audit-bundle\/[1-5]$/.test(format)) problem(`unknown format ${format}`);

  // 2. Every member's SHA-256.
  const listed = manifest.members || {};
  for (const [m, digest] of Object.entries(listed)) {
    const data = members.get(m);
    if (!data) { problem(`member ${m} was removed`); continue; }
    const got = crypto.createHash('sha256').update(data).digest('hex');
    if (got !== digest) problem(`member ${m} was changed after the collector signed it`);
  }
  for (const m of members.keys()) {
    if (!(m in listed) && m !== 'manifest.json' && m !== 'manifest.sig') problem(`member ${m} was added`);
  }
  const member = (m) => members.get(m) || Buffer.alloc(0);

  // 3. The chain.
  const c = manifest.chain;
  const first = c.first_seq === null ? null : Number(c.first_seq);
  const last = c.last_seq === null ? null : Number(c.last_seq);
  const prevSeq = c.prev_seq === undefined ? (first === null ? null : first - 1) : Number(c.prev_seq);
  if (first === null || last === null) {
    if (first !== last) problem('the signed range has only one end');
    if (c.last_hash !== c.prev_hash) problem('an empty period whose last hash is not its prev hash');
  } else {
    if (prevSeq !== first - 1) problem(`prev_seq ${prevSeq} is not just before first_seq ${first}`);
    if (last < first) problem('last_seq before first_seq');
  }
  const periodLast = last === null ? prevSeq : last;
  if (c.head_seq !== undefined && Number(c.head_seq) < periodLast) problem('the signed head is before the period\'s last entry');
  if (c.head_seq !== undefined && Number(c.head_seq) === periodLast && c.head_hash !== c.last_hash) {
    problem('the signed head is the period\'s last entry with another hash');
  }

  const index = new Map();
  for (const line of lines(member('index.jsonl'))) {
    let row;
    try { row = parseLine(line); } catch { problem(`index line not JSON: ${line.slice(0, 80)}`); continue; }
    if (!Array.isArray(row) || row.length !== 4) { problem(`index line malformed: ${line.slice(0, 80)}`); continue; }
    const s = Number(row[0]);
    if (index.has(s)) problem(`index names seq ${s} twice`);
    index.set(s, { kind: row[1], key: row[2], hash: row[3] });
  }

  const from = BigInt(manifest.period.from_us);
  const to = BigInt(manifest.period.to_us);
  const chain = new Map();
  const counts = {};
  let prev = null; // previous entry read, in file order
  for (const line of lines(member('chain.jsonl'))) {
    let e;
    try { e = parseLine(line); } catch { problem(`chain line not JSON: ${line.slice(0, 80)}`); continue; }
    const ok = checkLine(e, 'chain.jsonl');
    const seq = Number(e.seq);
    if (chain.has(seq)) problem(`${name(e)} appears twice: inserted`);
    if (prev !== null && seq < Number(prev.seq)) problem(`${name(e)} comes after seq ${prev.seq}: reordered`);
    if (first === null || seq < first || seq > last) problem(`${name(e)} is outside the signed range: inserted`);
    const ix = index.get(seq);
    if (!ix) problem(`index has no line for ${name(e)}: the index was edited`);
    else if (ix.kind !== e.kind || ix.key !== e.key || ix.hash !== e.hash) problem(`${name(e)} is not the one the index names (${ix.kind} ${ix.key}): replaced`);
    if (BigInt(e.at_us) < from || BigInt(e.at_us) >= to) problem(`${name(e)} was written outside the period`);
    if (prev !== null && BigInt(e.at_us) < BigInt(prev.at_us)) problem(`${name(e)} is written earlier than the entry before it`);
    if (ok) {
      const before = chain.get(seq - 1);
      const link = seq === first ? c.prev_hash : before ? before.hash : null;
      if (link !== null && e.prev_hash !== link) problem(`${name(e)} does not link to the entry before it: edited or replaced`);
    }
    if (!chain.has(seq)) chain.set(seq, e);
    const group = e.kind === 'reports' || e.kind === 'report_facts';
    const held = !ok ? 0 : e.kind === 'reports' ? parseLine(e.payload).reports.length
      : e.kind === 'report_facts' ? parseLine(e.payload).columns.report_id.length : 1;
    counts[group ? 'report' : e.kind] = (counts[group ? 'report' : e.kind] || 0) + (group ? held : 1);
    prev = e;
  }
  if (first !== null) {
    const missing = [];
    for (let s = first; s <= last; s++) if (!chain.has(s)) missing.push(s);
    if (missing.length) problem(`chain entries missing: seq ${missing.slice(0, 20).join(', ')}${missing.length > 20 ? ' …' : ''}: deleted`);
    const end = chain.get(last);
    if (end && end.hash !== c.last_hash) problem(`the last entry seq ${last} is not the signed last hash`);
  }
  for (const s of index.keys()) if (!chain.has(s)) problem(`the index names seq ${s}, which chain.jsonl does not hold: deleted`);
  if (index.size !== chain.size) problem(`the index holds ${index.size} lines for ${chain.size} entries`);
  for (const [k, n] of Object.entries(manifest.counts || {})) {
    if ((counts[k] || 0) !== Number(n)) problem(`the manifest counts ${n} ${k} records, the chain holds ${counts[k] || 0}`);
  }
  for (const [k, n] of Object.entries(counts)) if (!(k in (manifest.counts || {}))) problem(`the manifest does not count ${n} ${k} records`);

  // Pruning claims.
  const prunes = [];
  for (const line of lines(member('pruned.jsonl'))) {
    const e = parseLine(line);
    if (!checkLine(e, 'pruned.jsonl')) continue;
    const seq = Number(e.seq);
    if (e.kind !== 'prune') { problem(`pruned.jsonl: ${name(e)} is not a prune entry`); continue; }
    if (first !== null && seq >= first && seq <= last) {
      const inChain = chain.get(seq);
      if (!inChain || inChain.hash !== e.hash) problem(`pruned.jsonl: ${name(e)} is not the chain's entry at that seq`);
    }
    const p = parseLine(e.payload);
    if (BigInt(p.before_us) > BigInt(p.at_us)) problem(`pruned.jsonl: ${name(e)} deletes bodies received after it ran`);
    prunes.push({ seq, at_us: p.at_us, before_us: p.before_us, retention_days: p.retention_days });
  }
  const claimed = (manifest.pruned && manifest.pruned.prunes) || [];
  const same = (a, b) => Number(a.seq) === Number(b.seq) && BigInt(a.at_us) === BigInt(b.at_us) &&
    BigInt(a.before_us) === BigInt(b.before_us) && Number(a.retention_days) === Number(b.retention_days);
  if (claimed.length !== prunes.length || !claimed.every((p, i) => same(p, prunes[i]))) {
    problem('the manifest\'s prunings are not the entries in pruned.jsonl');
  }
  const prunedBefore = prunes.reduce((m, p) => (BigInt(p.before_us) > m ? BigInt(p.before_us) : m), -1n);

  // 4. Every report's body.
  const records = new Map(); // seq -> [{record}], in order
  let sealedThrough = null;
  for (const [seq, e] of chain) {
    if (e.kind === 'report') records.set(seq, [parseLine(e.payload)]);
    if (e.kind === 'reports' || e.kind === 'report_facts') {
      const p = parseLine(e.payload);
      if (e.key !== `${p.first_n}-${p.last_n}`) problem(`${name(e)}: its key is not first_n-last_n of its payload`);
      records.set(seq, e.kind === 'reports' ? p.reports : factRecords(e, p));
      // Groups seal report numbers in increasing order, each once.
      if (sealedThrough !== null && Number(p.first_n) <= sealedThrough) problem(`${name(e)} seals reports ${p.first_n}-${p.last_n}, but an earlier group sealed up to ${sealedThrough}: counted twice`);
      sealedThrough = Math.max(sealedThrough === null ? -Infinity : sealedThrough, Number(p.last_n));
    }
  }
  const seenLines = new Set();
  const factLines = new Map(); // seq -> a format-5 group's line
  let pruned = 0;
  let lastLine = null;
  const checkBody = (e, rec, b64) => {
    if (b64 === undefined) {
      if (BigInt(rec.received_us) < prunedBefore) { pruned++; return; }
      problem(`${name(e)}: the body of report ${rec.report_id} is missing: deleted`);
      return;
    }
    const body = Buffer.from(b64, 'base64');
    if (body.toString('base64') !== b64) problem(`${name(e)}: report ${rec.report_id}'s body is not plain base64`);
    const digest = crypto.createHash('sha256').update(body).digest('hex');
    if (digest !== rec.body_sha256 || body.length !== Number(rec.body_bytes)) problem(`${name(e)}: the body of report ${rec.report_id} does not match its record: edited`);
  };
  for (const line of lines(member('reports.jsonl'))) {
    const r = parseLine(line);
    const seq = Number(r.seq);
    const e = chain.get(seq);
    if (seenLines.has(seq)) { problem(`reports.jsonl holds seq ${seq} twice: inserted`); continue; }
    if (lastLine !== null && seq < lastLine) problem(`reports.jsonl: the line for seq ${seq} comes after seq ${lastLine}: reordered`);
    lastLine = seq;
    seenLines.add(seq);
    if (!e || (e.kind !== 'report' && e.kind !== 'reports' && e.kind !== 'report_facts')) { problem(`reports.jsonl line for seq ${seq}: no report entry there: inserted`); continue; }
    const recs = records.get(seq);
    if (e.kind === 'report_facts') {
      factLines.set(seq, r); // taken into the window in the chain's order, below
    } else if (e.kind === 'report') {
      if (r.report_id !== recs[0].report_id) problem(`${name(e)}: reports.jsonl names report ${r.report_id}`);
      if ('facts' in r) notes.push(`seq ${seq}: facts not compared with the body (needs a protobuf decoder)`);
      checkBody(e, recs[0], r.body_base64);
    } else {
      const given = r.reports || [];
      let at = 0;
      const ids = new Map(given.map(([id, b64]) => [id, b64]));
      if (ids.size !== given.length) problem(`${name(e)}: a report appears twice on its line: inserted`);
      for (const rec of recs) {
        checkBody(e, rec, ids.get(rec.report_id)); // matched by id: the order is not evidence
      }
      const held = new Set(recs.map((x) => x.report_id));
      for (const [id] of given) if (!held.has(id)) problem(`${name(e)}: a body of report ${id}, which the group does not hold: inserted`);
    }
  }
  // Format 5: every group entry, in the chain's order, its line into the window (or none),
  // then each report's fact set found in it.
  const window = new FactWindow();
  for (const seq of [...chain.keys()].sort((a, b) => a - b)) {
    const e = chain.get(seq);
    if (e.kind !== 'report_facts') continue;
    const line = factLines.get(seq);
    if (line) window.take(e, line);
    for (const rec of records.get(seq) || []) {
      if (window.named(rec.fact_set)) continue;
      if (BigInt(rec.received_us) < prunedBefore) { pruned++; continue; }
      problem(`${name(e)}: the body of report ${rec.report_id} is missing: deleted`);
    }
    window.nextGroup();
  }
  for (const [seq, e] of chain) {
    if (!records.has(seq) || seenLines.has(seq) || e.kind === 'report_facts') continue;
    for (const rec of records.get(seq)) checkBody(e, rec, undefined);
    if (e.kind === 'report' || records.get(seq).some((x) => BigInt(x.received_us) >= prunedBefore)) {
      problem(`${name(e)}: no line in reports.jsonl`);
    }
  }
  const claimedBodies = Number((manifest.pruned && manifest.pruned.bodies) || 0);
  if (pruned !== claimedBodies) problem(`${pruned} bodies are missing as pruned; the manifest says ${claimedBodies}`);
  if (pruned) notes.push(`${pruned} report bodies were deleted under the retention policy`);

  // 5. The opening.
  for (const line of lines(member('opening.jsonl'))) {
    const e = parseLine(line);
    checkLine(e, 'opening.jsonl');
    if (first !== null && Number(e.seq) >= first) problem(`opening.jsonl: ${name(e)} is not before the period`);
  }

  // 6. The HTML report: its bytes are covered by check 2; redrawing it needs devposture.
  notes.push(`report.html (layout ${manifest.report_layout || 1}) checked by its digest, not redrawn`);
  return manifest;
}

const [zipPath, keyPath] = process.argv.slice(2);
if (!zipPath || !keyPath) {
  console.error('usage: node verify.js BUNDLE.zip PUBLIC-KEY.pem');
  process.exit(2);
}
const manifest = verify(zipPath, keyPath);
for (const p of problems) console.log(`problem: ${p}`);
for (const n of notes) console.log(`note: ${n}`);
if (problems.length) {
  console.log(`NOT VERIFIED: ${problems.length} problem(s)`);
  process.exit(1);
}
console.log(`VERIFIED: chain seq ${manifest.chain.first_seq}-${manifest.chain.last_seq}, last hash ${manifest.chain.last_hash}`);
