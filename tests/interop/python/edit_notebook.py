"""A stock Python Yjs client for Tandem's interop test.

pycrdt's `Doc` + jupyter_ydoc's `YNotebook`, synced by pycrdt's stock y-websocket `Provider`
over the `HttpxWebsocket` channel of pycrdt-websocket (httpx-ws underneath), which is how
Jupyter's Python side connects to a y-websocket room. No Tandem code.

Usage:
    python edit_notebook.py <plan.json>

The plan and the script are the same as for the Node twin
(tests/interop/node/edit_notebook.mjs): announce, wait for the peer, insert `<name>-md` and
`<name>-code`, type `typed` one character per transaction into the shared cell and into its
own cell, delete `delete_cells`, set metadata, mark done, wait for the peer to be done, and
print `YNotebook.get()` as one JSON line on stdout. Progress goes to stderr.
"""

from __future__ import annotations

import json
import random
import sys
import time
from typing import Any, Callable

import anyio
from httpx_ws import aconnect_ws
from jupyter_ydoc import YNotebook
from pycrdt import Doc, Map, Provider, Text
from pycrdt.websocket.websocket import HttpxWebsocket

TIMEOUT_S = 60.0


def log(plan: dict[str, Any], *args: object) -> None:
    print(f"[{plan['name']}]", *args, file=sys.stderr, flush=True)


def cell_index(nb: YNotebook, cell_id: str) -> int:
    for index, ycell in enumerate(nb.ycells):
        if ycell.get("id") == cell_id:
            return index
    return -1


def notebook_metadata(doc: Doc) -> Map:
    return doc.get("meta", type=Map)["metadata"]


def summary(nb: YNotebook) -> str:
    """The notebook's shape, not its content: enough to see what arrived, short enough to log."""
    content = nb.get()
    cells = [f"{cell.get('id')}({len(cell.get('source', ''))})" for cell in content["cells"]]
    interop = {k: v for k, v in content["metadata"].items() if k.startswith("interop_")}
    return f"cells {cells}; interop metadata {json.dumps(interop)[:500]}"


async def wait_for(nb: YNotebook, what: str, predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}; notebook: {summary(nb)}")
        await anyio.sleep(0.02)


async def run(plan: dict[str, Any]) -> dict[str, Any]:
    rng = random.Random(plan["seed"])
    doc = Doc()
    nb = YNotebook(doc)
    # y-websocket's URL scheme: <server url>/<room>?<params>.
    url = f"{plan['ws_url']}/{plan['notebook_id']}?token={plan['token']}"
    log(plan, "connecting to", plan["ws_url"], plan["notebook_id"])
    async with aconnect_ws(url) as websocket:
        channel = HttpxWebsocket(websocket, plan["notebook_id"])
        async with Provider(doc, channel) as provider:
            with anyio.fail_after(TIMEOUT_S):
                await provider.synced.wait()
            log(plan, f"synced: {nb.cell_number} cells")
            if cell_index(nb, plan["shared_cell"]) < 0:
                raise RuntimeError(f"shared cell {plan['shared_cell']} is not in the notebook")

            meta = notebook_metadata(doc)
            peer_key = f"interop_{plan['peer']}"

            def peer_state() -> str | None:
                value = meta.get(peer_key)
                return value.get("state") if isinstance(value, dict) else None

            meta[f"interop_{plan['name']}"] = {"state": "ready"}
            await wait_for(nb, "peer ready", lambda: peer_state() is not None)
            log(plan, "peer is here; editing")

            nb.ycells.insert(
                cell_index(nb, plan["shared_cell"]),
                nb.create_ycell(
                    {
                        "id": f"{plan['name']}-md",
                        "cell_type": "markdown",
                        "source": f"# Written by {plan['name']}\n",
                        "metadata": {},
                    }
                ),
            )
            nb.append_cell(
                {
                    "id": f"{plan['name']}-code",
                    "cell_type": "code",
                    "source": "",
                    "metadata": {},
                    "outputs": [],
                    "execution_count": None,
                }
            )

            # Python strings iterate by code point, as a typist types.
            for ch in plan["typed"]:
                for cell_id in (plan["shared_cell"], f"{plan['name']}-code"):
                    source: Text = nb.ycells[cell_index(nb, cell_id)]["source"]
                    source.insert(len(source), ch)
                if rng.random() < 0.5:
                    await anyio.sleep(rng.randrange(6) / 1000)

            for cell_id in plan["delete_cells"]:
                index = cell_index(nb, cell_id)
                if index >= 0:
                    del nb.ycells[index]

            shared_meta: Map = nb.ycells[cell_index(nb, plan["shared_cell"])]["metadata"]
            shared_meta[f"interop_{plan['name']}"] = {"typed_chars": len(plan["typed"])}
            shared_meta["interop_last_writer"] = plan["name"]
            meta["interop_last_writer"] = plan["name"]

            meta[f"interop_{plan['name']}"] = {"state": "done", "typed": plan["typed"]}
            await wait_for(nb, "peer done", lambda: peer_state() == "done")
            log(plan, "peer is done")
            # Leaving the provider's context flushes what is still queued for sending.
            return nb.get()


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        plan = json.load(f)
    try:
        result = anyio.run(run, plan)
    except BaseException as error:  # noqa: BLE001 - report anything, then fail
        # anyio wraps failures in exception groups; the leaves are what matters.
        while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
            error = error.exceptions[0]
        log(plan, "failed:", repr(error))
        sys.exit(1)
    print(json.dumps(result, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
