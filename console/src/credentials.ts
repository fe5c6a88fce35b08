// Credentials live in sessionStorage only (never localStorage, never in a URL
// after sign-in): a tab keeps its sign-in across reloads and forgets it when
// it closes.

/** What the console sends with every API call. */
export type Credentials =
  | { kind: "token"; token: string }
  | { kind: "apiKey"; apiKey: string; apiSecret: string };

const KEY = "billing-console.credentials";

/** The signed-in credentials, if any. */
export function load(): Credentials | null {
  const text = sessionStorage.getItem(KEY);
  if (!text) return null;
  try {
    const value = JSON.parse(text) as Credentials;
    if (value.kind === "token" && value.token) return value;
    if (value.kind === "apiKey" && value.apiKey && value.apiSecret) return value;
  } catch {
    // fall through: unreadable, forget it
  }
  sessionStorage.removeItem(KEY);
  return null;
}

export function save(credentials: Credentials): void {
  sessionStorage.setItem(KEY, JSON.stringify(credentials));
}

export function clear(): void {
  sessionStorage.removeItem(KEY);
}

/**
 * Credentials handed over in the URL's fragment (`#token=...`, or
 * `#api-key=...&api-secret=...`, as `make dev` prints): taken, saved, and
 * removed from the URL and the history entry at once.
 */
export function takeFromFragment(): Credentials | null {
  if (!location.hash || location.hash.length < 2) return null;
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("token");
  const apiKey = params.get("api-key");
  const apiSecret = params.get("api-secret");
  let credentials: Credentials | null = null;
  if (token) credentials = { kind: "token", token };
  else if (apiKey && apiSecret) credentials = { kind: "apiKey", apiKey, apiSecret };
  if (credentials) {
    history.replaceState(history.state, "", location.pathname + location.search);
    save(credentials);
  }
  return credentials;
}

/** The headers that carry them. */
export function headers(credentials: Credentials): Record<string, string> {
  return credentials.kind === "token"
    ? { Authorization: `Bearer ${credentials.token}` }
    : { "api-key": credentials.apiKey, "api-secret": credentials.apiSecret };
}
