// A tiny router over the History API: the console's paths live under /console/.

import { useEffect, useState } from "preact/hooks";

/** The console's base path. */
export const BASE = "/console/";

/** A screen of the console and its parameters. */
export type Route =
  | { name: "customers"; query: URLSearchParams }
  | { name: "customer"; id: string }
  | { name: "users"; query: URLSearchParams }
  | { name: "notFound" };

export function parse(pathname: string, search: string): Route {
  const query = new URLSearchParams(search);
  const rest = pathname.startsWith(BASE) ? pathname.slice(BASE.length) : pathname === "/console" ? "" : null;
  if (rest === null) return { name: "notFound" };
  if (rest === "" || rest === "customers") return { name: "customers", query };
  if (rest === "users") return { name: "users", query };
  const customer = /^customers\/([^/]+)$/.exec(rest);
  if (customer) return { name: "customer", id: decodeURIComponent(customer[1]) };
  return { name: "notFound" };
}

const EVENT = "console:navigate";

/** Goes to `path` (below the origin), adding a history entry unless `replace`. */
export function navigate(path: string, replace = false): void {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  window.dispatchEvent(new Event(EVENT));
}

/** The current route; re-renders on navigation and on back/forward. */
export function useRoute(): Route {
  const read = () => parse(location.pathname, location.search);
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const update = () => setRoute(read());
    window.addEventListener("popstate", update);
    window.addEventListener(EVENT, update);
    return () => {
      window.removeEventListener("popstate", update);
      window.removeEventListener(EVENT, update);
    };
  }, []);
  return route;
}

/** Click handler for in-app links: plain left clicks navigate without a reload. */
export function follow(event: MouseEvent): void {
  const anchor = event.currentTarget as HTMLAnchorElement;
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  navigate(anchor.getAttribute("href") ?? BASE);
}

export function customerPath(id: string): string {
  return `${BASE}customers/${encodeURIComponent(id)}`;
}
