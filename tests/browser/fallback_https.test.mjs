// The client's fallback scenarios (a, b, c, d1–d5) in headless Chromium with the page and
// wsbridge on https:// (wsbridge's TLS listener, certificates made at test time by
// tests/e2e/lib/tls.mjs), behind the TLS-era intermediaries: squid intercepting TLS (ssl-bump,
// Debian's squid-openssl) instead of refusing CONNECT, nginx terminating TLS, a relay that
// terminates TLS on both hops. The suite, and what each scenario asserts, is
// tests/browser/lib/fallback.mjs; fallback.test.mjs runs the same scenarios on http://.
//
//   node --test tests/browser/fallback_https.test.mjs

import { fallbackSuite } from './lib/fallback.mjs';

await fallbackSuite({ tls: true });
