"""kafka-python compatibility checks against a running Tern broker.

Run: <venv python> tests/compat/kafka_python_basic.py --bootstrap 127.0.0.1:PORT

KafkaAdminClient creates a 2-partition topic (and fails to create it twice);
KafkaProducer sends records with keys/values/headers and explicit timestamps
(ts = base + i*1000), acks='all', the first half gzip-compressed and the second
half uncompressed; a KafkaConsumer with group_id=None, assigned to both
partitions, reads everything back and compares it; offsets_for_times,
beginning_offsets, end_offsets and seeking into the middle of a compressed
batch are checked; the topic is deleted at the end.

Exit 0 only when every check passed.
"""

import random
import time

import kafka
import kafka.errors as Errors
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

import common
from common import Deadline, check, check_eq, fail, log, short

NAME = "kafka_python_basic"
NODE_ID = 1
PARTITIONS = 2
CREATE_TIME = 0  # kafka-python ConsumerRecord.timestamp_type for CreateTime
FIELDS = ["offset", "key", "value", "headers", "timestamp_type", "timestamp"]

# Extra keyword arguments for every client (tests of this script may pin api_version).
CLIENT_KW = {}


def make_records(n, seed):
    """n records: (key, value, headers); kafka-python needs a key or a value and
    header values must be bytes."""
    rng = random.Random(seed)
    recs = []
    for i in range(n):
        if i % 9 == 0:
            k = None
        elif i % 13 == 4:
            k = b""
        elif i % 5 == 1:
            k = rng.randbytes(rng.randrange(1, 16))
        else:
            k = b"kp-key-%d" % (i % 50)
        if i % 10 == 3 and k is not None:
            v = None
        elif i % 17 == 5:
            v = b""
        elif i % 500 == 250:
            v = rng.randbytes(2048) + b"kafka-python " * 4000  # ~54 KB
        elif i % 3 == 0:
            v = rng.randbytes(rng.randrange(1, 200))
        else:
            v = b"kp-value-%d " % i + b"abc" * rng.randrange(0, 50)
        m = i % 4
        if m == 0:
            h = []
        elif m == 1:
            h = [("h", b"v%d" % i)]
        elif m == 2:
            h = [("dup", b"1"), ("x", b""), ("dup", b"2"), ("dup", b"3")]
        else:
            h = [("unicod\u00e9-\u03ba", "\u2603".encode()), ("bin", rng.randbytes(12))]
        recs.append((k, v, h))
    return recs


def create_topic(admin, topic, args):
    res = admin.create_topics({topic: {"num_partitions": PARTITIONS, "replication_factor": 1}},
                              timeout_ms=10000)
    errs = [(t.get("name"), t.get("error_code")) for t in res.get("topics", [])]
    check_eq(errs, [(topic, 0)], "create_topics: per-topic (name, error_code)")
    try:
        admin.wait_for_topics([topic], timeout_ms=int(args.timeout * 1000))
    except Errors.KafkaTimeoutError as e:
        fail(f"wait_for_topics({topic!r}): topic not ready with a leader for every partition: {e}")
    desc = admin.describe_topics([topic])
    check_eq(len(desc), 1, "describe_topics: number of topics")
    d = desc[0]
    check_eq((d.get("name"), d.get("error_code")), (topic, 0), "describe_topics: (name, error_code)")
    parts = sorted(d["partitions"], key=lambda p: p["partition_index"])
    check_eq([p["partition_index"] for p in parts], list(range(PARTITIONS)), "describe_topics: partitions")
    for p in parts:
        check_eq((p["error_code"], p["leader_id"], list(p["replica_nodes"]), list(p["isr_nodes"])),
                 (0, NODE_ID, [NODE_ID], [NODE_ID]),
                 f"describe_topics: partition {p['partition_index']} (error, leader, replicas, isr)")
    check(topic in admin.list_topics(), f"list_topics does not include {topic!r}")
    log(f"  create_topics {topic!r} with {PARTITIONS} partitions: ok (described, listed, leader {NODE_ID})")

    try:
        admin.create_topics({topic: {"num_partitions": PARTITIONS, "replication_factor": 1}},
                            timeout_ms=10000)
    except Errors.TopicAlreadyExistsError as e:
        log(f"  create_topics of existing topic: {type(e).__name__}")
    except Errors.KafkaError as e:
        fail(f"create_topics of existing topic: expected TopicAlreadyExistsError, got {e!r}")
    else:
        fail("create_topics of existing topic succeeded, expected TopicAlreadyExistsError")


def produce_half(args, topic, recs, lo, hi, ts_base, compression):
    # kafka-python 3.x defaults to the idempotent producer (KIP-679), which needs
    # InitProducerId; --idempotent keeps that default, otherwise it is switched off.
    idem = {} if args.idempotent else {"enable_idempotence": False}
    # Sends give up (with an error on their future) before the flush deadline passes.
    delivery_ms = int(args.timeout * 1000 * 0.75)
    p = KafkaProducer(acks="all", compression_type=compression, linger_ms=5,
                      bootstrap_servers=args.bootstrap,
                      delivery_timeout_ms=delivery_ms,
                      request_timeout_ms=min(30000, delivery_ms // 2),
                      **idem, **CLIENT_KW)
    try:
        futs = []
        for i in range(lo, hi):
            k, v, h = recs[i]
            futs.append((i, p.send(topic, value=v, key=k, headers=h, partition=i % PARTITIONS,
                                   timestamp_ms=ts_base + i * 1000)))
        try:
            p.flush(timeout=args.timeout)
        except Errors.KafkaTimeoutError:
            done = [(i, f) for i, f in futs if f.is_done]
            failed = [(i, f) for i, f in done if f.failed()]
            detail = (f"; first failure: record {failed[0][0]}: {failed[0][1].exception!r}"
                      if failed else "")
            fail(f"{compression or 'uncompressed'} half: flush did not complete within "
                 f"{args.timeout:.0f}s: {len(futs) - len(done)} of {len(futs)} sends still "
                 f"unacknowledged, {len(failed)} failed{detail}")
        meta = {}
        for i, f in futs:
            try:
                md = f.get(timeout=max(1.0, args.timeout))
            except Errors.KafkaError as e:
                fail(f"send of record {i} ({compression}) failed: {e!r}")
            check_eq((md.topic, md.partition), (topic, i % PARTITIONS), f"record {i}: metadata topic/partition")
            # ProduceResponse.log_append_time must be -1 for CreateTime topics, so the
            # client reports the record's own timestamp.
            check_eq(md.timestamp, ts_base + i * 1000, f"record {i}: RecordMetadata.timestamp")
            meta[i] = md.offset
        return meta
    finally:
        p.close(timeout=10)


def consume_all(args, consumer, topic, ends):
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    for tp in tps:
        consumer.seek(tp, 0)
    got = {p: [] for p in range(PARTITIONS)}
    dl = Deadline(args.timeout, "consuming")
    while any(len(got[p]) < ends[p] for p in range(PARTITIONS)):
        dl.check(", ".join(f"p{p}={len(got[p])}/{ends[p]}" for p in range(PARTITIONS)))
        batch = consumer.poll(timeout_ms=500, max_records=2000)
        for tp, records in batch.items():
            check(tp.topic == topic and tp.partition in got, f"records from unassigned {tp}")
            lst = got[tp.partition]
            for r in records:
                if r.offset != len(lst):
                    fail(f"partition {tp.partition}: fetched offset {r.offset}, expected {len(lst)} "
                         f"({'duplicate/rewind' if r.offset < len(lst) else 'gap'})")
                if r.offset >= ends[tp.partition]:
                    fail(f"partition {tp.partition}: fetched offset {r.offset} at/after end offset "
                         f"{ends[tp.partition]}")
                lst.append((r.offset, r.key, r.value, list(r.headers), r.timestamp_type, r.timestamp))
    for tp in tps:
        check_eq(consumer.position(tp), ends[tp.partition], f"position({tp}) after consuming")
    return got


def body(args):
    if args.verbose:
        import logging
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log(f"{NAME}: kafka-python {kafka.__version__}, broker {args.bootstrap}, "
        f"producer {'idempotent (default)' if args.idempotent else 'enable_idempotence=False'}")
    topic = common.unique("compat-kafka-python")
    n = args.records
    half = n // 2
    recs = make_records(n, seed=4242)
    ts_base = (int(time.time() * 1000) // 1000) * 1000 - 3 * 3600 * 1000 - n * 1000

    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, client_id="tern-compat-admin",
                             request_timeout_ms=30000, **CLIENT_KW)
    try:
        create_topic(admin, topic, args)

        t0 = time.monotonic()
        offsets = produce_half(args, topic, recs, 0, half, ts_base, "gzip")
        offsets.update(produce_half(args, topic, recs, half, n, ts_base, None))
        log(f"  produced {n} records ({half} gzip, {n - half} uncompressed), acks=all, "
            f"in {time.monotonic() - t0:.1f}s")

        # Expected content per partition in offset order; offsets must be 0..count-1.
        by_part = {p: [] for p in range(PARTITIONS)}
        for i, off in offsets.items():
            by_part[i % PARTITIONS].append((off, i))
        for p, lst in by_part.items():
            lst.sort()
            offs = [o for o, _ in lst]
            check_eq(offs, list(range(len(lst))), f"partition {p}: produced offsets")
        ends = {p: len(by_part[p]) for p in range(PARTITIONS)}

        consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, group_id=None,
                                 enable_auto_commit=False, auto_offset_reset="earliest",
                                 check_crcs=True, request_timeout_ms=30000, **CLIENT_KW)
        try:
            tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            consumer.assign(tps)
            check_eq(consumer.beginning_offsets(tps, timeout_ms=10000), {tp: 0 for tp in tps},
                     "beginning_offsets")
            check_eq(consumer.end_offsets(tps, timeout_ms=10000),
                     {tp: ends[tp.partition] for tp in tps}, "end_offsets")
            log(f"  beginning_offsets all 0, end_offsets {[ends[p] for p in range(PARTITIONS)]}: ok")

            t0 = time.monotonic()
            got = consume_all(args, consumer, topic, ends)
            for p in range(PARTITIONS):
                for (off, i), g in zip(by_part[p], got[p]):
                    k, v, h = recs[i]
                    e = (off, k, v, h, CREATE_TIME, ts_base + i * 1000)
                    if g != e:
                        for name, ev, gv in zip(FIELDS, e, g):
                            if ev != gv:
                                fail(f"partition {p} offset {off} (record #{i}, "
                                     f"{'gzip' if i < half else 'uncompressed'}): {name} differs\n"
                                     f"    expected: {short(ev, 400)}\n"
                                     f"    got:      {short(gv, 400)}")
            log(f"  consumed {sum(len(g) for g in got.values())} records with assign() and "
                f"group_id=None in {time.monotonic() - t0:.1f}s: identical (keys, values, "
                f"headers, CreateTime timestamps)")

            # Seek into the middle of the gzip half: the broker returns whole batches,
            # the client must skip to the requested offset.
            tp0 = tps[0]
            mid = max(1, ends[0] // 4)
            consumer.seek(tp0, mid)
            consumer.pause(tps[1])
            first = None
            dl = Deadline(args.timeout, f"fetching from offset {mid} after seek")
            while first is None:
                dl.check()
                batch = consumer.poll(timeout_ms=500, max_records=10)
                if batch.get(tp0):
                    first = batch[tp0][0]
            consumer.resume(tps[1])
            check_eq(first.offset, mid, f"first offset fetched after seek({tp0.partition}, {mid})")
            i = by_part[0][mid][1]
            check_eq(first.value, recs[i][1], f"value at offset {mid} after seek")
            log(f"  seek to offset {mid} (inside a gzip batch): first record fetched is offset {mid}: ok")

            # offsets_for_times: the first offset with timestamp >= probe, per partition.
            probes = 0
            for p in range(PARTITIONS):
                tp = tps[p]
                recs_p = [(off, ts_base + i * 1000) for off, i in by_part[p]]
                tss = [t for _, t in recs_p]
                m = len(tss) // 2
                second_half = [t for off, t in recs_p if (t - ts_base) // 1000 >= half]
                cases = [
                    ("before the first", tss[0] - 5000),
                    ("equal to the first", tss[0]),
                    ("equal to a middle record", tss[m]),
                    ("between two records", tss[m] + 500),
                    ("1 ms before the first uncompressed", second_half[0] - 1),
                    ("equal to the last", tss[-1]),
                    ("after the last", tss[-1] + 1),
                ]
                for what, ts in cases:
                    res = consumer.offsets_for_times({tp: ts}, timeout_ms=10000)
                    check(tp in res, f"offsets_for_times({tp}, {ts}): partition missing in {res}")
                    exp_off = common.first_offset_at_or_after(recs_p, ts)
                    r = res[tp]
                    if exp_off is None:
                        check(r is None, f"offsets_for_times p{p} {what} (ts={ts}): expected None, got {r}")
                    else:
                        check(r is not None,
                              f"offsets_for_times p{p} {what} (ts={ts}): expected offset {exp_off}, got None")
                        check_eq((r.offset, r.timestamp), (exp_off, dict(recs_p)[exp_off]),
                                 f"offsets_for_times p{p} {what} (ts={ts}): (offset, timestamp)")
                    probes += 1
            log(f"  offsets_for_times: {probes} probes (before first, exact, between, "
                f"after last -> None): ok")
        finally:
            consumer.close()

        res = admin.delete_topics([topic], timeout_ms=10000)
        log(f"  delete_topics {topic!r}: {short(res, 160)}")
        dl = Deadline(args.timeout, f"waiting for {topic!r} to disappear after delete_topics")
        while topic in admin.list_topics():
            dl.check()
            time.sleep(0.1)
        log(f"  {topic!r} no longer listed")
    finally:
        admin.close()
    return f"{n} records"


def extra_args(p):
    p.add_argument("--records", type=int, default=4000, help="records in total (default 4000)")
    p.add_argument("--verbose", action="store_true", help="kafka-python DEBUG logging to stderr")
    p.add_argument("--idempotent", action="store_true",
                   help="keep kafka-python's default idempotent producer (needs InitProducerId)")


if __name__ == "__main__":
    common.run_main(NAME, body, common.parse_args(__doc__.splitlines()[0], extra_args))
