// The REST API of docs/design.md, as the browser calls it: the session cookie authenticates, and
// every change carries the `tandem_csrf` cookie's value in `X-CSRF-Token`.

// The bodies' types are generated from the server's (protocol/src → src/generated/api.ts).
import type {
  Comment,
  CommentAuthor,
  Completion,
  Completions,
  Grant,
  Inspection,
  Me,
  NotebookInfo,
  Role,
  Session,
  Sharing,
  Thread,
} from "./generated/api";

export type { Comment, CommentAuthor, Completions, Grant, Inspection, Me, NotebookInfo, Role, Session, Sharing, Thread };

/** One completion (protocol's `Completion`). */
export type CompletionMatch = Completion;

/** An HTTP error with the API's `{"error": {"code", "message"}}` body. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function cookie(name: string): string | undefined {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return undefined;
}

export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && method !== "HEAD") {
    const csrf = cookie("tandem_csrf");
    if (csrf) headers["x-csrf-token"] = csrf;
  }
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  if (!response.ok) {
    let code = "http_" + response.status;
    let message = response.statusText || `HTTP ${response.status}`;
    try {
      const json = await response.json();
      if (json?.error) {
        code = json.error.code ?? code;
        message = json.error.message ?? message;
      }
    } catch {
      // Not JSON: keep the status text.
    }
    throw new ApiError(response.status, code, message);
  }
  if (response.status === 204 || response.status === 202) {
    const text = await response.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }
  return (await response.json()) as T;
}

export const api = {
  /**
   * The signed-in user. Asks `/api/session` (200 whether signed in or not) and throws the
   * same 401 `ApiError` `/api/me` would when signed out, so callers stay as they were.
   */
  me: async (): Promise<Me> => {
    const session = await request<Session>("GET", "/api/session");
    if (!session.signed_in || !session.user) throw new ApiError(401, "unauthorized", "not signed in");
    return session.user;
  },
  providers: () =>
    request<{ providers: { name: string; label: string; url: string }[]; local: boolean }>(
      "GET",
      "/auth/providers",
    ),
  signOut: () => request<void>("POST", "/auth/signout"),
  list: () => request<NotebookInfo[]>("GET", "/api/notebooks"),
  create: (title: string, ipynb?: unknown) =>
    request<NotebookInfo>("POST", "/api/notebooks", ipynb === undefined ? { title } : { title, ipynb }),
  get: (id: string) => request<NotebookInfo>("GET", `/api/notebooks/${encodeURIComponent(id)}`),
  rename: (id: string, title: string) =>
    request<NotebookInfo>("PATCH", `/api/notebooks/${encodeURIComponent(id)}`, { title }),
  remove: (id: string) => request<void>("DELETE", `/api/notebooks/${encodeURIComponent(id)}`),
  /** `stateVector`: base64 of this page's Y state vector, so the run sees every edit made here. */
  execute: (id: string, cellIds: string[], stateVector?: string) =>
    request<{ queued: string[] }>("POST", `/api/notebooks/${encodeURIComponent(id)}/execute`, {
      cell_ids: cellIds,
      state_vector: stateVector,
    }),
  executeAll: (id: string, stateVector?: string) =>
    request<{ queued: string[] }>("POST", `/api/notebooks/${encodeURIComponent(id)}/execute`, {
      all: true,
      state_vector: stateVector,
    }),
  executeStale: (id: string, stateVector?: string) =>
    request<{ queued: string[] }>("POST", `/api/notebooks/${encodeURIComponent(id)}/execute`, {
      stale: true,
      state_vector: stateVector,
    }),
  /** Clears outputs and execution counts: of these code cells, or of all when none given. */
  clearOutputs: (id: string, cellIds?: string[]) =>
    request<{ cleared: string[] }>("POST", `/api/notebooks/${encodeURIComponent(id)}/outputs/clear`, cellIds ? { cell_ids: cellIds } : {}),
  interrupt: (id: string) => request<void>("POST", `/api/notebooks/${encodeURIComponent(id)}/interrupt`),
  restart: (id: string) => request<void>("POST", `/api/notebooks/${encodeURIComponent(id)}/restart`),
  /** Completions from the running kernel at `cursor` (UTF-16 code units) of `code`. */
  complete: (id: string, code: string, cursor: number) =>
    request<Completions>("POST", `/api/notebooks/${encodeURIComponent(id)}/complete`, { code, cursor }),
  /** The signature and docstring of the name at `cursor`, from the running kernel. */
  inspect: (id: string, code: string, cursor: number, detailLevel = 0) =>
    request<Inspection>("POST", `/api/notebooks/${encodeURIComponent(id)}/inspect`, { code, cursor, detail_level: detailLevel }),
  /** Answers the running cell's `input()` (only whoever ran it may). */
  input: (id: string, value: string) =>
    request<void>("POST", `/api/notebooks/${encodeURIComponent(id)}/input`, { value }),
  setRuntime: (id: string, type: "cpu" | "gpu") =>
    request<unknown>("PUT", `/api/notebooks/${encodeURIComponent(id)}/runtime`, { type }),
  sharing: (id: string) => request<Sharing>("GET", `/api/notebooks/${encodeURIComponent(id)}/sharing`),
  setSharing: (id: string, sharing: Sharing) =>
    request<Sharing>("PUT", `/api/notebooks/${encodeURIComponent(id)}/sharing`, sharing),
  transfer: (id: string, email: string) =>
    request<Sharing>("POST", `/api/notebooks/${encodeURIComponent(id)}/owner`, { email }),
  threads: (id: string) => request<Thread[]>("GET", `${commentsPath(id)}`),
  openThread: (id: string, cellId: string, text: string, range?: { from: number; to: number }) =>
    request<Thread>("POST", commentsPath(id), range ? { cell_id: cellId, text, ...range } : { cell_id: cellId, text }),
  reply: (id: string, thread: string, text: string) =>
    request<Comment>("POST", `${commentsPath(id)}/${encodeURIComponent(thread)}/replies`, { text }),
  resolve: (id: string, thread: string, resolved: boolean) =>
    request<Thread>("PATCH", `${commentsPath(id)}/${encodeURIComponent(thread)}`, { resolved }),
  deleteThread: (id: string, thread: string) =>
    request<void>("DELETE", `${commentsPath(id)}/${encodeURIComponent(thread)}`),
  deleteReply: (id: string, thread: string, comment: string) =>
    request<void>("DELETE", `${commentsPath(id)}/${encodeURIComponent(thread)}/replies/${encodeURIComponent(comment)}`),
};

function commentsPath(id: string): string {
  return `/api/notebooks/${encodeURIComponent(id)}/comments`;
}

export function ipynbUrl(id: string): string {
  return `/api/notebooks/${encodeURIComponent(id)}/ipynb`;
}

export function fullOutputUrl(id: string, file: string): string {
  return `/api/notebooks/${encodeURIComponent(id)}/outputs/${encodeURIComponent(file)}`;
}

export function signInUrl(returnTo: string = location.pathname): string {
  return `/signin?return_to=${encodeURIComponent(returnTo)}`;
}
