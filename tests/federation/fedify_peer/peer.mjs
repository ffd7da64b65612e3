// A minimal ActivityPub actor built on Fedify (https://fedify.dev), the interop peer reelm's
// tests start on loopback: `node peer.mjs PORT`. Its signatures, key handling and JSON-LD
// processing are Fedify's own; it keeps what its inbox verified and received, and exposes a
// small control API for the test: follow, like, reply, and list what arrived.
import http from "node:http";
import {
  Accept, Create, Endpoints, Follow, Like, MemoryKvStore, Note, Person, Reject, Undo, Update,
  createFederation, generateCryptoKeyPair,
} from "@fedify/fedify";

const port = Number(process.argv[2]);
const origin = `http://localhost:${port}`;
const NAME = "fedi";
const federation = createFederation({ kv: new MemoryKvStore(), allowPrivateAddress: true });
const keys = [await generateCryptoKeyPair("RSASSA-PKCS1-v1_5")];
const received = [];

federation
  .setActorDispatcher("/users/{identifier}", async (ctx, identifier) => {
    if (identifier !== NAME) return null;
    const pairs = await ctx.getActorKeyPairs(identifier);
    return new Person({
      id: ctx.getActorUri(identifier),
      preferredUsername: identifier,
      name: "Fedify peer",
      inbox: ctx.getInboxUri(identifier),
      endpoints: new Endpoints({ sharedInbox: ctx.getInboxUri() }),
      publicKey: pairs[0].cryptographicKey,
      assertionMethods: pairs.map((p) => p.multikey),
    });
  })
  .setKeyPairsDispatcher(async (_ctx, identifier) => (identifier === NAME ? keys : []));

async function keep(kind, activity) {
  // Fedify calls a listener only once the request's HTTP signature verified.
  const entry = { type: kind, id: activity.id?.href, actor: activity.actorId?.href, verified: true };
  try {
    const object = await activity.getObject();
    if (object != null) entry.object = await object.toJsonLd();
  } catch (e) {
    entry.objectError = String(e);
  }
  received.push(entry);
}

federation
  .setInboxListeners("/users/{identifier}/inbox", "/inbox")
  .on(Accept, (_ctx, a) => keep("Accept", a))
  .on(Reject, (_ctx, a) => keep("Reject", a))
  .on(Create, (_ctx, a) => keep("Create", a))
  .on(Update, (_ctx, a) => keep("Update", a))
  .on(Like, (_ctx, a) => keep("Like", a))
  .on(Undo, (_ctx, a) => keep("Undo", a))
  .on(Follow, (_ctx, a) => keep("Follow", a))
  .onError((_ctx, error) => received.push({ type: "error", error: String(error) }));

let counter = 0;
const newId = (what) => new URL(`${origin}/activities/${what}-${Date.now()}-${++counter}`);

async function control(path, body) {
  const ctx = federation.createContext(new URL(origin), undefined);
  const me = ctx.getActorUri(NAME);
  if (path === "/control/received") return received;
  const target = await ctx.lookupObject(body.actor);
  if (target == null) throw new Error(`cannot look up ${body.actor}`);
  let activity;
  if (path === "/control/follow") {
    activity = new Follow({ id: newId("follow"), actor: me, object: target.id });
  } else if (path === "/control/like") {
    activity = new Like({ id: newId("like"), actor: me, object: new URL(body.object) });
  } else if (path === "/control/reply") {
    const noteId = newId("note");
    activity = new Create({
      id: newId("create"), actor: me, object: new Note({
        id: noteId, attribution: me, content: body.content, replyTarget: new URL(body.inReplyTo),
        to: new URL("https://www.w3.org/ns/activitystreams#Public"), cc: target.id,
      }),
      to: new URL("https://www.w3.org/ns/activitystreams#Public"), cc: target.id,
    });
  } else {
    throw new Error(`unknown control ${path}`);
  }
  await ctx.sendActivity({ identifier: NAME }, target, activity);
  return { sent: activity.id.href };
}

const server = http.createServer(async (req, res) => {
  try {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url, origin);
    if (url.pathname.startsWith("/control/")) {
      const out = await control(url.pathname, body.length ? JSON.parse(body) : {});
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(out));
      return;
    }
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) headers.set(k, Array.isArray(v) ? v.join(", ") : v);
    const request = new Request(url, {
      method: req.method, headers, body: ["GET", "HEAD"].includes(req.method) ? undefined : body,
    });
    const response = await federation.fetch(request, {
      contextData: undefined,
      onNotFound: () => new Response("not found", { status: 404 }),
      onNotAcceptable: () => new Response("not acceptable", { status: 406 }),
    });
    res.writeHead(response.status, Object.fromEntries(response.headers));
    res.end(Buffer.from(await response.arrayBuffer()));
  } catch (e) {
    res.writeHead(500, { "content-type": "text/plain" });
    res.end(String(e && e.stack || e));
  }
});
server.listen(port, "127.0.0.1", () => console.log(`READY ${origin}`));
