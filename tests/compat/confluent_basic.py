"""confluent-kafka (librdkafka) compatibility checks against a running Tern broker.

Run: <venv python> tests/compat/confluent_basic.py --bootstrap 127.0.0.1:PORT

1. Admin: create_topics (plain, validate_only, already-exists, invalid name),
   list_topics, delete_topics.
2. For each codec (none, gzip, snappy, lz4, zstd): produce 100,000 records with
   keys (some null, some empty), values (some null, some empty, text, binary,
   a few of 100 KB), headers (several, duplicate key, null value) and explicit
   distinct timestamps to a fresh 4-partition topic with acks=all; every
   delivery report is recorded. Everything is consumed back with manual
   assignment (no group coordination) from offset 0 up to the high watermark
   and compared byte for byte per partition, in offset order. Watermarks and
   offsets_for_times are checked too.

Exit 0 only when every check passed.
"""

import functools
import random
import time

import confluent_kafka
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
    TIMESTAMP_CREATE_TIME,
)
from confluent_kafka.admin import AdminClient, NewTopic

import common
from common import CheckFailed, Deadline, check, check_eq, fail, log, short

NAME = "confluent_basic"
NODE_ID = 1
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PARTITIONS = 4
FIELDS = ["offset", "key", "value", "headers", "timestamp (type, ms)"]


def debug_conf(args):
    """librdkafka debug contexts from --debug (e.g. protocol,msg,fetch), if any."""
    d = getattr(args, "debug", "")
    return {"debug": d} if d else {}


# ---------------------------------------------------------------- admin


def admin_result(fut, what, timeout):
    try:
        return fut.result(timeout=timeout)
    except KafkaException as e:
        fail(f"{what}: failed: {e.args[0]}")
    except Exception as e:  # concurrent.futures.TimeoutError and friends
        fail(f"{what}: no result within {timeout:.0f}s: {e!r}")


def expect_admin_error(fut, code, what, timeout):
    try:
        fut.result(timeout=timeout)
    except KafkaException as e:
        err = e.args[0]
        if err.code() != code:
            fail(f"{what}: expected error {KafkaError(code).name()} ({code}), "
                 f"got {err.name()} ({err.code()}): {err.str()}")
        return err
    except Exception as e:
        fail(f"{what}: no result within {timeout:.0f}s: {e!r}")
    fail(f"{what}: succeeded, expected error {KafkaError(code).name()} ({code})")


def topic_listing(admin, timeout):
    try:
        return admin.list_topics(timeout=timeout)
    except KafkaException as e:
        fail(f"list_topics failed: {e.args[0]}")


def check_topic_metadata(md, topic, partitions, what):
    tm = md.topics.get(topic)
    check(tm is not None, f"{what}: topic {topic!r} not in list_topics "
                          f"(topics: {sorted(md.topics)})")
    check(tm.error is None, f"{what}: topic {topic!r} has error {tm.error}")
    check_eq(sorted(tm.partitions), list(range(partitions)),
             f"{what}: partition ids of {topic!r}")
    for pid, pm in sorted(tm.partitions.items()):
        check(pm.error is None, f"{what}: {topic}[{pid}] has error {pm.error}")
        check_eq(pm.leader, NODE_ID, f"{what}: leader of {topic}[{pid}]")
        check_eq(list(pm.replicas), [NODE_ID], f"{what}: replicas of {topic}[{pid}]")
        check_eq(list(pm.isrs), [NODE_ID], f"{what}: isrs of {topic}[{pid}]")


def wait_topics_listed(admin, topics, partitions, dl):
    """Poll list_topics until every topic is listed with its partitions led by node 1."""
    attempts = 0
    while True:
        attempts += 1
        md = topic_listing(admin, 10)
        try:
            for t in topics:
                check_topic_metadata(md, t, partitions, "list_topics after create")
            return md, attempts
        except CheckFailed as e:
            if dl.expired():
                raise
            last = e
        time.sleep(0.1)
        dl.check(str(last))


def wait_topic_gone(admin, topic, dl):
    attempts = 0
    while True:
        attempts += 1
        md = topic_listing(admin, 10)
        if topic not in md.topics:
            return attempts
        dl.check(f"topic {topic!r} still listed after delete_topics")
        time.sleep(0.1)


def admin_checks(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap, **debug_conf(args)})
    topic = common.unique("compat-confluent-admin")
    vtopic = common.unique("compat-confluent-validate")
    rt = 30.0  # per admin call

    md = topic_listing(admin, 10)
    check(NODE_ID in md.brokers,
          f"list_topics: broker {NODE_ID} not among brokers {sorted(md.brokers)}")
    check_eq(len(md.brokers), 1, "list_topics: number of brokers")
    b = md.brokers[NODE_ID]
    # librdkafka's admin client sends CreateTopics/DeleteTopics to the controller.
    check_eq(md.controller_id, NODE_ID, "list_topics: controller id")
    log(f"  metadata: broker {b.id} at {b.host}:{b.port}, controller {md.controller_id}, "
        f"cluster id {md.cluster_id!r}")

    fs = admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)],
                             operation_timeout=10, request_timeout=rt)
    check_eq(sorted(fs), [topic], "create_topics: result keys")
    admin_result(fs[topic], f"create_topics({topic!r}, {PARTITIONS} partitions)", rt)
    _, attempts = wait_topics_listed(admin, [topic], PARTITIONS, Deadline(args.timeout, "waiting for the created topic"))
    log(f"  create_topics {topic!r}: ok; list_topics shows {PARTITIONS} partitions led by "
        f"node {NODE_ID} (after {attempts} listing(s))")

    fs = admin.create_topics([NewTopic(vtopic, num_partitions=PARTITIONS, replication_factor=1)],
                             validate_only=True, operation_timeout=10, request_timeout=rt)
    admin_result(fs[vtopic], f"create_topics({vtopic!r}, validate_only=True)", rt)
    time.sleep(0.2)
    md = topic_listing(admin, 10)
    check(vtopic not in md.topics,
          f"create_topics(validate_only=True) created topic {vtopic!r}: {md.topics.get(vtopic)}")
    log(f"  create_topics validate_only {vtopic!r}: ok, topic not created")

    fs = admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)],
                             operation_timeout=10, request_timeout=rt)
    err = expect_admin_error(fs[topic], KafkaError.TOPIC_ALREADY_EXISTS,
                             f"create_topics of existing topic {topic!r}", rt)
    log(f"  create_topics of existing topic: {err.name()} ({err.str()!r})")

    bad = "bad name!"
    fs = admin.create_topics([NewTopic(bad, num_partitions=1, replication_factor=1)],
                             operation_timeout=10, request_timeout=rt)
    # Kafka's INVALID_TOPIC_EXCEPTION (17) is librdkafka's TOPIC_EXCEPTION.
    err = expect_admin_error(fs[bad], KafkaError.TOPIC_EXCEPTION,
                             f"create_topics of invalid name {bad!r}", rt)
    md = topic_listing(admin, 10)
    check(bad not in md.topics, f"invalid topic {bad!r} is listed after a failed create")
    log(f"  create_topics of invalid name {bad!r}: {err.name()} ({err.str()!r})")

    fs = admin.delete_topics([topic], operation_timeout=10, request_timeout=rt)
    check_eq(sorted(fs), [topic], "delete_topics: result keys")
    admin_result(fs[topic], f"delete_topics({topic!r})", rt)
    attempts = wait_topic_gone(admin, topic, Deadline(args.timeout, "waiting for the deleted topic to disappear"))
    md = admin.list_topics(topic=topic, timeout=10)
    tm = md.topics.get(topic)
    if tm is not None:
        check(tm.error is not None and tm.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART,
              f"metadata for deleted topic {topic!r}: expected UNKNOWN_TOPIC_OR_PART, "
              f"got error={tm.error} partitions={len(tm.partitions)}")
    log(f"  delete_topics {topic!r}: ok, no longer listed (after {attempts} listing(s)); "
        f"metadata for it: {tm.error.name() if tm is not None else 'absent'}")
    return admin


# ---------------------------------------------------------------- data


class Dataset:
    """Deterministic records: keys, values, headers to produce and headers expected back."""

    def __init__(self, n, seed):
        rng = random.Random(seed)
        self.n = n
        self.keys = keys = []
        self.values = values = []
        self.hdrs = hdrs = []          # what is passed to produce()
        self.hdrs_exp = hdrs_exp = []  # what Message.headers() must return
        nbytes = 0
        words = [b"tern", b"kafka", b"replication", b"broker", b"segment", b"offset",
                 b"\x00\x01\x02", b"\xff\xfe", "\u00e9t\u00e9 \u2603".encode()]
        for i in range(n):
            # key: null / empty / binary / text
            if i % 7 == 0:
                k = None
            elif i % 101 == 5:
                k = b""
            elif i % 13 == 2:
                k = rng.randbytes(rng.randrange(1, 24))
            else:
                k = b"key-%d" % (i % 1000)
            # value: null / empty / large / binary / text
            if i % 11 == 0:
                v = None
            elif i % 53 == 1:
                v = b""
            elif i % 20000 == 7777:
                v = (rng.randbytes(4096) + b"tern " * 2000) * 8  # ~110 KB
            elif i % 3 == 0:
                v = rng.randbytes(rng.randrange(1, 300))
            else:
                v = b"value-%d:" % i + b" ".join(rng.choice(words) for _ in range(rng.randrange(1, 40)))
            # headers
            m = i % 5
            if m == 0:
                h = None
                he = None
            elif m == 1:
                h = [("h1", b"v-%d" % i)]
                he = h
            elif m == 2:
                h = [("trace-id", b"%016x" % rng.getrandbits(64)), ("dup", b"first"),
                     ("nullv", None), ("dup", b"second"), ("empty", b""), ("dup", b"third")]
                he = h
            elif m == 3:
                h = [("bin", rng.randbytes(rng.randrange(0, 32))),
                     ("unicod\u00e9-\u03ba", "snowman \u2603".encode())]
                he = h
            else:
                h = [("k%d" % j, b"x" * j) for j in range(rng.randrange(1, 6))]
                he = h
            keys.append(k)
            values.append(v)
            hdrs.append(h)
            hdrs_exp.append(he)
            nbytes += (len(k) if k else 0) + (len(v) if v else 0)
            if h:
                nbytes += sum(len(hk.encode()) + (len(hv) if hv else 0) for hk, hv in h)
        self.nbytes = nbytes


def produce_all(args, topic, codec, ds, ts_base):
    n = ds.n
    dr_part = [-1] * n
    dr_off = [-1] * n
    errors = []
    dups = []

    def on_dr(i, err, msg):
        if err is not None:
            errors.append((i, err))
            return
        if dr_off[i] != -1:
            dups.append(i)
        dr_part[i] = msg.partition()
        dr_off[i] = msg.offset()

    p = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": "all",
        "compression.type": codec,
        "linger.ms": 5,
        "batch.size": 1000000,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 1000000,
        "queue.buffering.max.kbytes": 1048576,
        # Shorter than the flush deadline, so a record that the broker keeps refusing
        # ends as a delivery error rather than as a flush timeout.
        "message.timeout.ms": int(args.timeout * 1000 * 0.75),
        "enable.idempotence": False,
        **debug_conf(args),
    })
    keys, values, hdrs = ds.keys, ds.values, ds.hdrs
    produce = p.produce
    poll = p.poll
    t0 = time.monotonic()
    dl = Deadline(args.timeout, f"producing {n} records ({codec})")
    for i in range(n):
        cb = functools.partial(on_dr, i)
        while True:
            try:
                produce(topic, value=values[i], key=keys[i], headers=hdrs[i],
                        timestamp=ts_base + i, on_delivery=cb)
                break
            except BufferError:
                poll(0.05)
                dl.check(f"local queue full at record {i}")
        if i % 64 == 0:
            poll(0)
        if errors:
            break
    left = p.flush(max(dl.remaining(), 1.0))
    elapsed = time.monotonic() - t0
    if errors:
        i, err = errors[0]
        hint = ("; librdkafka retried until message.timeout.ms: rerun with --debug protocol,msg "
                "to see the broker's ProduceResponse errors"
                if err.code() == KafkaError._MSG_TIMED_OUT else "")
        fail(f"{codec}: delivery failed for record {i} (key={short(keys[i])}): {err} "
             f"({len(errors)} delivery error(s)){hint}")
    check(left == 0, f"{codec}: flush timed out with {left} record(s) still undelivered")
    check(not dups, f"{codec}: duplicate delivery report for record {dups[:1]}")
    missing = [i for i in range(n) if dr_off[i] < 0]
    check(not missing, f"{codec}: no delivery report for {len(missing)} record(s), first {missing[:1]}")
    return dr_part, dr_off, elapsed


def expected_by_partition(codec, ds, ts_base, dr_part, dr_off):
    """Per partition: produced records in delivery-reported offset order; offsets must be
    exactly 0..n-1 (fresh topic: no gaps, no duplicates)."""
    by_part = {p: [] for p in range(PARTITIONS)}
    for i in range(ds.n):
        p = dr_part[i]
        check(p in by_part, f"{codec}: record {i} delivered to unexpected partition {p}")
        by_part[p].append((dr_off[i], i))
    for p, lst in by_part.items():
        lst.sort()
        for pos, (off, i) in enumerate(lst):
            if off != pos:
                prev = lst[pos - 1] if pos else None
                fail(f"{codec}: partition {p}: delivery-reported offsets not contiguous from 0: "
                     f"position {pos} has offset {off} (record {i}), previous {prev}")
    return by_part


def consume_all(args, topic, codec, high):
    """Manual assignment from offset 0, no group coordination; returns
    {partition: [(offset, key, value, headers, timestamp)]} up to the high watermarks."""
    c = Consumer({
        "bootstrap.servers": args.bootstrap,
        # Required by the Python binding; never used for subscribe/commit.
        "group.id": common.unique("compat-confluent-unused"),
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "error",
        "enable.partition.eof": False,
        "check.crcs": True,
        # Short long-polls: ListOffsets queued behind a waiting Fetch on the same
        # connection then waits at most this long.
        "fetch.wait.max.ms": 100,
        **debug_conf(args),
    })
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        got = {p: [] for p in range(PARTITIONS)}
        remaining = sum(high.values())
        warnings = []
        t0 = time.monotonic()
        dl = Deadline(args.timeout, f"consuming {codec} records")
        while remaining > 0:
            dl.check("consumed so far: " + ", ".join(
                f"p{p}={len(got[p])}/{high[p]}" for p in range(PARTITIONS)))
            for m in c.consume(num_messages=10000, timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.fatal() or m.topic() is not None:
                        fail(f"{codec}: consumer error on {m.topic()}[{m.partition()}] "
                             f"at offset {m.offset()}: {err}")
                    # Not tied to a partition (e.g. the unused group's FindCoordinator).
                    if len(warnings) < 5:
                        log(f"  warning: {codec}: consumer error not tied to a partition: {err}")
                    warnings.append(err)
                    continue
                p = m.partition()
                lst = got.get(p)
                check(lst is not None and m.topic() == topic,
                      f"{codec}: message from unassigned {m.topic()}[{p}]")
                off = m.offset()
                if off != len(lst):
                    fail(f"{codec}: partition {p}: fetched offset {off} but expected {len(lst)} "
                         f"({'duplicate/rewind' if off < len(lst) else 'gap'})")
                if off >= high[p]:
                    fail(f"{codec}: partition {p}: fetched offset {off} at/after the "
                         f"high watermark {high[p]}")
                lst.append((off, m.key(), m.value(), m.headers(), m.timestamp()))
                remaining -= 1
        elapsed = time.monotonic() - t0
        # Stop fetching: ListOffsets below then need not wait behind a long-poll Fetch.
        c.pause([TopicPartition(topic, p) for p in range(PARTITIONS)])
        # Watermarks again, after consuming (fresh ListOffsets, not cached).
        for p in range(PARTITIONS):
            wm = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
            check_eq(wm, (0, high[p]), f"{codec}: get_watermark_offsets({topic}[{p}]) after consume")
        return got, elapsed, c
    except BaseException:
        c.close()
        raise


def compare(codec, ds, ts_base, by_part, got):
    for p in range(PARTITIONS):
        exp_list = by_part[p]
        got_list = got[p]
        check_eq(len(got_list), len(exp_list), f"{codec}: partition {p}: number of records")
        for (off, i), g in zip(exp_list, got_list):
            hexp = ds.hdrs_exp[i]
            e = (off, ds.keys[i], ds.values[i], hexp, (TIMESTAMP_CREATE_TIME, ts_base + i))
            if g != e:
                for name, ev, gv in zip(FIELDS, e, g):
                    if ev != gv:
                        fail(f"{codec}: partition {p} offset {off} (record #{i}): {name} differs\n"
                             f"    expected: {short(ev, 400)}\n"
                             f"    got:      {short(gv, 400)}\n"
                             f"    full expected: {short(e, 600)}\n"
                             f"    full got:      {short(g, 600)}")
                fail(f"{codec}: partition {p} offset {off}: record differs: {short(e)} vs {short(g)}")


def check_offsets_for_times(consumer, topic, codec, ds, ts_base, by_part):
    """Probe before the first, at, between and after records, per partition.
    One request per probe round, with each partition at most once in it."""
    recs = {}
    probes = {}
    for p in range(PARTITIONS):
        recs[p] = [(off, ts_base + i) for off, i in by_part[p]]
        tss = [t for _, t in recs[p]]
        mid = len(tss) // 2
        pr = [min(tss) - 1, tss[0], tss[mid], tss[-1], max(tss) + 1]
        # between two records whose timestamps are not adjacent
        for a, b in zip(tss[mid:], tss[mid + 1:]):
            if b - a > 1:
                pr.append(a + 1)
                break
        probes[p] = pr
    done = 0
    for k in range(max(len(v) for v in probes.values())):
        tps = [TopicPartition(topic, p, probes[p][k]) for p in range(PARTITIONS) if k < len(probes[p])]
        res = consumer.offsets_for_times(tps, timeout=10)
        check_eq(sorted(r.partition for r in res), [tp.partition for tp in tps],
                 f"{codec}: offsets_for_times: partitions in the result")
        for r in res:
            p = r.partition
            ts = probes[p][k]
            check(r.error is None, f"{codec}: offsets_for_times({topic}[{p}], {ts}): error {r.error}")
            exp = common.first_offset_at_or_after(recs[p], ts)
            exp = -1 if exp is None else exp
            check_eq(r.offset, exp, f"{codec}: offsets_for_times({topic}[{p}], ts={ts}) "
                                    f"(-1 = no record at or after ts)")
            done += 1
    return done


def roundtrip(args, topic, codec, ds, ts_base):
    """Produce ds to topic with codec, read it back, compare. Returns a summary dict."""
    dr_part, dr_off, prod_s = produce_all(args, topic, codec, ds, ts_base)
    by_part = expected_by_partition(codec, ds, ts_base, dr_part, dr_off)
    high = {p: len(by_part[p]) for p in range(PARTITIONS)}
    empty = [p for p in range(PARTITIONS) if high[p] == 0]
    check(not empty, f"{codec}: partitioner put no record in partition(s) {empty}: {high}")
    got, cons_s, consumer = consume_all(args, topic, codec, high)
    try:
        compare(codec, ds, ts_base, by_part, got)
        probes = check_offsets_for_times(consumer, topic, codec, ds, ts_base, by_part)
    finally:
        consumer.close()
    return {"records": ds.n, "bytes": ds.nbytes, "produce_s": prod_s, "consume_s": cons_s,
            "partitions": high, "probes": probes}


# ---------------------------------------------------------------- main


def body(args):
    ver = confluent_kafka.version()
    ver = ver[0] if isinstance(ver, tuple) else ver
    log(f"{NAME}: confluent-kafka {ver}, "
        f"librdkafka {confluent_kafka.libversion()[0]}, broker {args.bootstrap}")
    log("admin checks:")
    admin = admin_checks(args)

    codecs = args.codecs.split(",") if args.codecs else CODECS
    topics = {c: common.unique(f"compat-confluent-{c}") for c in codecs}
    fs = admin.create_topics([NewTopic(t, num_partitions=PARTITIONS, replication_factor=1)
                              for t in topics.values()], operation_timeout=10, request_timeout=30)
    for t, f in fs.items():
        admin_result(f, f"create_topics({t!r})", 30)
    wait_topics_listed(admin, list(topics.values()), PARTITIONS,
                       Deadline(args.timeout, "waiting for the data topics"))
    log(f"created {len(topics)} data topics with {PARTITIONS} partitions each")

    t0 = time.monotonic()
    ds = Dataset(args.records, seed=20240607)
    log(f"generated {ds.n} records ({ds.nbytes} bytes of keys/values/headers) "
        f"in {time.monotonic() - t0:.1f}s")

    # Distinct, known CreateTime timestamps, in the past (2 h ago), apart per codec.
    now_ms = int(time.time() * 1000)
    base = now_ms - 2 * 3600 * 1000
    total = 0
    for ci, codec in enumerate(codecs):
        ts_base = base + ci * (ds.n + 1000)
        r = roundtrip(args, topics[codec], codec, ds, ts_base)
        total += r["records"]
        parts = " ".join(f"p{p}={n}" for p, n in sorted(r["partitions"].items()))
        log(f"  {codec:6s}: {r['records']} records, {r['bytes']} bytes, produce "
            f"{r['produce_s']:.1f}s, consume {r['consume_s']:.1f}s; identical; "
            f"watermarks ok ({parts}); offsets_for_times ok ({r['probes']} probes)")

    fs = admin.delete_topics(list(topics.values()), operation_timeout=10, request_timeout=30)
    for t, f in fs.items():
        admin_result(f, f"delete_topics({t!r})", 30)
    dl = Deadline(args.timeout, "waiting for the data topics to disappear")
    for t in topics.values():
        wait_topic_gone(admin, t, dl)
    log(f"deleted {len(topics)} data topics")
    return f"{total} records"


def extra_args(p):
    p.add_argument("--records", type=int, default=100000,
                   help="records per codec (default 100000; the requirement is 100000)")
    p.add_argument("--codecs", default="",
                   help="comma-separated subset of none,gzip,snappy,lz4,zstd (default: all)")
    p.add_argument("--debug", default="",
                   help="librdkafka debug contexts for every client, e.g. protocol,msg,fetch")


if __name__ == "__main__":
    common.run_main(NAME, body, common.parse_args(__doc__.splitlines()[0], extra_args))
