// Protobuf (proto3) encode/decode driven by the generated schema table (schema.js).
// Only what edge_agent.v1 uses: varints, double/float, strings, bytes, nested and
// repeated messages, packed repeated scalars and string-keyed maps. Integers are
// JS numbers (ids and times stay far below 2^53).
import SCHEMA from "./schema.js";

const DOUBLE = 1, FLOAT = 2, INT64 = 3, UINT64 = 4, INT32 = 5, BOOL = 8, STRING = 9, MESSAGE = 11, BYTES = 12,
  UINT32 = 13, ENUM = 14;
const PREFIX = "edge_agent.v1.";
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder("utf-8", { fatal: true });

export function hasField(type, name) {
  return fields(type).some((f) => f.name === name);
}

function fields(type) {
  const f = SCHEMA[type.includes(".") ? type : PREFIX + type];
  if (!f) throw new Error(`unknown message ${type}`);
  return f;
}

class Writer {
  constructor() { this.parts = []; this.cur = []; }
  byte(b) { this.cur.push(b); }
  varint(n) {
    if (n < 0 || !Number.isFinite(n)) throw new Error("negative or invalid integer");
    n = Math.floor(n);
    while (n >= 0x80) { this.cur.push((n % 128) | 0x80); n = Math.floor(n / 128); }
    this.cur.push(n);
  }
  raw(bytes) { this.flush(); this.parts.push(bytes); }
  flush() { if (this.cur.length) { this.parts.push(Uint8Array.from(this.cur)); this.cur = []; } }
  finish() {
    this.flush();
    const len = this.parts.reduce((a, p) => a + p.length, 0);
    const out = new Uint8Array(len);
    let o = 0;
    for (const p of this.parts) { out.set(p, o); o += p.length; }
    return out;
  }
}

function scalarWire(t) {
  if (t === DOUBLE) return 1;
  if (t === FLOAT) return 5;
  if (t === STRING || t === BYTES || t === MESSAGE) return 2;
  return 0;
}

function writeScalar(w, t, v) {
  switch (t) {
    case DOUBLE: { const b = new Uint8Array(8); new DataView(b.buffer).setFloat64(0, v, true); w.raw(b); break; }
    case FLOAT: { const b = new Uint8Array(4); new DataView(b.buffer).setFloat32(0, v, true); w.raw(b); break; }
    case BOOL: w.varint(v ? 1 : 0); break;
    case STRING: { const b = utf8.encode(v); w.varint(b.length); w.raw(b); break; }
    case BYTES: w.varint(v.length); w.raw(v); break;
    default: w.varint(v);
  }
}

function isDefault(t, v) {
  if (v === undefined || v === null) return true;
  if (t === STRING || t === BYTES) return v.length === 0;
  if (t === BOOL) return !v;
  return v === 0;
}

export function encode(type, obj) {
  const w = new Writer();
  for (const f of fields(type)) {
    const v = obj[f.name];
    if (v === undefined || v === null) continue;
    if (f.t === "map") {
      for (const [k, val] of Object.entries(v)) {
        const e = new Writer();
        e.varint((1 << 3) | scalarWire(f.k)); writeScalar(e, f.k, k);
        e.varint((2 << 3) | scalarWire(f.v)); writeScalar(e, f.v, val);
        const eb = e.finish();
        w.varint((f.n << 3) | 2); w.varint(eb.length); w.raw(eb);
      }
    } else if (f.t === MESSAGE) {
      for (const item of f.r ? v : [v]) {
        const b = encode(f.m, item);
        w.varint((f.n << 3) | 2); w.varint(b.length); w.raw(b);
      }
    } else if (f.r) {
      if (!v.length) continue;
      if (f.t === STRING || f.t === BYTES) {
        for (const item of v) { w.varint((f.n << 3) | 2); writeScalar(w, f.t, item); }
      } else {
        const p = new Writer();
        for (const item of v) writeScalar(p, f.t, item);
        const pb = p.finish();
        w.varint((f.n << 3) | 2); w.varint(pb.length); w.raw(pb);
      }
    } else if (!isDefault(f.t, v)) {
      w.varint((f.n << 3) | scalarWire(f.t)); writeScalar(w, f.t, v);
    }
  }
  return w.finish();
}

class Reader {
  constructor(buf) { this.buf = buf; this.pos = 0; this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength); }
  varint() {
    let result = 0, mul = 1, b;
    do {
      if (this.pos >= this.buf.length) throw new Error("truncated message");
      b = this.buf[this.pos++];
      result += (b & 0x7f) * mul; mul *= 128;
    } while (b & 0x80);
    return result;
  }
  bytes() {
    const n = this.varint();
    if (this.pos + n > this.buf.length) throw new Error("truncated message");
    const out = this.buf.subarray(this.pos, this.pos + n); this.pos += n; return out;
  }
  skip(wire) {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else throw new Error("unsupported wire type");
  }
}

function readScalar(r, t) {
  switch (t) {
    case DOUBLE: { const v = r.view.getFloat64(r.pos, true); r.pos += 8; return v; }
    case FLOAT: { const v = r.view.getFloat32(r.pos, true); r.pos += 4; return v; }
    case BOOL: return r.varint() !== 0;
    case STRING: return fromUtf8.decode(r.bytes());
    case BYTES: return r.bytes().slice();
    case INT32: case INT64: { const v = r.varint(); return v > 2 ** 63 ? v - 2 ** 64 : v; }
    default: return r.varint();
  }
}

function defaults(type) {
  const o = {};
  for (const f of fields(type)) {
    if (f.t === "map") o[f.name] = {};
    else if (f.r) o[f.name] = [];
    else if (f.t === MESSAGE) o[f.name] = null;
    else if (f.t === STRING) o[f.name] = "";
    else if (f.t === BYTES) o[f.name] = new Uint8Array(0);
    else if (f.t === BOOL) o[f.name] = false;
    else o[f.name] = 0;
  }
  return o;
}

export function decode(type, buf) {
  const byNumber = new Map(fields(type).map((f) => [f.n, f]));
  const o = defaults(type);
  const r = new Reader(buf);
  while (r.pos < buf.length) {
    const key = r.varint();
    const n = Math.floor(key / 8), wire = key & 7;
    const f = byNumber.get(n);
    if (!f) { r.skip(wire); continue; }
    if (f.t === "map") {
      const er = new Reader(r.bytes());
      let k = f.k === STRING ? "" : 0, v = f.v === STRING ? "" : 0;
      while (er.pos < er.buf.length) {
        const ek = er.varint();
        if (ek >> 3 === 1) k = readScalar(er, f.k);
        else if (ek >> 3 === 2) v = readScalar(er, f.v);
        else er.skip(ek & 7);
      }
      o[f.name][k] = v;
    } else if (f.t === MESSAGE) {
      const m = decode(f.m, r.bytes());
      if (f.r) o[f.name].push(m); else o[f.name] = m;
    } else if (f.r && wire === 2 && f.t !== STRING && f.t !== BYTES) {
      const pr = new Reader(r.bytes());
      while (pr.pos < pr.buf.length) o[f.name].push(readScalar(pr, f.t));
    } else {
      const v = readScalar(r, f.t);
      if (f.r) o[f.name].push(v); else o[f.name] = v;
    }
  }
  if (r.pos !== buf.length) throw new Error("truncated message");
  return o;
}
