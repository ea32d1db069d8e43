// Profiles the filter's per-request hot path outside Envoy: loads model_workers.wasm into
// node's V8 with a fake proxy-wasm 0.2.1 host that implements just enough of the ABI (header
// maps, buffers with Envoy's set_buffer semantics, shared data with CAS, metrics, time,
// foreign functions, filter state shared by a request's downstream and upstream contexts),
// drives complete request lifecycles through it (the downstream filter, attempt 1's upstream
// filter, the response), and reports per request:
// every host call by name, host→wasm memory allocations, bytes copied across the boundary,
// the time spent inside the VM, and the linear-memory growth of concurrent 1 MB requests.
//
//   node bench/hostcalls.mjs <model_workers.wasm> <plugin-config-file> [iterations]
//
// Output: one JSON object on stdout. Used by `make bench` (bench/src/main.rs); std node only.
import { readFileSync } from 'node:fs';
import { WASI } from 'node:wasi';
import { performance } from 'node:perf_hooks';

const [wasmPath, configPath, itersArg] = process.argv.slice(2);
if (!wasmPath || !configPath) {
  console.error('usage: node hostcalls.mjs <wasm> <plugin-config-file> [iterations]');
  process.exit(2);
}
const ITERS = Number(itersArg || 300);
const config = readFileSync(configPath);

// proxy-wasm enums
const OK = 0, NOT_FOUND = 1, BAD_ARGUMENT = 2, CAS_MISMATCH = 8;
const BUF = { REQ_BODY: 0, RESP_BODY: 1, VM_CONFIG: 6, PLUGIN_CONFIG: 7 };
const MAP = { REQ: 0, REQ_TRAILERS: 1, RESP: 2, RESP_TRAILERS: 3 };

const enc = new TextEncoder();
const dec = new TextDecoder();

let inst; // WebAssembly.Instance
let counting = false;
let hostMs = 0; // time spent inside this fake host's functions (subtracted from VM time)
const calls = new Map();
const stats = { toWasmBytes: 0, fromWasmBytes: 0, memAllocs: 0, logs: {}, localReplies: [] };
function count(name) {
  if (counting) calls.set(name, (calls.get(name) || 0) + 1);
}
const mem = () => new Uint8Array(inst.exports.memory.buffer);
const dv = () => new DataView(inst.exports.memory.buffer);
const readBytes = (ptr, len) => {
  if (counting) stats.fromWasmBytes += len;
  return mem().slice(ptr, ptr + len);
};
const readStr = (ptr, len) => dec.decode(readBytes(ptr, len));
// Hands bytes to the VM the way Envoy does: proxy_on_memory_allocate, copy, write ptr+len.
function give(bytes, retPtr, retLen) {
  if (bytes.length === 0) {
    dv().setUint32(retPtr, 0, true);
    dv().setUint32(retLen, 0, true);
    return OK;
  }
  if (counting) { stats.memAllocs++; stats.toWasmBytes += bytes.length; }
  const p = inst.exports.proxy_on_memory_allocate(bytes.length);
  mem().set(bytes, p);
  dv().setUint32(retPtr, p, true);
  dv().setUint32(retLen, bytes.length, true);
  return OK;
}

// --- per-stream state (one request at a time is "current", as with set_effective_context)
const streams = new Map();
let cur = null;
// `props`: the request's filter state, shared by the downstream context and its attempts'
// upstream contexts (as in Envoy: an upstream filter sees the downstream stream's state).
const newStream = (id, props = new Map()) => ({ id, props, maps: { 0: [], 1: [], 2: [], 3: [] }, bufs: { 0: new Uint8Array(0), 1: new Uint8Array(0) } });
const shared = new Map(); // key -> { value, cas }
let casSeq = 1;
let metricSeq = 1;

function serializeMap(pairs) {
  const parts = pairs.map(([k, v]) => [enc.encode(k), typeof v === 'string' ? enc.encode(v) : v]);
  let size = 4 + parts.length * 8;
  for (const [k, v] of parts) size += k.length + v.length + 2;
  const out = new Uint8Array(size);
  const d = new DataView(out.buffer);
  d.setUint32(0, parts.length, true);
  let p = 4 + parts.length * 8;
  parts.forEach(([k, v], i) => {
    d.setUint32(4 + i * 8, k.length, true);
    d.setUint32(8 + i * 8, v.length, true);
    out.set(k, p); p += k.length + 1;
    out.set(v, p); p += v.length + 1;
  });
  return out;
}
function deserializeMap(bytes) {
  if (bytes.length < 4) return [];
  const d = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = d.getUint32(0, true);
  const out = [];
  let p = 4 + n * 8;
  for (let i = 0; i < n; i++) {
    const kl = d.getUint32(4 + i * 8, true), vl = d.getUint32(8 + i * 8, true);
    const k = dec.decode(bytes.subarray(p, p + kl)); p += kl + 1;
    const v = dec.decode(bytes.subarray(p, p + vl)); p += vl + 1;
    out.push([k, v]);
  }
  return out;
}
const mapOf = (t) => (cur ? cur.maps[t] : null);

const env = {
  proxy_log(level, ptr, len) { const m = readStr(ptr, len); stats.logs[level] = (stats.logs[level] || 0) + (counting ? 1 : 0); if (level >= 3) process.stderr.write(`[wasm ${level}] ${m}\n`); return OK; },
  proxy_get_log_level(ret) { dv().setUint32(ret, 2, true); return OK; },
  proxy_get_current_time_nanoseconds(ret) { dv().setBigUint64(ret, BigInt(Date.now()) * 1000000n, true); return OK; },
  proxy_set_tick_period_milliseconds() { return OK; },
  proxy_get_buffer_bytes(type, start, max, retPtr, retLen) {
    let b;
    if (type === BUF.PLUGIN_CONFIG) b = config;
    else if (type === BUF.VM_CONFIG) b = new Uint8Array(0);
    else if (cur && (type === BUF.REQ_BODY || type === BUF.RESP_BODY)) b = cur.bufs[type];
    else return NOT_FOUND;
    const end = Math.min(b.length, start + Math.min(max, 0x7fffffff));
    return give(b.subarray(start, end), retPtr, retLen);
  },
  // Envoy's Buffer::copyFrom: start 0 drains `size` bytes then prepends; start >= length
  // appends; anything else is BadArgument.
  proxy_set_buffer_bytes(type, start, size, ptr, len) {
    if (!cur || (type !== BUF.REQ_BODY && type !== BUF.RESP_BODY)) return NOT_FOUND;
    const data = readBytes(ptr, len);
    const b = cur.bufs[type];
    let nb;
    if (start === 0) { nb = new Uint8Array(len + Math.max(0, b.length - size)); nb.set(data, 0); nb.set(b.subarray(Math.min(size, b.length)), len); }
    else if (start >= b.length) { nb = new Uint8Array(b.length + len); nb.set(b, 0); nb.set(data, b.length); }
    else return BAD_ARGUMENT;
    cur.bufs[type] = nb;
    return OK;
  },
  proxy_get_header_map_pairs(t, retPtr, retLen) { const m = mapOf(t); if (!m) return NOT_FOUND; return give(serializeMap(m), retPtr, retLen); },
  proxy_set_header_map_pairs(t, ptr, len) { const m = mapOf(t); if (!m) return NOT_FOUND; cur.maps[t] = deserializeMap(readBytes(ptr, len)); return OK; },
  proxy_get_header_map_value(t, kp, kl, retPtr, retLen) {
    const m = mapOf(t); if (!m) return NOT_FOUND;
    const k = readStr(kp, kl).toLowerCase();
    const vs = m.filter(([n]) => n === k).map(([, v]) => v);
    if (vs.length === 0) return NOT_FOUND;
    return give(enc.encode(vs.join(',')), retPtr, retLen);
  },
  proxy_replace_header_map_value(t, kp, kl, vp, vl) {
    const m = mapOf(t); if (!m) return NOT_FOUND;
    const k = readStr(kp, kl).toLowerCase(), v = readStr(vp, vl);
    const i = m.findIndex(([n]) => n === k);
    if (i < 0) m.push([k, v]); else { m[i] = [k, v]; cur.maps[t] = m.filter(([n], j) => n !== k || j === i); }
    return OK;
  },
  proxy_add_header_map_value(t, kp, kl, vp, vl) { const m = mapOf(t); if (!m) return NOT_FOUND; m.push([readStr(kp, kl).toLowerCase(), readStr(vp, vl)]); return OK; },
  proxy_remove_header_map_value(t, kp, kl) { const m = mapOf(t); if (!m) return NOT_FOUND; const k = readStr(kp, kl).toLowerCase(); cur.maps[t] = m.filter(([n]) => n !== k); return OK; },
  proxy_get_property(pp, pl, retPtr, retLen) {
    const path = readStr(pp, pl).split('\0').filter(Boolean).join('.');
    if (path === 'response.code_details') return give(enc.encode('via_upstream'), retPtr, retLen);
    const v = cur && cur.props.get(path);
    return v ? give(v, retPtr, retLen) : NOT_FOUND;
  },
  proxy_set_property(pp, pl, vp, vl) {
    if (!cur) return NOT_FOUND;
    cur.props.set(readStr(pp, pl).split('\0').filter(Boolean).join('.'), readBytes(vp, vl));
    return OK;
  },
  proxy_get_shared_data(kp, kl, retPtr, retLen, retCas) {
    const e = shared.get(readStr(kp, kl));
    if (!e) return NOT_FOUND;
    dv().setUint32(retCas, e.cas, true);
    return give(e.value, retPtr, retLen);
  },
  proxy_set_shared_data(kp, kl, vp, vl, cas) {
    const k = readStr(kp, kl), e = shared.get(k);
    if (cas !== 0 && e && e.cas !== cas) return CAS_MISMATCH;
    shared.set(k, { value: readBytes(vp, vl), cas: ++casSeq });
    return OK;
  },
  proxy_call_foreign_function(np, nl, ap, al, retPtr, retLen) { readStr(np, nl); dv().setUint32(retPtr, 0, true); dv().setUint32(retLen, 0, true); return OK; },
  proxy_define_metric(type, np, nl, ret) { dv().setUint32(ret, metricSeq++, true); return OK; },
  proxy_increment_metric() { return OK; },
  proxy_record_metric() { return OK; },
  proxy_get_metric(id, ret) { dv().setBigUint64(ret, 0n, true); return OK; },
  proxy_send_local_response(status, dp, dl, bp, bl) { stats.localReplies.push(`${status} ${readStr(bp, bl).slice(0, 200)}`); return OK; },
  proxy_continue_stream() { return OK; },
  proxy_close_stream() { return OK; },
  proxy_set_effective_context(id) { cur = streams.get(id) || cur; return OK; },
  proxy_done() { return OK; },
  proxy_get_status() { return NOT_FOUND; },
  proxy_http_call() { return BAD_ARGUMENT; },
};

const module = new WebAssembly.Module(readFileSync(wasmPath));
// The key a config's `${ secrets:ANTHROPIC_API_KEY }` resolves to (the translated profile).
const wasi = new WASI({ version: 'preview1', args: [], env: { ANTHROPIC_API_KEY: 'sk-ant-bench' }, returnOnExit: true });
const wasiImports = wasi.getImportObject().wasi_snapshot_preview1;
const imports = { env: {}, wasi_snapshot_preview1: {} };
for (const imp of WebAssembly.Module.imports(module)) {
  if (imp.kind !== 'function') continue;
  if (imp.module === 'env') {
    const f = env[imp.name] || (() => OK);
    imports.env[imp.name] = (...a) => {
      count(imp.name);
      const t = performance.now();
      try { return f(...a); } finally { hostMs += performance.now() - t; }
    };
  } else if (imp.module === 'wasi_snapshot_preview1') {
    const f = wasiImports[imp.name];
    imports.wasi_snapshot_preview1[imp.name] = (...a) => { count(`wasi:${imp.name}`); return f(...a); };
  }
}
inst = new WebAssembly.Instance(module, imports);
wasi.initialize(inst);
const x = inst.exports;
const ROOT = 1;
x.proxy_on_context_create(ROOT, 0);
if (!x.proxy_on_vm_start(ROOT, 0)) throw new Error('on_vm_start returned false');
if (!x.proxy_on_configure(ROOT, config.length)) throw new Error('on_configure returned false (see stderr)');

// --- request bodies: the same generator as the Rust bench (messages first, then model) -----
function chatBody(len, stream) {
  const FILLER = 'The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs. ';
  const suffix = `],"model":"rr"${stream ? ',"stream":true' : ''}}`;
  let s = '{"messages":[';
  for (let i = 0; ; i++) {
    const open = `${i > 0 ? ',' : ''}{"role":"${i % 2 === 0 ? 'user' : 'assistant'}","content":"`;
    const room = Math.max(0, len - (s.length + open.length + 2 + suffix.length));
    const n = room > 1100 ? 1000 : room;
    s += open + FILLER.repeat(Math.ceil(n / FILLER.length) + 1).slice(0, n) + '"}';
    if (n === room) break;
  }
  return enc.encode(s + suffix);
}

let nextCtx = 100;
const RESP_BODY = enc.encode(JSON.stringify({ id: 'x', object: 'chat.completion', model: 'gpt-a', choices: [{ index: 0, message: { role: 'assistant', content: 'Hello from up' } }], pad: 'x'.repeat(900) }));

// Request phase only: create, headers (pause), body in `chunks` callbacks.
function requestPhase(body, chunks) {
  const id = nextCtx++;
  const s = newStream(id);
  streams.set(id, s);
  cur = s;
  s.maps[MAP.REQ] = [[':authority', '127.0.0.1:10000'], [':path', '/v1/chat/completions'], [':method', 'POST'], [':scheme', 'http'],
    ['content-type', 'application/json'], ['content-length', String(body.length)], ['x-forwarded-proto', 'http'],
    ['x-request-id', '6c1f3b0e-2a4b-4f43-9a43-d2b4bf0c1c1e']];
  x.proxy_on_context_create(id, ROOT);
  const h = x.proxy_on_request_headers(id, s.maps[MAP.REQ].length, 0);
  if (h !== 1) throw new Error(`on_request_headers returned ${h}, want Pause; local replies: ${stats.localReplies.slice(-1)}`);
  const step = Math.ceil(body.length / chunks);
  let r;
  for (let off = 0; off < body.length; off += step) {
    const end = Math.min(body.length, off + step);
    s.bufs[BUF.REQ_BODY] = body.subarray(0, end); // Envoy passes the buffered total
    cur = s;
    r = x.proxy_on_request_body(id, end, end === body.length ? 1 : 0);
  }
  if (r !== 0) throw new Error(`on_request_body returned ${r}; local replies: ${stats.localReplies.slice(-1)}`);
  const routed = s.maps[MAP.REQ].find(([k]) => k === 'x-model-workers-cluster');
  if (!routed) throw new Error('no routing header set');
  return s;
}
// Attempt 1's upstream filter (this .wasm on the model's cluster): a context of its own that
// shares the request's filter state, sees the request as the downstream filter left it, and
// gets the model's 200.
// Attempt 1's upstream context for downstream stream `s`, through its request headers (the
// router strips the routing header before the upstream filters): [context, headers' Action].
function openUpstream(s) {
  const id = nextCtx++;
  const u = newStream(id, s.props);
  streams.set(id, u);
  cur = u;
  u.maps[MAP.REQ] = s.maps[MAP.REQ].filter(([k]) => k !== 'x-model-workers-cluster');
  u.bufs[BUF.REQ_BODY] = s.bufs[BUF.REQ_BODY];
  x.proxy_on_context_create(id, ROOT);
  return [u, x.proxy_on_request_headers(id, u.maps[MAP.REQ].length, 0)];
}
function upstreamAttempt(s) {
  const [u, h] = openUpstream(s);
  const id = u.id;
  if (h !== 0) throw new Error(`upstream on_request_headers returned ${h}, want Continue (attempt 1 was prepared downstream)`);
  cur = u;
  x.proxy_on_request_body(id, u.bufs[BUF.REQ_BODY].length, 1);
  cur = u;
  u.maps[MAP.RESP] = [[':status', '200'], ['content-type', 'application/json'], ['content-length', String(RESP_BODY.length)],
    ['date', new Date().toUTCString()]];
  const a = x.proxy_on_response_headers(id, u.maps[MAP.RESP].length, 0);
  if (a !== 0) throw new Error(`upstream on_response_headers returned ${a}`);
  u.bufs[BUF.RESP_BODY] = RESP_BODY;
  x.proxy_on_response_body(id, RESP_BODY.length, 1);
  x.proxy_on_log?.(id);
  x.proxy_on_done(id);
  x.proxy_on_delete?.(id);
  streams.delete(id);
  cur = s;
}
function responsePhase(s) {
  cur = s;
  s.maps[MAP.RESP] = [[':status', '200'], ['content-type', 'application/json'], ['x-mock-backend', 'up'], ['x-mock-model', 'gpt-a'],
    ['content-length', String(RESP_BODY.length)], ['date', new Date().toUTCString()], ['x-envoy-upstream-service-time', '0']];
  const a = x.proxy_on_response_headers(s.id, s.maps[MAP.RESP].length, 0);
  if (a !== 0) throw new Error(`on_response_headers returned ${a}`);
  s.bufs[BUF.RESP_BODY] = RESP_BODY;
  x.proxy_on_response_body(s.id, RESP_BODY.length, 1);
  x.proxy_on_log?.(s.id);
  x.proxy_on_done(s.id);
  x.proxy_on_delete?.(s.id);
  streams.delete(s.id);
}

const q = (arr, p) => { const v = [...arr].sort((a, b) => a - b); return v[Math.min(v.length - 1, Math.max(0, Math.ceil(p * v.length) - 1))]; };

function lifecycle(body, chunks) {
  const s = requestPhase(body, chunks);
  upstreamAttempt(s);
  responsePhase(s);
}

function profile(label, body, chunks, iters) {
  for (let i = 0; i < 20; i++) lifecycle(body, chunks);
  // One counted request.
  calls.clear();
  Object.assign(stats, { toWasmBytes: 0, fromWasmBytes: 0, memAllocs: 0, logs: {} });
  counting = true;
  const s = requestPhase(body, chunks);
  const reqCalls = Object.fromEntries(calls);
  calls.clear();
  upstreamAttempt(s);
  const upCalls = Object.fromEntries(calls);
  calls.clear();
  responsePhase(s);
  const respCalls = Object.fromEntries(calls);
  counting = false;
  const counted = { ...stats, logs: { ...stats.logs } };
  // Timing: whole lifecycle, and the request-body callback alone.
  // The fake host's own time (JS header maps, copies) is subtracted: what remains is the
  // time inside the VM (wasm code + V8's boundary crossings + proxy_on_memory_allocate).
  const total = [], bodyOnly = [], upOnly = [];
  for (let i = 0; i < iters; i++) {
    hostMs = 0;
    const t0 = performance.now();
    const s2 = requestPhase(body, chunks);
    const t1 = performance.now();
    const h1 = hostMs;
    upstreamAttempt(s2);
    const t2 = performance.now();
    const h2 = hostMs;
    responsePhase(s2);
    total.push((performance.now() - t0 - hostMs) * 1000);
    bodyOnly.push((t1 - t0 - h1) * 1000);
    upOnly.push((t2 - t1 - (h2 - h1)) * 1000);
  }
  const sum = (o) => Object.values(o).reduce((a, b) => a + b, 0);
  return {
    label, body_bytes: body.length, body_callbacks: chunks,
    host_calls_request_phase: reqCalls, host_calls_upstream_attempt: upCalls, host_calls_response_phase: respCalls,
    host_calls_total: sum(reqCalls) + sum(upCalls) + sum(respCalls),
    host_to_wasm_allocations: counted.memAllocs, bytes_host_to_wasm: counted.toWasmBytes, bytes_wasm_to_host: counted.fromWasmBytes,
    log_calls_by_level: counted.logs,
    vm_us_p50: q(total, 0.5), vm_us_p99: q(total, 0.99), request_phase_vm_us_p50: q(bodyOnly, 0.5),
    upstream_attempt_vm_us_p50: q(upOnly, 0.5), iters,
  };
}

// --- streaming: VM time per SSE event -----------------------------------------------------
// A `"stream": true` request through the downstream filter and attempt 1's upstream filter;
// the model streams `events` deltas, each its own body callback in both contexts (the upstream
// one first: it translates, when the model's API is Anthropic's; the downstream one then sees
// what the upstream one left). Returns the VM time per delta event, both contexts together.
const OPENAI_EVENT = enc.encode('data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-a","choices":[{"index":0,"delta":{"content":" the quick brown fox jumps over the lazy dog"},"finish_reason":null}]}\n\n');
const ANTHROPIC_START = enc.encode('event: message_start\ndata: {"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","model":"claude-t","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}}\n\nevent: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n');
const ANTHROPIC_EVENT = enc.encode('event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" the quick brown fox jumps over the lazy dog"}}\n\n');
const ANTHROPIC_END = enc.encode('event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\nevent: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":40}}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n');
function streamEvents(events, anthropic) {
  const s = requestPhase(chatBody(1024, true), 1);
  const [u] = openUpstream(s);
  const id = u.id;
  cur = u;
  x.proxy_on_request_body(id, u.bufs[BUF.REQ_BODY].length, 1);
  u.maps[MAP.RESP] = [[':status', '200'], ['content-type', 'text/event-stream']];
  cur = u;
  x.proxy_on_response_headers(id, 2, 0);
  // One chunk through the upstream context, then (what it left) through the downstream one.
  const chunk = (bytes, end) => {
    cur = u;
    u.bufs[BUF.RESP_BODY] = bytes;
    x.proxy_on_response_body(id, bytes.length, end ? 1 : 0);
    cur = s;
    s.bufs[BUF.RESP_BODY] = u.bufs[BUF.RESP_BODY];
    x.proxy_on_response_body(s.id, s.bufs[BUF.RESP_BODY].length, end ? 1 : 0);
  };
  const first = anthropic ? ANTHROPIC_START : OPENAI_EVENT;
  // The first event releases the held headers (the first-event check), then the downstream
  // context gets them.
  cur = u;
  u.bufs[BUF.RESP_BODY] = first;
  x.proxy_on_response_body(id, first.length, 0);
  cur = s;
  s.maps[MAP.RESP] = u.maps[MAP.RESP];
  x.proxy_on_response_headers(s.id, s.maps[MAP.RESP].length, 0);
  s.bufs[BUF.RESP_BODY] = u.bufs[BUF.RESP_BODY];
  x.proxy_on_response_body(s.id, s.bufs[BUF.RESP_BODY].length, 0);
  const ev = anthropic ? ANTHROPIC_EVENT : OPENAI_EVENT;
  hostMs = 0;
  const t0 = performance.now();
  for (let k = 0; k < events; k++) chunk(ev, false);
  const per = ((performance.now() - t0 - hostMs) * 1e6) / events;
  const out = u.bufs[BUF.RESP_BODY];
  chunk(anthropic ? ANTHROPIC_END : enc.encode('data: [DONE]\n\n'), true);
  for (const c of [u, s]) {
    x.proxy_on_log?.(c.id);
    x.proxy_on_done(c.id);
    x.proxy_on_delete?.(c.id);
    streams.delete(c.id);
  }
  return { per, out };
}
if (process.env.HOSTCALLS_EVENTS) {
  const anthropic = process.env.HOSTCALLS_EVENTS === 'anthropic';
  const runs = [];
  let sample = '';
  for (let r = 0; r < 200; r++) {
    const { per, out } = streamEvents(200, anthropic);
    if (r >= 20) runs.push(per);
    sample = dec.decode(out);
  }
  // What the client got for one delta: a translated stream is OpenAI's chunk format.
  if (!sample.startsWith('data: {') || !sample.includes('chat.completion.chunk')) {
    throw new Error(`unexpected event out of the filter: ${sample.slice(0, 200)}`);
  }
  console.log(JSON.stringify({
    node: process.version, wasm: wasmPath, translated: anthropic, events_per_stream: 200,
    vm_ns_per_event_p50: q(runs, 0.5), vm_ns_per_event_min: q(runs, 0), streams: runs.length,
    local_replies: stats.localReplies.slice(0, 3), sample_event_out: sample.slice(0, 160),
  }, null, 1));
  process.exit(0);
}

const kb = chatBody(1024, false), mb = chatBody(1 << 20, false);
// HOSTCALLS_ONLY_1KB=1: just the 1 KB lifecycle (for `node --cpu-prof` of the small-body path).
const only1kb = process.env.HOSTCALLS_ONLY_1KB === '1';
const results = [profile('1 KB', kb, 1, ITERS * 10)];
if (!only1kb) {
  results.push(profile('1 MB', mb, 1, ITERS));
  results.push(profile('1 MB in 16 body callbacks', mb, 16, Math.ceil(ITERS / 2)));
}

// Linear memory: 32 concurrent 1 MB requests in flight (body routed, response pending).
const linear = { before_bytes: x.memory.buffer.byteLength };
if (!only1kb) {
  const inflight = [];
  for (let i = 0; i < 32; i++) inflight.push(requestPhase(mb, 1));
  linear.with_32_inflight_1mb_bytes = x.memory.buffer.byteLength;
  for (const s of inflight) { upstreamAttempt(s); responsePhase(s); }
  linear.after_they_finished_bytes = x.memory.buffer.byteLength;
  for (let i = 0; i < 32; i++) lifecycle(mb, 1);
  linear.after_32_more_sequential_bytes = x.memory.buffer.byteLength;
}

console.log(JSON.stringify({
  node: process.version, wasm: wasmPath, results,
  linear_memory: linear,
  local_replies: stats.localReplies.slice(0, 5),
}, null, 1));
