// Generated from protocol/src (the HTTP API's bodies) by
// `TANDEM_WRITE_TS=1 cargo test -p tandem-protocol --test typescript`; do not edit.

export type Role = "viewer" | "commenter" | "editor" | "owner";

export type Me = { 
/**
 * The user's id.
 */
id: string, 
/**
 * The user's email address, unique per user.
 */
email: string, 
/**
 * The user's display name.
 */
name: string, };

export type Session = { 
/**
 * Whether the request carried a valid session cookie or token.
 */
signed_in: boolean, 
/**
 * The signed-in user; absent when signed out.
 */
user?: Me, };

export type Person = { 
/**
 * The user's id.
 */
id: string, 
/**
 * The user's display name.
 */
name: string, 
/**
 * The user's email address, shown only to the notebook's editors and owner (who see
 * the sharing list anyway).
 */
email?: string, };

export type NotebookInfo = { 
/**
 * The notebook's unguessable id (URL-safe, at least 128 random bits).
 */
id: string, 
/**
 * The notebook's title.
 */
title: string, 
/**
 * The caller's role on it.
 */
role: Role, 
/**
 * When the notebook's content or title last changed, RFC 3339 in UTC.
 */
updated_at?: string, 
/**
 * When the notebook was created, RFC 3339 in UTC.
 */
created_at?: string, 
/**
 * Its owner (in `GET /api/notebooks`).
 */
owner?: Person, 
/**
 * The last signed-in person who changed its content or title (in `GET /api/notebooks`,
 * once someone has).
 */
last_editor?: Person, 
/**
 * When the caller last opened it, RFC 3339 in UTC (in `GET /api/notebooks`, once they
 * have).
 */
last_opened_at?: string, };

export type UpdateNotebook = { 
/**
 * The new title.
 */
title: string, };

export type GeneralAccess = "restricted" | "anyone_with_link";

export type Grant = { 
/**
 * The person's email address (compared case-insensitively).
 */
email: string, 
/**
 * Their role: viewer, commenter or editor (ownership moves by transfer, not by grant).
 */
role: Role, };

export type Sharing = { 
/**
 * Restricted, or anyone with the link.
 */
general_access: GeneralAccess, 
/**
 * The role of someone who opens the link without a grant (viewer, commenter or editor).
 */
link_role: Role, 
/**
 * The people the notebook is shared with.
 */
grants: Array<Grant>, 
/**
 * The owner's email address.
 */
owner?: string, 
/**
 * "Editors may run code in my runtime": whether editors may run, interrupt and restart
 * code in a kernel someone else started (its holder, see
 * [`runtime::RuntimeAccess`]). GET always answers it (`true` unless the owner turned it
 * off); a PUT without it keeps the current setting.
 */
editors_may_run?: boolean, };

export type TransferOwnership = { 
/**
 * The new owner's email address.
 */
email: string, };

export type ErrorDetail = { 
/**
 * A stable snake_case code for programs, such as `not_found` or `invalid_ipynb`.
 */
code: string, 
/**
 * A sentence for humans.
 */
message: string, };

export type ErrorBody = { 
/**
 * What went wrong.
 */
error: ErrorDetail, };

export type Queued = { 
/**
 * The cells now queued, in run order.
 */
queued: Array<string>, };

export type CompleteRequest = { 
/**
 * The cell's code (as the caller's editor holds it).
 */
code: string, 
/**
 * The caret, in UTF-16 code units (CodeMirror's and Yjs's unit), at most the code's
 * length.
 */
cursor: number, };

export type Completion = { 
/**
 * The text that replaces `cursor_start..cursor_end`.
 */
text: string, 
/**
 * Jedi's kind: `module`, `function`, `class`, `instance`, `keyword`, `path`, `param`,
 * `statement`, `magic`, … (empty when unknown).
 */
type: string, 
/**
 * A function's signature, such as `(path)`, when known (else empty).
 */
signature: string, };

export type Completions = { 
/**
 * The completions, best first (at most 500).
 */
matches: Array<Completion>, 
/**
 * Start of the text the matches replace (UTF-16 code units).
 */
cursor_start: number, 
/**
 * End of the text the matches replace (UTF-16 code units).
 */
cursor_end: number, };

export type Inspection = { 
/**
 * Whether there is an object at the caret that the kernel knows.
 */
found: boolean, 
/**
 * IPython's description, plain text: `Signature: …`, `Docstring: …`, `Type: …`.
 */
text: string, };

export type InputAnswer = { 
/**
 * The line, without its newline.
 */
value: string, };

export type ClearOutputs = { 
/**
 * The code cells to clear; absent (or null) clears every code cell.
 */
cell_ids?: Array<string>, };

export type ClearedOutputs = { 
/**
 * Ids of the code cells whose outputs were cleared.
 */
cleared: Array<string>, };

export type RuntimeType = { 
/**
 * `"cpu"` or `"gpu"`.
 */
type: string, };

export type CommentAuthor = { 
/**
 * The user's id.
 */
id: string, 
/**
 * The user's display name.
 */
name: string, 
/**
 * The user's email address, shown only to editors and the owner (who see the sharing
 * list anyway); left out for viewers and commenters, signed in or not, so a link shared
 * with anyone does not hand out every commenter's address.
 */
email?: string, };

export type Comment = { 
/**
 * The comment's id.
 */
id: string, 
/**
 * Who wrote it.
 */
author: CommentAuthor, 
/**
 * Its text.
 */
text: string, 
/**
 * When it was written, RFC 3339 in UTC.
 */
created_at: string, };

export type Thread = { 
/**
 * The thread's id.
 */
id: string, 
/**
 * The cell it is about.
 */
cell_id: string, 
/**
 * Where its range starts now, in UTF-16 code units; `null` for a thread on the whole
 * cell, on a deleted cell, or whose text could not be found again.
 */
from: number | null, 
/**
 * Where its range ends now (exclusive); `null` when `from` is.
 */
to: number | null, 
/**
 * The text of the range now; `null` when `from` is.
 */
quote: string | null, 
/**
 * The text of the range when the thread was opened; `null` for a thread on the whole
 * cell.
 */
original_quote: string | null, 
/**
 * The cell is no longer in the notebook.
 */
orphaned: boolean, 
/**
 * Whether the thread is resolved.
 */
resolved: boolean, 
/**
 * When it was resolved, RFC 3339 in UTC.
 */
resolved_at?: string, 
/**
 * Who resolved it.
 */
resolved_by?: CommentAuthor, 
/**
 * When it was opened, RFC 3339 in UTC.
 */
created_at: string, 
/**
 * Who opened it.
 */
author: CommentAuthor, 
/**
 * Its comments in order; the first is the opening text.
 */
comments: Array<Comment>, };
