// A minimal OpenID Connect provider on loopback for the console's sign-in
// test: discovery, an authorization endpoint that signs in one operator at
// once (no login form), a token endpoint that checks PKCE (S256), and a JWKS
// of its RS256 key, which the API verifies the tokens with.

import { createHash, createSign, generateKeyPairSync, randomBytes } from "node:crypto";
import { createServer } from "node:http";

const b64url = (buf) => Buffer.from(buf).toString("base64url");

/** Starts the provider on 127.0.0.1 (a free port); `close()` stops it. */
export async function startOidcStub({ clientId, audience, subject, roles }) {
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const kid = "stub-1";
  const codes = new Map();
  const stub = { exchanges: [], authorizations: [] };
  const server = createServer((req, res) => {
    const url = new URL(req.url, stub.issuer);
    const send = (status, body, headers = {}) => {
      res.writeHead(status, { "content-type": "application/json", "access-control-allow-origin": "*", "cache-control": "no-store", ...headers });
      res.end(body === undefined ? "" : JSON.stringify(body));
    };
    if (req.method === "GET" && url.pathname === "/.well-known/openid-configuration") {
      return send(200, {
        issuer: stub.issuer,
        authorization_endpoint: `${stub.issuer}/authorize`,
        token_endpoint: `${stub.issuer}/token`,
        jwks_uri: `${stub.issuer}/jwks`,
        response_types_supported: ["code"],
        grant_types_supported: ["authorization_code"],
        code_challenge_methods_supported: ["S256"],
        subject_types_supported: ["public"],
        id_token_signing_alg_values_supported: ["RS256"],
      });
    }
    if (req.method === "GET" && url.pathname === "/jwks") {
      return send(200, { keys: [{ ...publicKey.export({ format: "jwk" }), kid, alg: "RS256", use: "sig" }] });
    }
    if (req.method === "GET" && url.pathname === "/authorize") {
      const p = Object.fromEntries(url.searchParams);
      stub.authorizations.push(p);
      if (p.client_id !== clientId || p.response_type !== "code" || p.code_challenge_method !== "S256" || !p.code_challenge || !p.redirect_uri) {
        return send(400, { error: "invalid_request" });
      }
      const code = b64url(randomBytes(24));
      codes.set(code, { challenge: p.code_challenge, redirectUri: p.redirect_uri, nonce: p.nonce });
      const back = new URL(p.redirect_uri);
      back.searchParams.set("code", code);
      back.searchParams.set("state", p.state ?? "");
      res.writeHead(302, { location: back.toString() });
      return res.end();
    }
    if (req.method === "POST" && url.pathname === "/token") {
      let body = "";
      req.on("data", (d) => (body += d));
      req.on("end", () => {
        const p = Object.fromEntries(new URLSearchParams(body));
        const grant = codes.get(p.code);
        codes.delete(p.code);
        const verified = Boolean(grant) && b64url(createHash("sha256").update(p.code_verifier ?? "").digest()) === grant.challenge;
        stub.exchanges.push({ verified, clientId: p.client_id });
        if (p.grant_type !== "authorization_code" || !grant || !verified || p.client_id !== clientId || p.redirect_uri !== grant.redirectUri) {
          return send(400, { error: "invalid_grant" });
        }
        const now = Math.floor(Date.now() / 1000);
        const header = b64url(JSON.stringify({ alg: "RS256", typ: "JWT", kid }));
        const claims = b64url(JSON.stringify({ iss: stub.issuer, aud: audience, sub: subject, roles, iat: now, exp: now + 3600, nonce: grant.nonce }));
        const signature = createSign("RSA-SHA256").update(`${header}.${claims}`).sign(privateKey);
        send(200, { access_token: `${header}.${claims}.${b64url(signature)}`, token_type: "Bearer", expires_in: 3600 });
      });
      return;
    }
    send(404, { error: "not_found" });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  stub.issuer = `http://127.0.0.1:${server.address().port}`;
  stub.close = () => new Promise((resolve) => server.close(resolve));
  return stub;
}
