// A JavaScript publisher or subscriber for the cross-language tests (tests/integration/
// test_polyglot.py). Messages travel as JSON lines, with bytes as {"$bytes": "hex"}.
//
//   node agent.mjs sub [--es URI] [--ident X] [--match P]... [--count N] SUBJECT...
//       prints {"ready": ENDPOINT} once subscribed, then one line per event; exits after N
//   node agent.mjs pub [--es URI] [--ident X] [--confirm] SUBJECTS JSON...
//       SUBJECTS comma-separated; publishes each JSON value, in order; prints {"receivers": [...]}
//
// Errors print {"error": CODE or name, "message"} and exit 1.

import { Publisher, Subscriber } from "../index.js";

const fromJson = (v) =>
  v && typeof v === "object"
    ? "$bytes" in v
      ? Buffer.from(v.$bytes, "hex")
      : Array.isArray(v)
        ? v.map(fromJson)
        : Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fromJson(x)]))
    : v;

const toJson = (v) =>
  v instanceof Uint8Array
    ? { $bytes: Buffer.from(v).toString("hex") }
    : Array.isArray(v)
      ? v.map(toJson)
      : v && typeof v === "object"
        ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toJson(x)]))
        : v;

function parse(argv) {
  const options = { match: [], rest: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--es") options.esUri = argv[++i];
    else if (arg === "--ident") options.ident = argv[++i];
    else if (arg === "--match") options.match.push(argv[++i]);
    else if (arg === "--count") options.count = Number(argv[++i]);
    else if (arg === "--confirm") options.confirm = true;
    else options.rest.push(arg);
  }
  return options;
}

const print = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);

async function subscribe(o) {
  const sub = await Subscriber.connect({ esUri: o.esUri, ident: o.ident });
  try {
    if (o.rest.length) await sub.subscribe(o.rest);
    if (o.match.length) await sub.subscribeMatch(o.match);
    print({ ready: sub.endpoint, esUri: sub.esUri });
    let received = 0;
    for await (const event of sub) {
      print({ subject: event.subject, msg: toJson(event.msg), seq: event.seq, lost: event.lost });
      if (++received >= (o.count ?? Infinity)) break;
    }
  } finally {
    await sub.close();
  }
}

async function publish(o) {
  const [subjects, ...values] = o.rest;
  const pub = await Publisher.connect({ esUri: o.esUri, ident: o.ident });
  try {
    const receivers = [];
    for (const value of values) {
      receivers.push(await pub.publish(subjects.split(","), fromJson(JSON.parse(value)), { confirm: !!o.confirm }));
    }
    print({ receivers, esUri: pub.esUri });
  } finally {
    await pub.close();
  }
}

const [command, ...argv] = process.argv.slice(2);
try {
  await (command === "sub" ? subscribe : publish)(parse(argv));
} catch (err) {
  print({ error: err.code ?? err.name, message: err.message });
  process.exitCode = 1;
}
