// What the server tells the console at start (GET /console/config.json): the
// tiers the filter offers and, when set up, the OpenID Connect client.

export interface Config {
  /** Tier names the Tier filter offers. */
  tiers: string[];
  /** OpenID Connect sign-in, when CONSOLE_OIDC_CLIENT_ID is set. */
  oidc: { issuer: string; clientId: string; scope: string } | null;
}

const FALLBACK: Config = { tiers: [], oidc: null };

export async function loadConfig(): Promise<Config> {
  try {
    const response = await fetch(new URL("config.json", new URL("/console/", location.origin)), {
      cache: "no-store",
      signal: AbortSignal.timeout(10_000),
    });
    if (!response.ok) return FALLBACK;
    const value = (await response.json()) as Partial<Config>;
    return {
      tiers: Array.isArray(value.tiers) ? value.tiers.filter((t) => typeof t === "string") : [],
      oidc: value.oidc && typeof value.oidc.issuer === "string" && typeof value.oidc.clientId === "string" ? value.oidc : null,
    };
  } catch {
    return FALLBACK;
  }
}
