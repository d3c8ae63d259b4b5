// Corpus source: a Node.js program doing ordinary data work (no fixed end; capture pauses it).
// Builds objects, arrays, Maps, strings, JSON and typed arrays from a seeded generator and keeps
// updating them, so the V8 heap holds a realistic mix of hidden classes, strings and numbers.
"use strict";

let seed = 1234;
function rand() { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x80000000; }
function pick(a) { return a[Math.floor(rand() * a.length)]; }

const WORDS = ["alpha", "kernel", "page", "swap", "memory", "cache", "compress", "device", "queue",
  "batch", "latency", "render", "event", "promise", "buffer", "stream", "socket", "route", "user",
  "session", "token", "widget", "layout", "style", "module", "import", "export", "value"];
const COUNTRIES = ["DE", "US", "JP", "FR", "PT", "EC", "TN", "VN", "AU", "BR", "IN", "KE"];

const users = [];
const byCountry = new Map();
const events = [];
const logLines = [];
const vectors = [];
let step = 0;

for (;;) {
  for (let k = 0; k < 5000; k++) {
    const id = users.length;
    const u = {
      id,
      name: pick(WORDS) + "_" + pick(WORDS) + "_" + id.toString(36),
      country: pick(COUNTRIES),
      score: Math.round(rand() * 10000) / 100,
      visits: Math.floor(rand() * 500),
      active: rand() < 0.7,
      tags: [pick(WORDS), pick(WORDS), pick(WORDS)],
      address: { street: pick(WORDS) + " street " + Math.floor(rand() * 200), zip: 10000 + Math.floor(rand() * 89999) },
    };
    users.push(u);
    if (!byCountry.has(u.country)) byCountry.set(u.country, []);
    byCountry.get(u.country).push(id);
    events.push({ user: id, kind: pick(["click", "view", "buy", "share"]), at: 1700000000000 + step * 1000 + k });
    if (id % 4 === 0) logLines.push(`${new Date(1700000000000 + id * 997).toISOString()} INFO ${u.name} ${u.tags.join(",")} score=${u.score}`);
    if (id % 20 === 0) logLines.push(JSON.stringify(u));
  }
  step++;
  if (step % 4 === 0) {
    const f = new Float64Array(20000);
    for (let i = 0; i < f.length; i++) f[i] = Math.round(rand() * 1e4) / 100;
    const c = new Int32Array(40000);
    for (let i = 1; i < c.length; i++) c[i] = c[i - 1] + Math.floor(rand() * 4);
    vectors.push(f, c);
    const top = users.slice(-5000).sort((a, b) => b.score - a.score).slice(0, 10).map((u) => u.name);
    console.log(`step ${step}: ${users.length} users, ${events.length} events, top ${top[0]}`);
  }
  if (users.length > 600000) {  // bounded memory: forget the oldest third and keep going
    users.splice(0, 200000); events.splice(0, 200000); logLines.splice(0, logLines.length / 3);
    vectors.splice(0, vectors.length / 3);
  }
}
