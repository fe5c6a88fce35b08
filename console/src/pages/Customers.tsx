// The customers: filters (tier, status), pages by number or cursor, totals.

import { useEffect, useState } from "preact/hooks";
import { type Api, type CustomerList, STATUSES } from "../api";
import { BASE, customerPath, follow, navigate } from "../router";
import { ErrorMessage, Pager, Title } from "../ui";

const LIMIT = 10;

export function Customers({ api, query, tiers }: { api: Api; query: URLSearchParams; tiers: string[] }) {
  const page = Math.max(1, Number.parseInt(query.get("page") ?? "1", 10) || 1);
  const tierName = query.get("tierName") ?? "";
  const status = query.get("status") ?? "";
  const cursor = query.get("cursor") ?? "";
  // The page shown is the page loaded: its number changes with its rows.
  const [loaded, setLoaded] = useState<{ page: number; list: CustomerList } | null>(null);
  const list = loaded?.list ?? null;
  const shown = loaded?.page ?? page;
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(true);

  useEffect(() => {
    let live = true;
    setBusy(true);
    setError(null);
    api
      .listCustomers({
        limit: LIMIT,
        ...(cursor ? { cursor } : { page }),
        ...(tierName ? { tierName } : {}),
        ...(status ? { status: status as (typeof STATUSES)[number] } : {}),
      })
      .then((result) => live && setLoaded({ page, list: result }))
      .catch((e) => live && setError(e))
      .finally(() => live && setBusy(false));
    return () => {
      live = false;
    };
  }, [api, page, tierName, status, cursor]);

  const go = (changes: Record<string, string | number | null>) => {
    const next = new URLSearchParams(query);
    next.delete("cursor");
    next.delete("deleted");
    for (const [name, value] of Object.entries(changes)) {
      if (value === null || value === "") next.delete(name);
      else next.set(name, String(value));
    }
    if (next.get("page") === "1") next.delete("page");
    const search = next.toString();
    navigate(BASE + (search ? `?${search}` : ""));
  };

  const tierOptions = tierName && !tiers.includes(tierName) ? [...tiers, tierName] : tiers;
  return (
    <>
      <Title text="Customers" />
      {query.get("deleted") && <p class="notice">Deleted {query.get("deleted")}.</p>}
      <form class="filters" aria-label="Filters" onSubmit={(e) => e.preventDefault()}>
        <div class="field">
          <label for="filter-tier">Tier</label>
          <select id="filter-tier" value={tierName} onChange={(e) => go({ tierName: e.currentTarget.value, page: null })}>
            <option value="">All tiers</option>
            {tierOptions.map((tier) => (
              <option value={tier}>{tier}</option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="filter-status">Status</label>
          <select id="filter-status" value={status} onChange={(e) => go({ status: e.currentTarget.value, page: null })}>
            <option value="">All statuses</option>
            {STATUSES.map((s) => (
              <option value={s}>{s}</option>
            ))}
          </select>
        </div>
      </form>
      <p role="status" class="total">
        {list ? `${list.items} ${list.items === 1 ? "customer" : "customers"}` : busy ? "Loading customers…" : ""}
      </p>
      <ErrorMessage error={error} />
      <table aria-labelledby="customers-caption" aria-busy={busy}>
        <caption id="customers-caption">Customers, page {shown}</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Tier</th>
            <th scope="col">Status</th>
            <th scope="col">Members</th>
            <th scope="col">Created</th>
          </tr>
        </thead>
        <tbody>
          {list?.customers.map((c) => (
            <tr key={c.id}>
              <td>
                <a href={customerPath(c.id)} onClick={follow}>
                  {c.name}
                </a>
              </td>
              <td>{c.tierName}</td>
              <td>
                <span class={`badge status-${c.subscriptionStatus}`}>{c.subscriptionStatus}</span>
              </td>
              <td class="number">{c.memberCount}</td>
              <td>{c.createdAt.slice(0, 10)}</td>
            </tr>
          ))}
          {list && list.customers.length === 0 && (
            <tr>
              <td colSpan={5}>No customers on this page.</td>
            </tr>
          )}
        </tbody>
      </table>
      {list && (
        <Pager
          label="Customer pages"
          page={shown}
          pages={list.pages}
          hasNext={Boolean(list.next) || shown < list.pages}
          busy={busy}
          onPrevious={() => go({ page: shown - 1 })}
          onNext={() => go(list.next ? { page: shown + 1, cursor: list.next } : { page: shown + 1 })}
          onPage={(n) => go({ page: n })}
        />
      )}
    </>
  );
}
