// The API client: every call the console makes, typed by the operations
// generated from openapi.yaml (src/generated/api.ts), so a contract change
// breaks the build rather than the page.

import type { components, operations } from "./generated/api";
import { type Credentials, headers } from "./credentials";

/** Where the API lives: the same origin as the console. */
export const API_BASE = "/api/billing/v1/admin";

type Schemas = components["schemas"];
export type CustomerSummary = Schemas["CustomerSummary"];
export type CustomerDetail = Schemas["CustomerDetail"];
export type Member = Schemas["Member"];
export type AuditEvent = Schemas["AuditEvent"];
export type Role = Schemas["Role"];
export type SubscriptionStatus = Schemas["SubscriptionStatus"];

type Json<R> = R extends { content: { "application/json": infer J } } ? J : never;
type Query<Op> = Op extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never;

export type CustomerList = Json<operations["listCustomers"]["responses"][200]>;
export type CustomerListQuery = Query<operations["listCustomers"]>;
export type MemberList = Json<operations["listMembers"]["responses"][200]>;
export type PageQuery = Query<operations["listMembers"]>;
export type AuditList = Json<operations["listAudit"]["responses"][200]>;
export type UserCustomer = Json<operations["getUserCustomer"]["responses"][200]>;
type AddMemberBody = Json<NonNullable<operations["addMember"]["requestBody"]>>;
type ChangeRoleBody = Json<NonNullable<operations["changeMemberRole"]["requestBody"]>>;
type ErrorBody = Schemas["Error"];

/** Every subscription status, in the order the filter offers them. */
export const STATUSES: readonly SubscriptionStatus[] = [
  "active",
  "trialing",
  "past_due",
  "unpaid",
  "paused",
  "incomplete",
  "incomplete_expired",
  "canceled",
] satisfies readonly SubscriptionStatus[];

/** A non-2xx answer (or no answer): what the API said, and its error id. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string,
    readonly errorId: string | null,
    /** Seconds, from `Retry-After`, when the API gave one. */
    readonly retryAfter: number | null,
  ) {
    super(message);
  }
}

/** Called on every 401: the console returns to its sign-in. */
let onUnauthorized: (error: ApiError) => void = () => {};
export function setUnauthorizedHandler(handler: (error: ApiError) => void): void {
  onUnauthorized = handler;
}

const TIMEOUT_MS = 30_000;

async function call<T>(
  credentials: Credentials,
  method: string,
  path: string,
  options: { query?: Record<string, string | number | undefined>; body?: unknown; idempotencyKey?: string } = {},
): Promise<T> {
  const url = new URL(API_BASE + path, location.origin);
  for (const [name, value] of Object.entries(options.query ?? {})) {
    if (value !== undefined && value !== "") url.searchParams.set(name, String(value));
  }
  const requestHeaders: Record<string, string> = { Accept: "application/json", ...headers(credentials) };
  if (options.body !== undefined) requestHeaders["Content-Type"] = "application/json";
  if (options.idempotencyKey) requestHeaders["Idempotency-Key"] = options.idempotencyKey;
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: requestHeaders,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      credentials: "omit",
      cache: "no-store",
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (cause) {
    const timedOut = cause instanceof DOMException && cause.name === "TimeoutError";
    throw new ApiError(0, timedOut ? "The API did not answer in time." : "The API cannot be reached.", "network", null, null);
  }
  if (response.ok) {
    return (response.status === 204 ? undefined : await response.json()) as T;
  }
  const error = await readError(response);
  if (error.status === 401) onUnauthorized(error);
  throw error;
}

async function readError(response: Response): Promise<ApiError> {
  const retry = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
  const retryAfter = Number.isFinite(retry) && retry >= 0 ? retry : null;
  let body: ErrorBody | null = null;
  try {
    body = (await response.json()) as ErrorBody;
  } catch {
    body = null;
  }
  const message = body?.error?.message ?? response.headers.get("x-error") ?? `HTTP ${response.status}`;
  const errorId = body?.error?.error_id ?? response.headers.get("x-error-id");
  const code = body?.error?.code ?? `http_${response.status}`;
  return new ApiError(response.status, message, code, errorId, retryAfter);
}

const enc = encodeURIComponent;

/** The API's operations, bound to one set of credentials. */
export function client(credentials: Credentials) {
  return {
    listCustomers: (query: CustomerListQuery) =>
      call<CustomerList>(credentials, "GET", "/customers", { query }),
    getCustomer: (id: string) => call<CustomerDetail>(credentials, "GET", `/customer/${enc(id)}`),
    deleteCustomer: (id: string, idempotencyKey: string) =>
      call<void>(credentials, "DELETE", `/customer/${enc(id)}`, { idempotencyKey }),
    listMembers: (id: string, query: PageQuery) =>
      call<MemberList>(credentials, "GET", `/customer/${enc(id)}/members`, { query }),
    addMember: (id: string, body: AddMemberBody, idempotencyKey: string) =>
      call<unknown>(credentials, "POST", `/customer/${enc(id)}/member`, { body, idempotencyKey }),
    changeRole: (id: string, userID: string, body: ChangeRoleBody, idempotencyKey: string) =>
      call<Member>(credentials, "PATCH", `/customer/${enc(id)}/member/${enc(userID)}`, { body, idempotencyKey }),
    // The API does not keep answers for removals (a repeat is 404
    // member_not_found, which the console reads as done); the key is sent
    // all the same, so every mutation carries one.
    removeMember: (id: string, userID: string, idempotencyKey: string) =>
      call<void>(credentials, "DELETE", `/customer/${enc(id)}/member/${enc(userID)}`, { idempotencyKey }),
    listAudit: (id: string, query: PageQuery) =>
      call<AuditList>(credentials, "GET", `/customer/${enc(id)}/audit`, { query }),
    findUser: (userID: string) => call<UserCustomer>(credentials, "GET", `/user/${enc(userID)}/customer`),
  };
}

/** The API bound to the signed-in credentials. */
export type Api = ReturnType<typeof client>;
