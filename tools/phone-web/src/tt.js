// Trusted Types (the site's CSP: require-trusted-types-for 'script'; trusted-types edge-agent): the app's one
// policy creates script URLs for its own service worker and audio worklet only, and no HTML at all, so no
// string can reach an HTML or script sink (innerHTML, script src, ...) even by mistake.
const ALLOWED = new Set(["./sw.js", "./capture-worklet.js"]);
const policy = globalThis.trustedTypes?.createPolicy("edge-agent", {
  createScriptURL: (url) => {
    if (!ALLOWED.has(url)) throw new TypeError(`script URL ${url} is not one of the app's`);
    return url;
  },
});

export function scriptUrl(url) { return policy ? policy.createScriptURL(url) : url; }
