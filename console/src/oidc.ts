// OpenID Connect sign-in: authorization code with PKCE (S256) against the
// issuer's discovery document. The verifier, state and nonce wait in
// sessionStorage during the round trip; the code and state leave the URL as
// soon as the console is back.

import type { Config } from "./config";
import { type Credentials, save } from "./credentials";

const PENDING = "billing-console.oidc";
const TIMEOUT_MS = 10_000;

interface Discovery {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
}

interface Pending {
  state: string;
  verifier: string;
  nonce: string;
}

function redirectUri(): string {
  return new URL("/console/", location.origin).toString();
}

function random(bytes = 32): string {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

function base64url(bytes: Uint8Array): string {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function discover(issuer: string): Promise<Discovery> {
  const url = `${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`;
  const response = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS), credentials: "omit" });
  if (!response.ok) throw new Error(`The identity provider's discovery document answered ${response.status}.`);
  const doc = (await response.json()) as Discovery;
  if (doc.issuer !== issuer) throw new Error("The discovery document names another issuer.");
  return doc;
}

/** Leaves for the identity provider's authorization endpoint. */
export async function start(config: Config): Promise<void> {
  if (!config.oidc) return;
  const doc = await discover(config.oidc.issuer);
  const pending: Pending = { state: random(), verifier: random(48), nonce: random() };
  sessionStorage.setItem(PENDING, JSON.stringify(pending));
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(pending.verifier));
  const url = new URL(doc.authorization_endpoint);
  url.searchParams.set("response_type", "code");
  url.searchParams.set("client_id", config.oidc.clientId);
  url.searchParams.set("redirect_uri", redirectUri());
  url.searchParams.set("scope", config.oidc.scope);
  url.searchParams.set("state", pending.state);
  url.searchParams.set("nonce", pending.nonce);
  url.searchParams.set("code_challenge", base64url(new Uint8Array(digest)));
  url.searchParams.set("code_challenge_method", "S256");
  location.assign(url.toString());
}

/**
 * Back from the identity provider (`?code=...&state=...`): exchanges the code
 * for tokens and returns the access token as the console's credentials.
 * Null when this load is not such a return.
 */
export async function finish(config: Config): Promise<Credentials | null> {
  const params = new URLSearchParams(location.search);
  const code = params.get("code");
  const state = params.get("state");
  if (!config.oidc || (!code && !params.get("error"))) return null;
  history.replaceState(null, "", location.pathname);
  const text = sessionStorage.getItem(PENDING);
  sessionStorage.removeItem(PENDING);
  if (!code || !text) return null;
  const pending = JSON.parse(text) as Pending;
  if (state !== pending.state) return null;
  const doc = await discover(config.oidc.issuer);
  const response = await fetch(doc.token_endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code,
      redirect_uri: redirectUri(),
      client_id: config.oidc.clientId,
      code_verifier: pending.verifier,
    }),
    credentials: "omit",
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  if (!response.ok) return null;
  const tokens = (await response.json()) as { access_token?: string };
  if (!tokens.access_token) return null;
  const credentials: Credentials = { kind: "token", token: tokens.access_token };
  save(credentials);
  return credentials;
}
