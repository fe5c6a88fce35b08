// Finding a user's customer.

import { useEffect, useState } from "preact/hooks";
import { type Api, ApiError, type UserCustomer } from "../api";
import { BASE, customerPath, follow, navigate } from "../router";
import { ErrorMessage, TextField, Title, formatTime } from "../ui";

export function Users({ api, query }: { api: Api; query: URLSearchParams }) {
  const asked = query.get("userID") ?? "";
  const [userID, setUserID] = useState(asked);
  const [found, setFound] = useState<UserCustomer | null>(null);
  const [customerName, setCustomerName] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    setUserID(asked);
    setFound(null);
    setCustomerName(null);
    setError(null);
    if (!asked) return;
    let live = true;
    setBusy(true);
    api
      .findUser(asked)
      .then(async (result) => {
        if (!live) return;
        setFound(result);
        // Its name, for the link (a customer being deleted has none to show).
        const customer = await api.getCustomer(result.customerID).catch(() => null);
        if (live && customer) setCustomerName(customer.name);
      })
      .catch((e) => live && setError(e))
      .finally(() => live && setBusy(false));
    return () => {
      live = false;
    };
  }, [api, asked]);

  const notFound = error instanceof ApiError && error.code === "membership_not_found";
  return (
    <>
      <Title text="Users" />
      <form
        class="inline-form"
        role="search"
        aria-label="Find a user's customer"
        onSubmit={(e) => {
          e.preventDefault();
          const id = userID.trim();
          navigate(`${BASE}users${id ? `?userID=${encodeURIComponent(id)}` : ""}`);
        }}
      >
        <TextField
          id="find-user"
          label="User ID"
          name="userID"
          required
          autocomplete="off"
          spellcheck={false}
          value={userID}
          onValue={setUserID}
        />
        <button type="submit" disabled={busy}>
          Find
        </button>
      </form>
      <div role="status" class="result">
        {busy && "Searching…"}
        {found && (
          <p>
            User <code>{asked}</code> is the <strong>{found.role}</strong> of{" "}
            <a href={customerPath(found.customerID)} onClick={follow}>
              {customerName ?? `customer ${found.customerID}`}
            </a>{" "}
            (<code>{found.customerID}</code>){" "}
            since {formatTime(found.joinedAt)}.
          </p>
        )}
        {notFound && (
          <p>
            User <code>{asked}</code> belongs to no customer.
          </p>
        )}
      </div>
      {!notFound && <ErrorMessage error={error} />}
    </>
  );
}
