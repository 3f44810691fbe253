// "Make a copy": a new notebook owned by the person asking, with the cells (and outputs) of
// one they can open, titled "Copy of …" (POST /api/notebooks/{id}/copy). A viewer who opened
// a notebook by its link can so fork it and run their own copy.

import { ApiError, NotebookInfo, request, signInUrl } from "./api";
import { toast } from "./dom";

/** Copies the notebook; the copy's listing. Throws the API's error (401 signed out). */
export function copyNotebook(notebookId: string): Promise<NotebookInfo> {
  return request<NotebookInfo>("POST", `/api/notebooks/${encodeURIComponent(notebookId)}/copy`);
}

/** The notebook page's action: copies the notebook and opens the copy; someone signed out
 * is sent to sign in first (and comes back here). */
export async function makeCopy(notebookId: string): Promise<void> {
  try {
    const copy = await copyNotebook(notebookId);
    location.href = `/n/${encodeURIComponent(copy.id)}`;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      location.href = signInUrl();
      return;
    }
    toast(`Could not make a copy: ${(error as Error).message}`);
  }
}
