// The notebook page's rarely used panels, each fetched (its own chunk) the first time it is
// opened: version history and the share dialog. Same signatures as the modules they load.

import type { Role } from "../api";
import { toast } from "../dom";

/** Opens the version history (./history). */
export async function openHistory(notebookId: string, role: Role): Promise<void> {
  const history = await load(() => import("./history"), "version history");
  history?.openHistory(notebookId, role);
}

/** Opens the share dialog (./share). */
export async function openShareDialog(notebookId: string, title: string, role: Role): Promise<void> {
  const share = await load(() => import("./share"), "share dialog");
  await share?.openShareDialog(notebookId, title, role);
}

async function load<T>(fetchModule: () => Promise<T>, what: string): Promise<T | null> {
  try {
    return await fetchModule();
  } catch (error) {
    toast(`Could not load the ${what}: ${(error as Error).message}`);
    return null;
  }
}
