// Storage on the phone. Two IndexedDB databases:
//   edge-agent-keys: the non-extractable CryptoKeys (signing, sealing, storage key);
//   edge-agent-data: records, each AES-256-GCM encrypted under the storage key with
//                    its id as associated data, so a copy of this database (or a record
//                    moved under another id) shows nothing without the key.
const KEYS_DB = "edge-agent-keys", DATA_DB = "edge-agent-data";

function open(name, store) {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(name, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(store, { keyPath: "id" });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(new Error(`storage unavailable (${req.error && req.error.name}); allow site storage for this app`));
  });
}

function tx(db, store, mode, fn) {
  return new Promise((resolve, reject) => {
    const t = db.transaction(store, mode);
    const s = t.objectStore(store);
    let out;
    const r = fn(s);
    if (r) r.onsuccess = () => { out = r.result; };
    t.oncomplete = () => resolve(out);
    // a full disk aborts the transaction at commit (QuotaExceededError) without an error event: unheard, the
    // caller waited for ever (a report arriving on a full phone hung on "Preparing your report…")
    t.onerror = t.onabort = () => reject(storageError(t.error));
  });
}

const STORAGE_FULL = "This phone's storage is full: free some space on the phone (or delete old visits in Settings); "
  + "reports wait on the room device and come here once there is room.";

function storageError(err) {
  if (err && err.name === "QuotaExceededError") return new Error(STORAGE_FULL);
  return new Error(`This phone could not save (${(err && err.name) || "storage error"}): free some space on the phone and try again.`);
}

export async function getKey(id) {
  const db = await open(KEYS_DB, "keys");
  try { return (await tx(db, "keys", "readonly", (s) => s.get(id)))?.key ?? null; } finally { db.close(); }
}

export async function putKey(id, key) {
  const db = await open(KEYS_DB, "keys");
  try { await tx(db, "keys", "readwrite", (s) => s.put({ id, key })); } finally { db.close(); }
}

const enc = new TextEncoder(), dec = new TextDecoder();

// JSON with byte arrays kept as {"$b": base64}.
function toJson(v) {
  return JSON.stringify(v, (_k, x) => (x instanceof Uint8Array ? { $b: b64(x) } : x));
}
function fromJson(s) {
  return JSON.parse(s, (_k, x) => (x && typeof x === "object" && typeof x.$b === "string" ? unb64(x.$b) : x));
}
export function b64(bytes) { let s = ""; for (const b of bytes) s += String.fromCharCode(b); return btoa(s); }
export function unb64(s) { return Uint8Array.from(atob(s), (c) => c.charCodeAt(0)); }

export class Vault {
  constructor(key) { this.key = key; }

  static async open() {
    let key = await getKey("storage");
    if (!key) {
      key = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
      await putKey("storage", key);
    }
    return new Vault(key);
  }

  async put(id, value) {
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: enc.encode(id) }, this.key,
      enc.encode(toJson(value))));
    const db = await open(DATA_DB, "records");
    try { await tx(db, "records", "readwrite", (s) => s.put({ id, iv, ct })); } finally { db.close(); }
  }

  async get(id) {
    const db = await open(DATA_DB, "records");
    let rec;
    try { rec = await tx(db, "records", "readonly", (s) => s.get(id)); } finally { db.close(); }
    return rec ? this._open(rec) : null;
  }

  async _open(rec) {
    try {
      const pt = await crypto.subtle.decrypt({ name: "AES-GCM", iv: rec.iv, additionalData: enc.encode(rec.id) }, this.key, rec.ct);
      return fromJson(dec.decode(pt));
    } catch {
      throw new Error("stored data does not open with this phone's key (damaged or copied from another phone)");
    }
  }

  async list(prefix) {
    const db = await open(DATA_DB, "records");
    let all;
    try { all = await tx(db, "records", "readonly", (s) => s.getAll(IDBKeyRange.bound(prefix, prefix + "\uffff"))); } finally { db.close(); }
    const out = [];
    for (const rec of all || []) out.push(await this._open(rec));
    return out;
  }

  async delete(id) {
    const db = await open(DATA_DB, "records");
    try { await tx(db, "records", "readwrite", (s) => s.delete(id)); } finally { db.close(); }
  }
}

// Everything, keys included: the phone forgets this clinician entirely.
export async function wipeAll() {
  for (const name of [DATA_DB, KEYS_DB]) {
    await new Promise((resolve) => {
      const req = indexedDB.deleteDatabase(name);
      req.onsuccess = req.onerror = req.onblocked = () => resolve();
    });
  }
}
