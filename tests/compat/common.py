"""Shared helpers for the Tern client-compatibility scripts in tests/compat.

Standard library only: each script imports its own third-party client.
The scripts are run as `<venv python> tests/compat/<script>.py --bootstrap HOST:PORT`;
the script's directory is on sys.path, so `import common` works.
"""

import argparse
import os
import sys
import threading
import time
import traceback
import uuid


class CheckFailed(Exception):
    """A compatibility check failed; the message says what and where."""


def fail(msg):
    raise CheckFailed(msg)


def check(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def check_eq(actual, expected, what):
    if actual != expected:
        raise CheckFailed(f"{what}: expected {short(expected)}, got {short(actual)}")


def short(v, limit=200):
    """repr() cut to a readable length (values can be 100 KB)."""
    r = repr(v)
    if len(r) > limit:
        extra = f" ...(len {len(v)})" if isinstance(v, (bytes, str, list, tuple)) else " ..."
        r = r[:limit] + extra
    return r


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def parse_args(description, extra=None):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--bootstrap", required=True, help="broker address HOST:PORT")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="deadline in seconds for each wait/consume loop (default 120)")
    p.add_argument("--watchdog", type=float, default=600.0,
                   help="hard limit in seconds for the whole script (default 600)")
    if extra:
        extra(p)
    return p.parse_args()


def sasl_ssl_args(p):
    """Arguments of the SASL_SSL scripts; passwords come from the environment."""
    p.add_argument("--ca", required=True, help="PEM file of the CA that signed the broker")
    p.add_argument("--user", required=True)
    p.add_argument("--mechanism", default="SCRAM-SHA-512")


class Deadline:
    """A deadline for one loop; .check(what) fails clearly once it has passed."""

    def __init__(self, seconds, what):
        self.seconds = seconds
        self.what = what
        self.end = time.monotonic() + seconds

    def remaining(self):
        return self.end - time.monotonic()

    def expired(self):
        return time.monotonic() >= self.end

    def check(self, detail=""):
        if self.expired():
            fail(f"deadline of {self.seconds:.0f}s passed while {self.what}"
                 + (f": {detail}" if detail else ""))


def start_watchdog(name, seconds):
    """Kill the whole process if it runs longer than `seconds` (a client call
    that blocks forever must not hang the Rust test)."""

    def fire():
        sys.stdout.flush()
        sys.stderr.write(f"{name}: FAILED: watchdog: script still running after "
                         f"{seconds:.0f}s, aborting\n")
        sys.stderr.flush()
        os._exit(1)

    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()
    return t


def run_main(name, body, args):
    """Run body(args) -> summary string; print the final line and exit 0/1."""
    start_watchdog(name, args.watchdog)
    t0 = time.monotonic()
    try:
        summary = body(args)
    except CheckFailed as e:
        print(f"{name}: FAILED: {e}", flush=True)
        os._exit(1)
    except BaseException:  # noqa: BLE001 - any crash is a failure with a traceback
        traceback.print_exc()
        print(f"{name}: FAILED: unexpected exception (traceback above)", flush=True)
        os._exit(1)
    print(f"{name}: OK ({summary}) in {time.monotonic() - t0:.1f}s", flush=True)
    # os._exit: do not let a client's background threads delay or hang exit.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def log(msg):
    print(msg, flush=True)


def first_offset_at_or_after(records, ts):
    """records: iterable of (offset, timestamp). Smallest offset whose timestamp
    is >= ts, or None. This is what ListOffsets-by-timestamp must return."""
    best = None
    for off, t in records:
        if t >= ts and (best is None or off < best):
            best = off
    return best
