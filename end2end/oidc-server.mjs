// A real OpenID Connect provider (the certified `oidc-provider` package) on loopback, for sign-in
// tests. Usage: node oidc-server.mjs PORT REDIRECT_URI [REDIRECT_URI...]
// Client: personaflux / e2e-client-secret. Any username signs in (no password); its claims are
// sub = username, email = username@example.test (verified), name = the username capitalised.
import Provider from "oidc-provider";
import http from "node:http";

const [port, ...redirectUris] = process.argv.slice(2);
if (!port || redirectUris.length === 0) {
  console.error("usage: node oidc-server.mjs PORT REDIRECT_URI...");
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: "personaflux",
      client_secret: "e2e-client-secret",
      redirect_uris: redirectUris,
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  pkce: { required: () => true },
  scopes: ["openid", "email", "profile", "offline_access"],
  claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"] },
  features: { devInteractions: { enabled: false } },
  cookies: { keys: ["e2e-only-cookie-key"] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.test`, email_verified: true, name: id[0].toUpperCase() + id.slice(1) };
      },
    };
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
});

const page = (uid) => `<!doctype html><html lang="en"><head><title>Test identity provider</title></head>
<body><h1>Test identity provider</h1>
<form method="post" action="/interaction/${uid}/login">
<label for="username">Username</label> <input id="username" name="username" autofocus>
<button type="submit">Sign in</button></form></body></html>`;

const readForm = (req) =>
  new Promise((resolve) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => resolve(new URLSearchParams(body)));
  });

const callback = provider.callback();
http
  .createServer(async (req, res) => {
    const m = req.url.match(/^\/interaction\/([^/?]+)(\/login)?/);
    if (!m) return callback(req, res);
    try {
      const details = await provider.interactionDetails(req, res);
      if (!m[2]) {
        res.writeHead(200, { "content-type": "text/html" });
        return res.end(page(details.uid));
      }
      const form = await readForm(req);
      const accountId = (form.get("username") || "").trim();
      if (!accountId) {
        res.writeHead(400, { "content-type": "text/html" });
        return res.end(page(details.uid));
      }
      const grant = new provider.Grant({ accountId, clientId: details.params.client_id });
      grant.addOIDCScope(details.params.scope);
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { login: { accountId }, consent: { grantId } }, { mergeWithLastSubmission: false });
    } catch (e) {
      res.writeHead(400, { "content-type": "text/plain" });
      res.end(String(e));
    }
  })
  .listen(Number(port), "127.0.0.1", () => console.log(`OIDC provider at ${issuer}`));
