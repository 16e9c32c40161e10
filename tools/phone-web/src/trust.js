// What this phone trusts, as the Python phone does (edge_agent/phone/client.py):
//   * the site CA, pinned at enrolment from this app's own site (/ca.pem, over the HTTPS
//     the phone's managed profile trusts); the certificate IT sends back must come from it;
//   * the site CRL, from the site (/crl.pem) and from every room device it meets
//     (DeviceInfo.crl), kept only if it verifies under the pinned CA, is current, and is
//     not older than the one held. A phone without a current CRL does not use a device.
import { CrlError, verifyCrl } from "./crl.js";
import { DerError, parseCertificate, pemBlocks, sameBytes } from "./der.js";
import { hex, sha256, verifySignedBy } from "./keys.js";

export class TrustError extends Error {}

export function shortFp(fp) { return fp.slice(0, 16).replace(/(.{4})/g, "$1 ").trim(); }

async function getText(path) {
  let res;
  try {
    res = await fetch(path, { cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" });
  } catch {
    return null;
  }
  if (!res.ok) return null;
  return res.text();
}

// The site CA this app's site serves; it must be a self-signed CA certificate.
export async function fetchSiteCa() {
  const text = await getText("./ca.pem");
  if (text === null) throw new TrustError("Cannot read this site's CA certificate: open the app on the clinic network and try again.");
  let cert;
  try {
    const ders = pemBlocks(text, "CERTIFICATE");
    if (ders.length !== 1) throw new DerError("want one certificate");
    cert = parseCertificate(ders[0]);
  } catch (e) {
    if (e instanceof DerError) throw new TrustError("The site's CA certificate is damaged; tell IT.");
    throw e;
  }
  if (!cert.isCa || !(await verifySignedBy(cert, cert))) throw new TrustError("The site's CA certificate is not a CA certificate; tell IT.");
  return cert;
}

// Pin at enrolment; afterwards the site must keep serving the same CA.
export async function pinSiteCa(vault) {
  const cert = await fetchSiteCa();
  const fp = hex(await sha256(cert.der));
  const pinned = await vault.get("site-ca");
  if (pinned && !sameBytes(pinned.der, cert.der)) {
    throw new TrustError(`The site now shows another CA (${shortFp(fp)}…) than the one this phone pinned (${shortFp(pinned.fp)}…); do not go on and tell IT.`);
  }
  if (!pinned) await vault.put("site-ca", { der: cert.der, fp });
  return { der: cert.der, fp };
}

export class Revocations {
  constructor(vault, caDer) {
    this.vault = vault;
    this.ca = parseCertificate(caDer);
    this.problem = ""; // why the last offered list was refused (for the message when none is current)
  }

  async held() { return this.vault.get("crl"); }

  // Keep `der` if it verifies, is current and is newer than the one held; true if it was taken.
  async offer(der) {
    if (!der || !der.length) return false;
    const held = await this.held();
    let rec;
    try {
      rec = await verifyCrl(der, this.ca, held);
    } catch (e) {
      if (e instanceof CrlError) { this.problem = e.message; return false; }
      throw e;
    }
    if (held && BigInt(rec.number) <= BigInt(held.number)) return false;
    await this.vault.put("crl", rec);
    return true;
  }

  async offerPem(text) {
    let ders;
    try { ders = pemBlocks(typeof text === "string" ? text : new TextDecoder().decode(text), "X509 CRL"); } catch { ders = []; }
    if (ders.length !== 1) { if (text && text.length) this.problem = "the revocation list is damaged"; return false; }
    return this.offer(ders[0]);
  }

  // The site's list, best effort (offline: the list held stays).
  async refreshFromSite() {
    const text = await getText("./crl.pem");
    if (text !== null) await this.offerPem(text);
  }

  async current(now = Date.now()) {
    const held = await this.held();
    return held && now < held.nextUpdate ? held : null;
  }

  async requireCurrent() {
    const crl = await this.current();
    if (!crl) {
      throw new TrustError(`No current revocation list: this phone cannot tell whether the room device was revoked${this.problem ? ` (${this.problem})` : ""}; open the app on the clinic network, or tell IT.`);
    }
    return crl;
  }

  async isRevoked(serialHex) {
    const held = await this.held();
    return Boolean(held && held.revoked.includes(serialHex));
  }

  async number() { return (await this.held())?.number ?? null; }
}
