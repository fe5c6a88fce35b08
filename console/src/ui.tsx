// Pieces every screen uses: error messages, pagers, guarded mutations.

import type { ComponentChildren, InputHTMLAttributes } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "./api";

/** An error as the API gave it: its message, code and error id. */
export function ErrorMessage({ error }: { error: unknown }) {
  if (!error) return null;
  const api = error instanceof ApiError ? error : null;
  const forbidden = api?.status === 403;
  return (
    <div class="error" role="alert">
      {forbidden && <p>The billing_admin role is missing from these credentials.</p>}
      <p>{api ? api.message : String(error)}</p>
      {api && (
        <p class="error-meta">
          Code <code>{api.code}</code>
          {api.errorId && (
            <>
              {" "}· Error ID <code>{api.errorId}</code>
            </>
          )}
        </p>
      )}
    </div>
  );
}

/** Page controls: "Previous page" and "Next page" buttons, the page and a jump to page n. */
export function Pager(props: {
  label: string;
  page: number;
  pages: number;
  hasNext: boolean;
  busy: boolean;
  onPrevious: () => void;
  onNext: () => void;
  onPage: (page: number) => void;
}) {
  const [jump, setJump] = useState(String(props.page));
  useEffect(() => setJump(String(props.page)), [props.page]);
  const id = `${props.label.replace(/\W+/g, "-").toLowerCase()}-page`;
  return (
    <nav class="pager" aria-label={props.label}>
      <button type="button" onClick={props.onPrevious} disabled={props.busy || props.page <= 1}>
        Previous page
      </button>
      <span class="pager-position">
        Page {props.page} of {Math.max(props.pages, 1)}
      </span>
      <button type="button" onClick={props.onNext} disabled={props.busy || !props.hasNext}>
        Next page
      </button>
      <form
        class="pager-jump"
        onSubmit={(e) => {
          e.preventDefault();
          const n = Number.parseInt(jump, 10);
          if (Number.isFinite(n) && n >= 1) props.onPage(Math.min(n, Math.max(props.pages, 1)));
        }}
      >
        <label for={id}>Go to page</label>
        <input
          id={id}
          type="number"
          min={1}
          max={Math.max(props.pages, 1)}
          value={jump}
          onInput={(e) => setJump(e.currentTarget.value)}
        />
        <button type="submit" disabled={props.busy}>
          Go
        </button>
      </form>
    </nav>
  );
}

/**
 * A labelled text input in a `.field`: the label names the input by `id`; the
 * other attributes (name, required, autocomplete...) go to the input.
 */
export function TextField({
  id,
  label,
  value,
  onValue,
  ...input
}: {
  id: string;
  label: string;
  value: string;
  onValue: (value: string) => void;
} & Omit<InputHTMLAttributes<HTMLInputElement>, "id" | "value" | "onInput">) {
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <input id={id} {...input} value={value} onInput={(e) => onValue(e.currentTarget.value)} />
    </div>
  );
}

/** A fresh Idempotency-Key. */
export function newKey(): string {
  return crypto.randomUUID();
}

/**
 * Runs one mutation at a time: a second click while one runs does nothing
 * (the guard is a ref, so it holds within the same event loop turn), and each
 * intent keeps its Idempotency-Key until the API has answered it for good, so
 * a retry after a timeout or a 5xx is the same request to the API.
 */
export function useMutation() {
  const running = useRef(false);
  const keys = useRef(new Map<string, string>());
  const [busy, setBusy] = useState(false);
  async function run<T>(intent: string, action: (key: string) => Promise<T>): Promise<T | undefined> {
    if (running.current) return undefined;
    running.current = true;
    setBusy(true);
    let key = keys.current.get(intent);
    if (!key) {
      key = newKey();
      keys.current.set(intent, key);
    }
    try {
      const result = await action(key);
      keys.current.delete(intent);
      return result;
    } catch (error) {
      // Kept for a retry only when the API may not have acted (no answer, 5xx).
      if (!(error instanceof ApiError) || (error.status !== 0 && error.status < 500)) keys.current.delete(intent);
      throw error;
    } finally {
      running.current = false;
      setBusy(false);
    }
  }
  return { busy, run };
}

/** A level-1 heading that takes focus when the screen opens (for screen readers and keyboards). */
export function Title({ children, text }: { children?: ComponentChildren; text: string }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${text} · Billing admin`;
    ref.current?.focus();
  }, [text]);
  return (
    <h1 tabIndex={-1} ref={ref}>
      {children ?? text}
    </h1>
  );
}

export function formatTime(value: string): string {
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : date.toISOString().replace("T", " ").replace(/\.\d+Z$|Z$/, " UTC");
}
