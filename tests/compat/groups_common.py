"""The consumer-group scenario shared by the confluent-kafka and kafka-python scripts.

Three consumers of one group read a 6-partition topic with manual commits: they must split
the partitions 2/2/2 (disjoint, full cover); then one leaves without committing its last
records, and the other two must take its partitions over (3/3). Records are produced in three
waves (before the consumers start, before the leave, after it), so every phase has data to
hand over whatever the timing of the joins. Every record produced must be delivered with its
exact content, and a record may be delivered twice only where a commit had not happened:
every assignment of a partition must start exactly at the partition's last committed offset
and continue without gaps.

Each consumer runs in a thread of its own that keeps polling, as applications do: a client
whose poll() is not called cannot take part in a rebalance, and kafka-python 3.0 sends a
fresh JoinGroup when a join completed between two polls (a rejoining leader makes any Kafka
coordinator rebalance again).

Each script supplies produce(records) for [(partition, key, value)], returning
{(partition, offset): (key, value)} from the delivery reports, and a client adapter with:
name, poll(timeout) -> [(partition, offset, key, value)], commit_on_revoke (a flag its revocation callback honours). The adapter calls ledger.assigned
/ ledger.revoked from its rebalance callbacks; commit(c) commits ledger.processed_offsets(c.name)
synchronously and reports it with ledger.commit_done. Consumers commit every `commit_every`
deliveries; one that does not commit on revocation must commit after every batch
(commit_every=1), or its uncommitted records would be re-delivered after an eager rebalance.
"""

import functools
import threading
import time
import traceback

from common import Deadline, check, check_eq, fail, log, short

PARTITIONS = 6


def records(first, n):
    """Records first..first+n-1 spread round-robin over the partitions: [(partition, key, value)]."""
    return [(i % PARTITIONS, b"key-%d" % i, b"record-%d:" % i + b"x" * (i % 37)) for i in range(first, first + n)]


def locked(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self.lock:
            return method(self, *args, **kwargs)
    return wrapper


class Ledger:
    """Deliveries, commits and assignment sessions of every consumer of the group."""

    def __init__(self):
        self.lock = threading.RLock()
        self.expected = {}
        self.committed = {}        # partition -> next offset, after successful commits
        self.processed = {}        # consumer -> {partition: next offset processed}
        self.since_commit = {}     # consumer -> deliveries since its last commit
        self.session_next = {}     # (consumer, partition) -> offset the next delivery must have
        self.deliveries = 0
        self.seen = {}             # (partition, offset) -> times delivered
        self.redelivered = []      # (partition, offset) delivered again

    @locked
    def assigned(self, consumer, partitions):
        """A new assignment session: each partition must resume at its committed offset."""
        for p in partitions:
            self.session_next[(consumer, p)] = None

    @locked
    def revoked(self, consumer, partitions):
        for p in partitions:
            self.session_next.pop((consumer, p), None)
            self.processed.get(consumer, {}).pop(p, None)

    @locked
    def deliver(self, consumer, p, o, key, value):
        want = self.expected.get((p, o))
        if want is None:
            fail(f"{consumer}: delivered partition {p} offset {o}, which was never produced")
        if (key, value) != want:
            fail(f"{consumer}: partition {p} offset {o}: expected {short(want)}, got {short((key, value))}")
        k = (consumer, p)
        if k not in self.session_next:
            fail(f"{consumer}: delivered partition {p} offset {o} without owning the partition")
        expect = self.session_next[k]
        if expect is None:
            start = self.committed.get(p, 0)
            if o != start:
                fail(f"{consumer}: first record of a new assignment of partition {p} is offset {o}, "
                     f"but the last commit was {start}")
        elif o != expect:
            fail(f"{consumer}: partition {p}: offset {o} follows {expect - 1} (gap or jump back)")
        self.session_next[k] = o + 1
        n = self.seen.get((p, o), 0)
        if n:
            self.redelivered.append((p, o))
        self.seen[(p, o)] = n + 1
        self.deliveries += 1
        self.processed.setdefault(consumer, {})[p] = o + 1
        self.since_commit[consumer] = self.since_commit.get(consumer, 0) + 1

    @locked
    def processed_offsets(self, consumer):
        return dict(self.processed.get(consumer, {}))

    @locked
    def commit_done(self, consumer, offsets):
        for p, o in offsets.items():
            self.committed[p] = max(self.committed.get(p, 0), o)
        self.since_commit[consumer] = 0

    @locked
    def uncommitted(self, consumer):
        return {p: o - self.committed.get(p, 0) for p, o in self.processed.get(consumer, {}).items()
                if o > self.committed.get(p, 0)}

    @locked
    def owned(self, consumer):
        """The consumer's partitions, as its rebalance callbacks reported them (asking a
        client for its assignment from another thread can block behind its poll)."""
        return {p for (c, p) in self.session_next if c == consumer}

    @locked
    def missing(self):
        return [k for k in self.expected if k not in self.seen]


class Worker(threading.Thread):
    """Polls one consumer until told to leave (close without committing) or to stop."""

    def __init__(self, client, ledger, commit, leave, close, commit_every):
        super().__init__(name=client.name, daemon=True)
        self.client, self.ledger = client, ledger
        self.commit, self.leave, self.close, self.commit_every = commit, leave, close, commit_every
        self.committing = True
        self.leave_now = False
        self.stop = False
        self.error = None
        self.tail, self.tail_records = {}, set()

    def run(self):
        try:
            while not (self.leave_now or self.stop):
                batch = self.client.poll(1.0)
                with self.ledger.lock:
                    for (p, o, key, value) in batch:
                        self.ledger.deliver(self.client.name, p, o, key, value)
                    if self.committing and self.ledger.since_commit.get(self.client.name, 0) >= self.commit_every:
                        self.commit(self.client)
            if self.leave_now:
                # What it processed but never committed, just before it goes (the revocation
                # on close forgets its partitions).
                with self.ledger.lock:
                    name, ledger = self.client.name, self.ledger
                    self.tail = ledger.uncommitted(name)
                    self.tail_records = {(p, o) for p, end in ledger.processed_offsets(name).items()
                                         for o in range(ledger.committed.get(p, 0), end)}
                self.leave(self.client)
            else:
                self.close(self.client)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            self.error = (e, traceback.format_exc())


def check_split(ledger, names, per_consumer, what):
    """Assignments are disjoint, cover every partition and give each consumer per_consumer."""
    seen = {}
    for name in names:
        for p in ledger.owned(name):
            if p in seen:
                return f"{what}: partition {p} assigned to both {seen[p]} and {name}"
            seen[p] = name
    if sorted(seen) != list(range(PARTITIONS)):
        return f"{what}: assigned partitions {sorted(seen)}, expected all of 0..{PARTITIONS - 1}"
    sizes = {name: len(ledger.owned(name)) for name in names}
    if any(n != per_consumer for n in sizes.values()):
        return f"{what}: partitions per consumer {sizes}, expected {per_consumer} each"
    return None


def wait(args, workers, what, condition):
    """Waits for condition() -> (done, detail), failing on a worker's error or the deadline."""
    dl = Deadline(args.timeout, what)
    while True:
        for w in workers:
            if w.error:
                e, tb = w.error
                log(tb)
                raise e
        done, detail = condition()
        if done:
            return
        dl.check(detail)
        time.sleep(0.05)


def produce_wave(ledger, produce, batch):
    """The topic is fresh and records go to explicit partitions in order, so their offsets are
    known before producing: the ledger expects them before consumers can see them, and the
    delivery reports must agree."""
    with ledger.lock:
        nxt = {}
        for (p, o) in ledger.expected:
            nxt[p] = max(nxt.get(p, 0), o + 1)
        plan = {}
        for p, key, value in batch:
            plan[(p, nxt.get(p, 0))] = (key, value)
            nxt[p] = nxt.get(p, 0) + 1
        ledger.expected.update(plan)
    check_eq(produce(batch), plan, "partitions and offsets in the delivery reports")


def run(args, ledger, produce, make_consumers, commit, leave, close, commit_every):
    """Drives the scenario; commit(c) commits c's processed offsets synchronously,
    leave(c) closes c without committing, close(c) closes it normally. Returns a summary."""
    wave = args.records // 3
    produce_wave(ledger, produce, records(0, wave))
    consumers = make_consumers()
    workers = [Worker(c, ledger, commit, leave, close, commit_every) for c in consumers]
    for w in workers:
        w.start()
    first, rest = workers[0], workers[1:]

    def split_and_delivered(ws, per):
        split = check_split(ledger, [w.name for w in ws], per, f"{len(ws)} consumers")
        missing = ledger.missing()
        return split is None and not missing, split or f"{len(missing)} of {len(ledger.expected)} not delivered yet"

    wait(args, workers, "waiting for three consumers to split the partitions 2/2/2",
         lambda: split_and_delivered(workers, 2))
    split3 = {w.name: sorted(ledger.owned(w.name)) for w in workers}

    # The leaver keeps processing but stops committing, then leaves.
    with ledger.lock:
        first.committing = False
        first.client.commit_on_revoke = False
    produce_wave(ledger, produce, records(wave, wave))
    wait(args, workers, f"waiting for {first.name} to process records it will not commit",
         lambda: (bool(ledger.uncommitted(first.name)), None))
    first.leave_now = True
    first.join(30)
    check(not first.is_alive(), f"{first.name} did not close within 30 s")
    if first.error:
        raise first.error[0]
    tail, tail_records = first.tail, first.tail_records
    log(f"  three consumers: {split3} (disjoint, full cover); {ledger.deliveries} delivered; "
        f"{first.name} left with {len(tail_records)} processed but uncommitted record(s) {tail}")

    produce_wave(ledger, produce, records(2 * wave, args.records - 2 * wave))
    n = len(ledger.expected)
    wait(args, rest, "waiting for the two remaining consumers to take over",
         lambda: split_and_delivered(rest, 3))
    split2 = {w.name: sorted(ledger.owned(w.name)) for w in rest}
    for w in rest:
        w.stop = True
    for w in rest:
        w.join(30)
        check(not w.is_alive(), f"{w.name} did not close within 30 s")
        if w.error:
            raise w.error[0]

    redelivered = sorted(ledger.redelivered)
    unexpected = [r for r in redelivered if r not in tail_records]
    check(not unexpected, f"record(s) delivered twice although committed: {unexpected[:10]}")
    check_eq(len(redelivered), len(tail_records), "re-delivered records (the leaver's uncommitted tail)")
    check_eq(len(ledger.seen), n, "distinct records delivered")
    log(f"  after the leave: {split2} (disjoint, full cover); all {n} records delivered with their "
        f"content; {len(redelivered)} re-delivered, all from the leaver's uncommitted tail "
        f"(every assignment resumed exactly at the last commit)")
    return (f"{n} records, split 2/2/2 then 3/3, {len(redelivered)} duplicate(s) from "
            f"{len(tail_records)} uncommitted")
