// Tiny DOM helpers (no framework: the app is a handful of screens).
export function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined && kid !== false) el.append(kid.nodeType ? kid : String(kid));
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
export function s(tag, attrs = {}, ...kids) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined) el.append(kid.nodeType ? kid : document.createTextNode(String(kid)));
  return el;
}

// `x` with `digits` decimals as Python prints it (format and round() break exact ties to even; toFixed and
// Math.round break them upward), so the web app and the Python phone print the same moments and figures:
// a moment at 14.5 s is "0:14" on both, not "0:15" here. Ties are found on the exact binary value (toFixed is exact).
export function fixed(x, digits = 0) {
  const a = Math.abs(x);
  const exact = a.toFixed(digits + 30);
  const dot = exact.indexOf(".");
  const kept = exact.slice(0, digits ? dot + 1 + digits : dot);
  const out = /^50*$/.test(exact.slice(dot + 1 + digits)) && Number(kept[kept.length - 1]) % 2 === 0 ? kept : a.toFixed(digits);
  return x < 0 && Number(out) !== 0 ? `-${out}` : out;
}

// Python's "{:.0%}" (the float times 100, then as above)
export function percent(share) {
  return Number(fixed(share * 100, 0));
}

export function clock(seconds) {
  const t = Math.max(0, Number(fixed(seconds, 0)));
  return `${Math.floor(t / 60)}:${String(t % 60).padStart(2, "0")}`;
}

export function when(unix) {
  if (!unix) return "unknown time";
  return new Date(unix * 1000).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}
