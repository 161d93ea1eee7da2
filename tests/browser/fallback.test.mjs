// The client's fallback scenarios (a, b, c, d1–d5) in headless Chromium with the page and
// wsbridge on http://, behind squid and nginx as verified in shared/notes/restrictive-proxies.md.
// The suite, and what each scenario asserts, is tests/browser/lib/fallback.mjs;
// fallback_https.test.mjs runs the same scenarios on https://.
//
//   node --test tests/browser/fallback.test.mjs

import { fallbackSuite } from './lib/fallback.mjs';

await fallbackSuite({ tls: false });
