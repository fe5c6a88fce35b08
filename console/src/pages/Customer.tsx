// One customer: its record, members (roles, the owner marked), adding,
// changing and removing members, the audit trail, and deletion.

import { useEffect, useRef, useState } from "preact/hooks";
import { type Api, ApiError, type AuditEvent, type AuditList, type CustomerDetail, type MemberList } from "../api";
import { BASE, navigate } from "../router";
import { ErrorMessage, Pager, TextField, Title, formatTime, useMutation } from "../ui";

const LIMIT = 10;
const ZERO_UUID = "00000000-0000-0000-0000-000000000000";

/** A page read by number or by the cursor of the page before it. */
interface PageState {
  page: number;
  cursor?: string;
}

function usePaged<T>(load: (at: PageState) => Promise<T>, deps: unknown[]) {
  const [at, setAt] = useState<PageState>({ page: 1 });
  // The page shown is the page loaded: its number changes with its rows.
  const [loaded, setLoaded] = useState<{ page: number; data: T } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(true);
  useEffect(() => {
    let live = true;
    setBusy(true);
    load(at)
      .then((result) => {
        if (!live) return;
        setLoaded({ page: at.page, data: result });
        setError(null);
      })
      .catch((e) => live && setError(e))
      .finally(() => live && setBusy(false));
    return () => {
      live = false;
    };
  }, [at, ...deps]);
  return { page: loaded?.page ?? at.page, setAt, data: loaded?.data ?? null, error, busy };
}

export function Customer({ api, id }: { api: Api; id: string }) {
  const [version, setVersion] = useState(0);
  const refresh = () => setVersion((v) => v + 1);
  const [customer, setCustomer] = useState<CustomerDetail | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [notice, setNotice] = useState("");

  useEffect(() => {
    let live = true;
    api
      .getCustomer(id)
      .then((c) => {
        if (!live) return;
        setCustomer(c);
        setError(null);
      })
      .catch((e) => live && setError(e));
    return () => {
      live = false;
    };
  }, [api, id, version]);

  if (!customer) {
    return (
      <>
        <Title text={error ? "Customer not available" : "Loading customer…"} />
        <ErrorMessage error={error} />
        <p>
          <a href={BASE}>Back to customers</a>
        </p>
      </>
    );
  }
  const changed = (message: string) => {
    setNotice(message);
    refresh();
  };
  return (
    <>
      <p class="breadcrumb">
        <a href={BASE}>Customers</a>
      </p>
      <Title text={customer.name} />
      <ErrorMessage error={error} />
      <dl class="facts">
        <dt>Customer ID</dt>
        <dd>
          <code>{customer.id}</code>
        </dd>
        <dt>Tier</dt>
        <dd>{customer.tierName}</dd>
        <dt>Status</dt>
        <dd>
          <span class={`badge status-${customer.subscriptionStatus}`}>{customer.subscriptionStatus}</span>
        </dd>
        <dt>Members</dt>
        <dd>{customer.memberCount}</dd>
        <dt>Owner</dt>
        <dd>{customer.ownerUserID === ZERO_UUID ? "none (orphaned)" : <code>{customer.ownerUserID}</code>}</dd>
        <dt>Created</dt>
        <dd>{formatTime(customer.createdAt)}</dd>
      </dl>
      <p role="status" class="notice">
        {notice}
      </p>
      <Members api={api} customer={customer} version={version} onChange={changed} />
      <AddMember api={api} customer={customer} onChange={changed} />
      <Audit api={api} id={customer.id} version={version} />
      <DeleteCustomer api={api} customer={customer} />
    </>
  );
}

function Members(props: { api: Api; customer: CustomerDetail; version: number; onChange: (message: string) => void }) {
  const { api, customer } = props;
  const members = usePaged<MemberList>(
    (at) => api.listMembers(customer.id, { limit: LIMIT, ...(at.cursor ? { cursor: at.cursor } : { page: at.page }) }),
    [api, customer.id, props.version],
  );
  const mutation = useMutation();
  const [error, setError] = useState<unknown>(null);

  const changeRole = async (userID: string, role: "admin" | "user") => {
    setError(null);
    try {
      await mutation.run(`role:${userID}:${role}`, (key) => api.changeRole(customer.id, userID, { role }, key));
      props.onChange(`Changed the role of ${userID} to ${role}.`);
    } catch (e) {
      setError(e);
    }
  };
  const remove = async (userID: string) => {
    setError(null);
    try {
      await mutation.run(`remove:${userID}`, (key) => api.removeMember(customer.id, userID, key));
      props.onChange(`Removed ${userID}.`);
    } catch (e) {
      if (e instanceof ApiError && e.code === "member_not_found") props.onChange(`${userID} is no longer a member.`);
      else setError(e);
    }
  };

  const list = members.data;
  return (
    <section aria-labelledby="members-heading">
      <h2 id="members-heading">Members</h2>
      <ErrorMessage error={members.error ?? error} />
      <table aria-labelledby="members-heading" aria-busy={members.busy || mutation.busy}>
        <thead>
          <tr>
            <th scope="col">User ID</th>
            <th scope="col">Role</th>
            <th scope="col">Joined</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {list?.members.map((m) => (
            <tr key={m.userID}>
              <td>
                <code>{m.userID}</code>
              </td>
              <td>
                {m.role === "owner" ? (
                  <span class="badge owner">owner</span>
                ) : (
                  <select
                    aria-label="Role"
                    value={m.role}
                    disabled={mutation.busy}
                    onChange={(e) => changeRole(m.userID, e.currentTarget.value as "admin" | "user")}
                  >
                    <option value="admin">admin</option>
                    <option value="user">user</option>
                  </select>
                )}
              </td>
              <td>{formatTime(m.joinedAt)}</td>
              <td>
                {m.role === "owner" ? (
                  <span class="muted">The owner stays</span>
                ) : (
                  <button type="button" class="secondary" disabled={mutation.busy} onClick={() => remove(m.userID)}>
                    Remove
                  </button>
                )}
              </td>
            </tr>
          ))}
          {list && list.members.length === 0 && (
            <tr>
              <td colSpan={4}>No members on this page.</td>
            </tr>
          )}
        </tbody>
      </table>
      {list && (
        <>
          <p class="total">
            {list.items} {list.items === 1 ? "member" : "members"}
          </p>
          <Pager
            label="Member pages"
            page={members.page}
            pages={list.pages}
            hasNext={Boolean(list.next) || members.page < list.pages}
            busy={members.busy}
            onPrevious={() => members.setAt({ page: members.page - 1 })}
            onNext={() => members.setAt({ page: members.page + 1, cursor: list.next })}
            onPage={(page) => members.setAt({ page })}
          />
        </>
      )}
    </section>
  );
}

function AddMember(props: { api: Api; customer: CustomerDetail; onChange: (message: string) => void }) {
  const [userID, setUserID] = useState("");
  const [role, setRole] = useState<"admin" | "user">("user");
  const [error, setError] = useState<unknown>(null);
  const mutation = useMutation();
  const submit = async (event: Event) => {
    event.preventDefault();
    setError(null);
    const user = userID.trim();
    try {
      await mutation.run(`add:${user}:${role}`, (key) =>
        props.api.addMember(props.customer.id, { userID: user, role }, key),
      );
      setUserID("");
      props.onChange(`Added ${user} as ${role}.`);
    } catch (e) {
      setError(e);
    }
  };
  return (
    <section aria-labelledby="add-member-heading">
      <h2 id="add-member-heading">Add a member</h2>
      <form class="inline-form" aria-label="Add member" onSubmit={submit}>
        <TextField
          id="add-member-user"
          label="User ID"
          name="userID"
          required
          autocomplete="off"
          spellcheck={false}
          placeholder="00000000-0000-4000-8000-000000000000"
          value={userID}
          onValue={setUserID}
        />
        <div class="field">
          <label for="add-member-role">Role</label>
          <select id="add-member-role" value={role} onChange={(e) => setRole(e.currentTarget.value as "admin" | "user")}>
            <option value="user">user</option>
            <option value="admin">admin</option>
          </select>
        </div>
        <button type="submit" disabled={mutation.busy}>
          Add member
        </button>
      </form>
      <ErrorMessage error={error} />
    </section>
  );
}

function actor(event: AuditEvent): string {
  const a = event.actor;
  switch (a.type) {
    case "user":
      return `user ${a.subject}`;
    case "api_key":
      return `API key ${a.keyID} (user ${a.userID})`;
    case "platform":
      return `platform event ${a.eventID}`;
    case "stripe":
      return `Stripe ${a.eventID}`;
    case "system":
      return a.name;
  }
}

function changes(event: AuditEvent): string {
  const parts = Object.entries(event.changes).map(([field, c]) => `${field}: ${c.from ?? "∅"} → ${c.to ?? "∅"}`);
  if (event.userID) parts.unshift(`member ${event.userID}${event.role ? ` (${event.role})` : ""}`);
  return parts.join("; ");
}

function Audit({ api, id, version }: { api: Api; id: string; version: number }) {
  const audit = usePaged<AuditList>(
    (at) => api.listAudit(id, { limit: LIMIT, ...(at.cursor ? { cursor: at.cursor } : { page: at.page }) }),
    [api, id, version],
  );
  const list = audit.data;
  return (
    <section aria-labelledby="audit-heading">
      <h2 id="audit-heading">Audit</h2>
      <ErrorMessage error={audit.error} />
      <table aria-labelledby="audit-heading" aria-busy={audit.busy}>
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Event</th>
            <th scope="col">Actor</th>
            <th scope="col">Details</th>
          </tr>
        </thead>
        <tbody>
          {list?.events.map((e) => (
            <tr key={e.id}>
              <td>{formatTime(e.at)}</td>
              <td>
                <code>{e.action}</code>
              </td>
              <td>{actor(e)}</td>
              <td>{changes(e)}</td>
            </tr>
          ))}
          {list && list.events.length === 0 && (
            <tr>
              <td colSpan={4}>No events on this page.</td>
            </tr>
          )}
        </tbody>
      </table>
      {list && (
        <>
          <p class="total">
            {list.items} {list.items === 1 ? "event" : "events"}
          </p>
          <Pager
            label="Audit pages"
            page={audit.page}
            pages={list.pages}
            hasNext={Boolean(list.next) || audit.page < list.pages}
            busy={audit.busy}
            onPrevious={() => audit.setAt({ page: audit.page - 1 })}
            onNext={() => audit.setAt({ page: audit.page + 1, cursor: list.next })}
            onPage={(page) => audit.setAt({ page })}
          />
        </>
      )}
    </section>
  );
}

function DeleteCustomer({ api, customer }: { api: Api; customer: CustomerDetail }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [typed, setTyped] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [progress, setProgress] = useState("");
  const mutation = useMutation();
  const retry = useRef<number | undefined>(undefined);
  useEffect(() => () => window.clearTimeout(retry.current), []);

  const open = () => {
    setTyped("");
    setError(null);
    setProgress("");
    dialog.current?.showModal();
  };
  const attempt = async () => {
    setError(null);
    try {
      await mutation.run(`delete:${customer.id}`, (key) => api.deleteCustomer(customer.id, key));
      dialog.current?.close();
      navigate(`${BASE}?deleted=${encodeURIComponent(customer.name)}`);
    } catch (e) {
      if (e instanceof ApiError && e.code === "deletion_in_progress") {
        const seconds = e.retryAfter ?? 5;
        setProgress(
          `Deletion in progress (deletion_in_progress, error ID ${e.errorId ?? "none"}): retrying in ${seconds} s.`,
        );
        retry.current = window.setTimeout(attempt, seconds * 1000);
      } else {
        setProgress("");
        setError(e);
      }
    }
  };
  const matches = typed === customer.name;
  return (
    <section aria-labelledby="danger-heading" class="danger">
      <h2 id="danger-heading">Delete this customer</h2>
      <p>Deleting cancels its Stripe billing and removes its members. The audit trail is kept.</p>
      <button type="button" class="danger-button" onClick={open}>
        Delete customer
      </button>
      <dialog
        ref={dialog}
        aria-labelledby="delete-heading"
        aria-describedby="delete-help"
        onClose={() => {
          window.clearTimeout(retry.current);
          setProgress("");
        }}
      >
        <form
          method="dialog"
          onSubmit={(e) => {
            e.preventDefault();
            if (matches) void attempt();
          }}
        >
          <h2 id="delete-heading">Delete {customer.name}?</h2>
          <p id="delete-help">
            This cannot be undone. Type the customer's name, <strong>{customer.name}</strong>, to confirm.
          </p>
          <TextField
            id="delete-name"
            label="Customer name"
            autocomplete="off"
            spellcheck={false}
            value={typed}
            onValue={setTyped}
          />
          <p role="status" class="notice">
            {progress}
          </p>
          <ErrorMessage error={error} />
          <div class="dialog-actions">
            <button type="button" class="secondary" onClick={() => dialog.current?.close()}>
              Cancel
            </button>
            <button type="submit" class="danger-button" disabled={!matches || mutation.busy || Boolean(progress)}>
              Delete
            </button>
          </div>
        </form>
      </dialog>
    </section>
  );
}
