"""The ipykernel side of `tandem-bench --scenarios exec`.

A stock ipykernel started by jupyter_client's KernelManager and driven by a
BlockingKernelClient over ZMQ, with no collaboration layer in between. Prints one JSON
line on stdout (progress goes to stderr):

    {"cold_start_s": ..., "first_execute_ms": ..., "one_plus_one_ms": [...],
     "p50_ms": ..., "p99_ms": ..., "prints_s": ..., "versions": {...}}

- cold_start_s: from KernelManager.start_kernel() until wait_for_ready() has seen the
  kernel_info reply.
- first_execute_ms: the first `1+1` after that, request until its execute_result arrives.
- one_plus_one_ms: `--runs` more `1+1` requests, each timed from the request until its
  execute_result iopub message arrives (then drained to the idle status, untimed).
- prints_s: `for i in range(N): print(i)`, from the request until the last stream message
  holding the final number arrives; iopub is collected until the idle status and the whole
  stream is checked to be every line 0..N-1.

Run it from the bench's venv (target/bench-venv, made from requirements.txt beside this file):

    target/bench-venv/bin/python bench/python/ipykernel_bench.py --runs 100 --prints 100000
"""

import argparse
import json
import math
import sys
import time

import ipykernel
import jupyter_client
from jupyter_client.manager import KernelManager

# How long any single wait on the kernel may take before the run is abandoned.
TIMEOUT_S = 120.0


def log(message):
    print(f"  ipykernel: {message}", file=sys.stderr, flush=True)


def percentile(sorted_samples, p):
    """Nearest rank, as the Rust bench computes it."""
    if not sorted_samples:
        return 0.0
    rank = math.ceil(p / 100.0 * len(sorted_samples))
    return sorted_samples[min(max(rank, 1), len(sorted_samples)) - 1]


def iopub_for(client, msg_id):
    """Yields (arrival time, message) for the iopub messages answering `msg_id`."""
    deadline = time.perf_counter() + TIMEOUT_S
    while True:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            raise TimeoutError(f"no idle status for {msg_id} within {TIMEOUT_S} s")
        msg = client.get_iopub_msg(timeout=remaining)
        arrived = time.perf_counter()
        if msg["parent_header"].get("msg_id") == msg_id:
            yield arrived, msg


def is_idle(msg):
    return msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"


def one_plus_one(client):
    """Seconds from the request until the execute_result "2"; then drains to idle."""
    start = time.perf_counter()
    msg_id = client.execute("1+1", store_history=True)
    took = None
    for arrived, msg in iopub_for(client, msg_id):
        if msg["msg_type"] == "execute_result" and took is None:
            result = msg["content"]["data"].get("text/plain")
            if result != "2":
                raise RuntimeError(f"1+1 gave {result!r}")
            took = arrived - start
        elif msg["msg_type"] == "error":
            raise RuntimeError(f"1+1 failed: {msg['content']['ename']}")
        elif is_idle(msg):
            break
    client.get_shell_msg(timeout=TIMEOUT_S)
    if took is None:
        raise RuntimeError("1+1 went idle without an execute_result")
    return took


def prints(client, count):
    """Seconds from the request until the stream message holding the last number arrives."""
    last_line = f"{count - 1}\n"
    start = time.perf_counter()
    msg_id = client.execute(f"for i in range({count}): print(i)", store_history=True)
    chunks = []
    last_at = None
    messages = 0
    for arrived, msg in iopub_for(client, msg_id):
        if msg["msg_type"] == "stream":
            text = msg["content"]["text"]
            chunks.append(text)
            messages += 1
            if text.endswith(last_line):
                last_at = arrived
        elif msg["msg_type"] == "error":
            raise RuntimeError(f"the print loop failed: {msg['content']['ename']}")
        elif is_idle(msg):
            break
    client.get_shell_msg(timeout=TIMEOUT_S)
    text = "".join(chunks)
    expected = "".join(f"{i}\n" for i in range(count))
    if text != expected:
        raise RuntimeError(
            f"stream output differs from 0..{count - 1}: {len(text)} chars, "
            f"ends with {text[-20:]!r}"
        )
    if last_at is None:
        raise RuntimeError(f"no stream message ended with {last_line!r}")
    return last_at - start, messages


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100, help="timed 1+1 requests")
    parser.add_argument("--prints", type=int, default=100_000, help="lines the loop prints")
    args = parser.parse_args()

    log("starting a kernel (KernelManager, python3 kernelspec)")
    start = time.perf_counter()
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel()
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=TIMEOUT_S)
        cold_start = time.perf_counter() - start

        first = one_plus_one(client)
        log(f"ready in {cold_start:.3f} s; timing {args.runs} x 1+1")
        samples = [one_plus_one(client) * 1000.0 for _ in range(args.runs)]
        log(f"timing {args.prints} prints")
        prints_s, stream_messages = prints(client, args.prints)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)

    ordered = sorted(samples)
    print(
        json.dumps(
            {
                "cold_start_s": cold_start,
                "first_execute_ms": first * 1000.0,
                "one_plus_one_ms": samples,
                "p50_ms": percentile(ordered, 50),
                "p99_ms": percentile(ordered, 99),
                "prints_s": prints_s,
                "stream_messages": stream_messages,
                "versions": {
                    "python": sys.version.split()[0],
                    "ipykernel": ipykernel.__version__,
                    "jupyter_client": jupyter_client.__version__,
                },
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
