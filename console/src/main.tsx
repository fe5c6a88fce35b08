// The billing admin console: sign-in, then the customers, a customer and the users screens.

import { render } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import { ApiError, client, setUnauthorizedHandler } from "./api";
import { type Config, loadConfig } from "./config";
import * as credentialStore from "./credentials";
import type { Credentials } from "./credentials";
import * as oidc from "./oidc";
import { Customer } from "./pages/Customer";
import { Customers } from "./pages/Customers";
import { SignIn } from "./pages/SignIn";
import { Users } from "./pages/Users";
import { BASE, follow, useRoute } from "./router";
import { Title } from "./ui";

function App({ config, initial }: { config: Config; initial: Credentials | null }) {
  const [credentials, setCredentials] = useState<Credentials | null>(initial);
  const [reason, setReason] = useState<unknown>(null);
  const route = useRoute();
  const api = useMemo(() => (credentials ? client(credentials) : null), [credentials]);

  useEffect(() => {
    setUnauthorizedHandler((error: ApiError) => {
      credentialStore.clear();
      setReason(
        new ApiError(401, `Signed out (${error.message}): sign in again.`, error.code, error.errorId, null),
      );
      setCredentials(null);
    });
  }, []);

  if (!credentials || !api) {
    return (
      <>
        <Header signedIn={false} onSignOut={() => {}} />
        <SignIn
          reason={reason}
          oidc={config.oidc !== null}
          onOidc={() => void oidc.start(config)}
          onSignedIn={(c) => {
            credentialStore.save(c);
            setReason(null);
            setCredentials(c);
          }}
        />
      </>
    );
  }
  const signOut = () => {
    credentialStore.clear();
    setReason(null);
    setCredentials(null);
  };
  return (
    <>
      <Header signedIn onSignOut={signOut} current={route.name} />
      <main id="main">
        {route.name === "customers" && <Customers api={api} query={route.query} tiers={config.tiers} />}
        {route.name === "customer" && <Customer key={route.id} api={api} id={route.id} />}
        {route.name === "users" && <Users api={api} query={route.query} />}
        {route.name === "notFound" && (
          <>
            <Title text="Page not found" />
            <p>
              <a href={BASE} onClick={follow}>
                Go to the customers
              </a>
            </p>
          </>
        )}
      </main>
    </>
  );
}

function Header(props: { signedIn: boolean; onSignOut: () => void; current?: string }) {
  return (
    <header class="top">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <span class="brand">Billing admin</span>
      {props.signedIn && (
        <>
          <nav aria-label="Main">
            <a href={BASE} onClick={follow} aria-current={props.current === "customers" ? "page" : undefined}>
              Customers
            </a>
            <a href={`${BASE}users`} onClick={follow} aria-current={props.current === "users" ? "page" : undefined}>
              Users
            </a>
          </nav>
          <button type="button" class="secondary" onClick={props.onSignOut}>
            Sign out
          </button>
        </>
      )}
    </header>
  );
}

async function main() {
  const config = await loadConfig();
  let initial = credentialStore.takeFromFragment() ?? credentialStore.load();
  if (!initial && config.oidc) {
    initial = await oidc.finish(config).catch(() => null);
  }
  const root = document.getElementById("app");
  if (root) render(<App config={config} initial={initial} />, root);
}

void main();
