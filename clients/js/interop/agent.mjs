// A JavaScript publisher or subscriber for the cross-language tests (tests/integration/
// test_polyglot.py). Messages travel as JSON lines, with bytes as {"$bytes": "hex"}.
//
//   node agent.mjs sub [--es URI] [--ident X] [--match P]... [--count N] [--emitter] [--fast]
//                      [--leave-after-first] [--policy P] [--queue N] [--durable NAME]
//                      [--group NAME] [--history JSON] SUBJECT...
//       prints {"ready": ENDPOINT} once subscribed, then one line per event; exits after N
//       events, or once N events were received or told lost (events' `lost` and notices).
//       Losses the server tells with no event after them print {"gap": lost} lines.
//       --emitter: events through sub.on("event") and sub.on("gap") (a {"gap": lost} line each)
//       instead of the async iterator; --fast: heartbeats every 0.3 s, server gone after 1.5 s;
//       --slow: heartbeats every 30 s, gone after 300 s; --status: a {"status": S} line each
//       time the link changes; --leave-after-first: unsubscribe everything after the first
//       event ({"left": count}); --durable NAME: a durable subscriber (SPEC 7.10), which prints
//       {"replaced": NAME} if another subscriber takes the name; --group NAME: a member of that
//       queue group (SPEC 7.12), of a durable group with --durable NAME too (the same name).
//       --history JSON: its subscriptions ask for that history (SPEC 7.11), e.g. '{"last": 5}'.
//       Event lines carry the flags resumed, retained, redelivered, history and replayed
//   node agent.mjs pub [--es URI] [--ident X] [--confirm] [--retain] SUBJECTS JSON...
//       SUBJECTS comma-separated; publishes each JSON value, in order; prints {"receivers": [...]}
//   node agent.mjs burst [--es URI] SUBJECT N
//       publishes 0 .. N-1 unconfirmed, one `await pub.publish` after the other, then closes (which
//       flushes); prints {"published": N, "batches": PUBs that carried more than one event}
//   node agent.mjs steps [--es URI] [--ident X] [--keys SECRET_FILE,SERVER_KEY_FILE]
//       connects a publisher, prints {"ready": esUri}, then does what each line of stdin says and
//       prints its outcome: "pub SUBJECT JSON" and "confirm SUBJECT JSON" ({"receivers": n}),
//       "flush" ({"flushed": true}), "close" ({"closed": true}, then it exits)
//
// Errors print {"error": CODE or name, "message"} and exit 1.

import { createInterface } from "node:readline";
import { Publisher, Subscriber, keysFromFiles } from "../index.js";

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
    else if (arg === "--keys") options.keys = keysFromFiles(...argv[++i].split(","));
    else if (arg === "--match") options.match.push(argv[++i]);
    else if (arg === "--count") options.count = Number(argv[++i]);
    else if (arg === "--confirm") options.confirm = true;
    else if (arg === "--retain") options.retain = true;
    else if (arg === "--emitter") options.emitter = true;
    else if (arg === "--fast") options.fast = true;
    else if (arg === "--slow") options.slow = true;
    else if (arg === "--status") options.status = true;
    else if (arg === "--leave-after-first") options.leave = true;
    else if (arg === "--policy") options.policy = argv[++i];
    else if (arg === "--queue") options.queueSize = Number(argv[++i]);
    else if (arg === "--durable") options.durable = argv[++i];
    else if (arg === "--group") options.group = argv[++i];
    else if (arg === "--history") options.history = JSON.parse(argv[++i]);
    else options.rest.push(arg);
  }
  return options;
}

const print = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);

async function subscribe(o) {
  const timing = o.fast ? { heartbeat: 0.3, liveness: 1.5 } : o.slow ? { heartbeat: 30, liveness: 300 } : {};
  const queue = { policy: o.policy, queueSize: o.queueSize, durable: o.durable, group: o.group };
  const sub = await Subscriber.connect({ esUri: o.esUri, ident: o.ident, ...timing, ...queue });
  if (o.status) sub.on("status", (status) => print({ status }));
  if (o.durable) sub.on("replaced", (durable) => print({ replaced: durable }));
  try {
    const asked = o.history ? { history: o.history } : {};
    if (o.rest.length) await sub.subscribe(o.rest, asked);
    if (o.match.length) await sub.subscribeMatch(o.match, asked);
    print({ ready: sub.endpoint, esUri: sub.esUri });
    const count = o.count ?? Infinity;
    let received = 0;
    let told = 0; // losses printed: on events' lines and as gap lines
    const done = () => received + told >= count;
    let finish = () => {};
    if (!o.emitter) {
      sub.on("gap", (lost, event) => {
        if (event !== null) return; // told on the event's line
        told += lost;
        print({ gap: lost });
        if (done()) finish();
      });
    }
    const show = async (event) => {
      received += 1;
      told += event.lost;
      const { subject, seq, lost, resumed, retained, redelivered, history, replayed } = event;
      const msg = toJson(event.msg);
      print({ subject, msg, seq, lost, resumed, retained, redelivered, history, replayed });
      if (o.leave && received === 1) print({ left: await sub.unsubscribe([...o.rest, ...o.match]) });
    };
    if (o.emitter) {
      await new Promise((resolve) => {
        sub.on("gap", (lost) => print({ gap: lost }));
        sub.on("event", (event) => show(event).then(() => received >= count && resolve()));
      });
      return;
    }
    const iterate = async () => {
      for await (const event of sub) {
        await show(event);
        if (received >= count || done()) break;
      }
    };
    // A notice can be the last thing that comes: it ends the wait as an event would.
    await Promise.race([iterate(), new Promise((resolve) => (finish = resolve))]);
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
      const options = { confirm: !!o.confirm, retain: !!o.retain };
      receivers.push(await pub.publish(subjects.split(","), fromJson(JSON.parse(value)), options));
    }
    print({ receivers, esUri: pub.esUri });
  } finally {
    await pub.close();
  }
}

async function burst(o) {
  const [subject, count] = o.rest;
  const pub = await Publisher.connect({ esUri: o.esUri });
  try {
    for (let i = 0; i < Number(count); i++) await pub.publish(subject, i);
  } finally {
    await pub.close();
  }
  print({ published: Number(count), batches: pub._outbox.batches });
}

async function steps(o) {
  const pub = await Publisher.connect({ esUri: o.esUri, ident: o.ident, keys: o.keys });
  print({ ready: pub.esUri });
  for await (const line of createInterface({ input: process.stdin })) {
    const [verb, subject, ...json] = line.split(" ");
    try {
      if (verb === "close") {
        await pub.close();
        print({ closed: true });
        return;
      }
      if (verb === "flush") {
        await pub.flush();
        print({ flushed: true });
        continue;
      }
      const message = fromJson(JSON.parse(json.join(" ")));
      print({ receivers: await pub.publish(subject, message, { confirm: verb === "confirm" }) });
    } catch (err) {
      print({ error: err.code ?? err.name, message: err.message, at: verb });
      if (verb === "close") return;
    }
  }
}

const [command, ...argv] = process.argv.slice(2);
try {
  await { sub: subscribe, pub: publish, burst, steps }[command](parse(argv));
} catch (err) {
  print({ error: err.code ?? err.name, message: err.message });
  process.exitCode = 1;
}
