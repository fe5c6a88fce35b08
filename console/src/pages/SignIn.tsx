// Sign-in: a bearer token, an API key and secret, or (when configured) OpenID Connect.

import { useState } from "preact/hooks";
import { ApiError, client } from "../api";
import type { Credentials } from "../credentials";
import { ErrorMessage, TextField, Title } from "../ui";

export function SignIn(props: {
  reason: unknown;
  oidc: boolean;
  onOidc: () => void;
  onSignedIn: (credentials: Credentials) => void;
}) {
  const [token, setToken] = useState("");
  const [apiKey, setApiKey] = useState("");
  const [apiSecret, setApiSecret] = useState("");
  const [error, setError] = useState<unknown>(props.reason);
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    const credentials: Credentials | null = token.trim()
      ? { kind: "token", token: token.trim() }
      : apiKey.trim() && apiSecret
        ? { kind: "apiKey", apiKey: apiKey.trim(), apiSecret }
        : null;
    if (!credentials) {
      setError(new ApiError(0, "Enter a token, or an API key and its secret.", "missing_credentials", null, null));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      // One cheap call tells good credentials (200) from bad ones (401) and
      // from credentials without the role (403).
      await client(credentials).listCustomers({ limit: 1 });
      props.onSignedIn(credentials);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main id="main" class="sign-in">
      <Title text="Sign in" />
      <p>Sign in to the billing admin console with credentials that hold the billing_admin role.</p>
      <ErrorMessage error={error} />
      {props.oidc && (
        <section aria-labelledby="sso-heading">
          <h2 id="sso-heading">Single sign-on</h2>
          <button type="button" onClick={props.onOidc}>
            Sign in with your identity provider
          </button>
        </section>
      )}
      <form onSubmit={submit} aria-label="Sign in with credentials">
        <fieldset>
          <legend>A bearer token</legend>
          <div class="field">
            <label for="sign-in-token">Token</label>
            <textarea
              id="sign-in-token"
              name="token"
              rows={3}
              autocomplete="off"
              spellcheck={false}
              value={token}
              onInput={(e) => setToken(e.currentTarget.value)}
            />
          </div>
        </fieldset>
        <fieldset>
          <legend>Or an API key</legend>
          <TextField
            id="sign-in-key"
            label="API key"
            name="api-key"
            autocomplete="username"
            spellcheck={false}
            value={apiKey}
            onValue={setApiKey}
          />
          <TextField
            id="sign-in-secret"
            label="API secret"
            name="api-secret"
            type="password"
            autocomplete="current-password"
            value={apiSecret}
            onValue={setApiSecret}
          />
        </fieldset>
        <button type="submit" disabled={busy}>
          Sign in
        </button>
      </form>
    </main>
  );
}
