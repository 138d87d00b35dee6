"""Consumer-group scenarios whose observable outcomes must be the same on any Kafka broker.

Run: <venv python> tests/compat/group_scenarios.py --bootstrap HOST:PORT --summary FILE
     [--phase all|before-restart|after-restart --state FILE]

tests/it/groups_reference.rs runs this against Apache Kafka and against `tern broker` and
compares the two JSON summaries written to FILE, which hold only what does not depend on
timing: committed offsets, assignment sizes per phase, group states, error names, where a
resumed consumer starts. Member ids, generation numbers of client-driven groups and
timestamps stay out (the raw protocol scenario, which drives every request itself, keeps its
generation numbers).

Scenarios (phase `all`):
- split-range, split-cooperative: three confluent-kafka consumers (range, then
  cooperative-sticky, set explicitly) split a 6-partition topic 2/2/2, commit, one closes
  (committing on revocation), the other two take over 3/3, all close; every assignment must
  resume exactly at the last commit.
- resume-and-reset: on the range group, now empty, the admin client resets the offsets; a new
  consumer starts exactly there; while it is active the admin client is refused offset resets,
  offset deletion and group deletion; after it closed they work.
- static: two static members (group.instance.id); one closes and comes back with its old
  partitions without a rebalance; a third consumer with the same instance id fences it;
  LeaveGroup by instance id removes them.
- protocol, static_protocol: JoinGroup, SyncGroup, Heartbeat, OffsetCommit, LeaveGroup,
  DescribeGroups, ListGroups, DeleteGroups, OffsetFetch and OffsetDelete sent by hand
  (kafka-python's message classes, pinned versions, one connection per member so a JoinGroup
  can wait while others act) with the arguments clients get wrong: unknown and pending members,
  stale and future generations, fenced static members, empty groups, unknown groups, topics
  and partitions, the error code of every answer and the order of partitions in it.
- timeouts: what the coordinator's timers decide, not when: a silent member's session ends,
  a member that does not rejoin or never syncs is dropped, a simple group becomes a consumer
  group, a returning static member with another subscription.
Consumers here are polled round-robin from one thread: librdkafka heartbeats and rebalances in
its own threads, so outcomes do not depend on the polling. (kafka-python's KafkaConsumer does
not fit: it abandons a join that completes between two polls and joins again, which can keep
a group rebalancing on any broker.)

Phases before-restart / after-restart: a dynamic and a static consumer commit part of a topic;
the broker is restarted in between; the groups come back (states, members, offsets) and
consumers resume at the committed offsets.

Exit 0 only when the scenarios ran; the comparison is the caller's.
"""

import json
import socket
import struct
import time
from collections import deque

from confluent_kafka import (ConsumerGroupState, ConsumerGroupTopicPartitions, Consumer, KafkaError,
                             KafkaException, Producer, TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.errors import for_code
from kafka.protocol.admin.groups import (DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
                                         DescribeGroupsResponse, ListGroupsRequest, ListGroupsResponse)
from kafka.protocol.consumer import (HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
                                     LeaveGroupRequest, LeaveGroupResponse, OffsetCommitRequest,
                                     OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
                                     OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse)
from kafka.protocol.metadata import FindCoordinatorRequest, FindCoordinatorResponse

import common
from common import Deadline, check, check_eq, fail, log

NAME = "group_scenarios"
RT = 30  # seconds per admin call

# ---------------------------------------------------------------------------------------------
# Shared pieces


def value(tag, p, o):
    return b"%s-%d-%d" % (tag.encode(), p, o)


class Topic:
    """A fresh topic with records whose content is known from (partition, offset)."""

    def __init__(self, sc, prefix, partitions, name=None):
        self.sc, self.partitions = sc, partitions
        self.name = name or common.unique(prefix)
        self.end = {p: 0 for p in range(partitions)}
        if name is None:
            sc.create_topic(self.name, partitions)

    def produce(self, per_partition):
        errors = []
        for p in range(self.partitions):
            for _ in range(per_partition):
                o = self.end[p]
                self.sc.producer.produce(self.name, key=b"k%d" % o, value=value(self.name, p, o), partition=p,
                                         on_delivery=lambda err, msg: errors.append(err) if err else None)
                self.end[p] += 1
        check_eq(self.sc.producer.flush(RT), 0, "records left unsent")
        check_eq(errors, [], f"delivery errors producing to {self.name}")


def err_name(e):
    """The name of a confluent-kafka error, or None for success."""
    if e is None:
        return None
    if isinstance(e, KafkaException):
        e = e.args[0]
    return e.name() if isinstance(e, KafkaError) else repr(e)


def code_name(code):
    """Kafka's name of a protocol error code (NONE for 0)."""
    return "NONE" if code == 0 else for_code(code).message


class Scenarios:
    def __init__(self, args):
        self.args = args
        self.admin = AdminClient({"bootstrap.servers": args.bootstrap})
        self.producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "linger.ms": 5})

    def create_topic(self, name, partitions):
        f = self.admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name]
        f.result(RT)
        # Wait until the new topic's partitions have leaders, as a consumer's metadata sees them.
        dl = Deadline(self.args.timeout, f"metadata of {name}")
        while True:
            md = self.admin.list_topics(name, timeout=RT).topics.get(name)
            if md and md.error is None and len(md.partitions) == partitions and all(
                    p.leader >= 0 for p in md.partitions.values()):
                return
            dl.check()
            time.sleep(0.1)

    # --- admin views --------------------------------------------------------------------------

    def committed(self, group, topic):
        """{partition: committed offset} as the admin client lists them (-1001 when none)."""
        req = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic.name, p) for p in range(topic.partitions)])]
        r = self.admin.list_consumer_group_offsets(req, request_timeout=RT)[group].result(RT)
        return {str(tp.partition): tp.offset for tp in r.topic_partitions}

    def describe(self, group):
        """What describe_consumer_groups shows of a group, without ids: state, assignor,
        members' assignment sizes (sorted), or the error."""
        try:
            d = self.admin.describe_consumer_groups([group], request_timeout=RT)[group].result(RT)
        except KafkaException as e:
            return {"error": err_name(e)}
        return {
            "state": d.state.name,
            "assignor": d.partition_assignor,
            "simple": d.is_simple_consumer_group,
            "members": len(d.members),
            "assignment_sizes": sorted(len(m.assignment.topic_partitions) for m in d.members),
        }

    def wait_state(self, group, state, what):
        dl = Deadline(self.args.timeout, what)
        while True:
            d = self.describe(group)
            if d.get("state") == state.name:
                return d
            dl.check(f"described as {d}")
            time.sleep(0.1)

    def listed(self, group):
        """The group's state in list_consumer_groups, unfiltered and with each state filter."""
        out = {}
        r = self.admin.list_consumer_groups(request_timeout=RT).result(RT)
        check_eq(r.errors, [], "list_consumer_groups errors")
        g = next((x for x in r.valid if x.group_id == group), None)
        out["listed"] = None if g is None else {"state": g.state.name, "simple": g.is_simple_consumer_group}
        for s in (ConsumerGroupState.STABLE, ConsumerGroupState.EMPTY):
            r = self.admin.list_consumer_groups(states={s}, request_timeout=RT).result(RT)
            out[f"in_{s.name.lower()}_filter"] = any(x.group_id == group for x in r.valid)
        return out

    def admin_call(self, fut):
        """The error name of an admin call (None when it worked), including per-partition ones."""
        try:
            r = fut.result(RT)
        except KafkaException as e:
            return err_name(e)
        errors = sorted({err_name(tp.error) for tp in getattr(r, "topic_partitions", []) if tp.error})
        return ",".join(errors) if errors else None

    def alter_offsets(self, group, topic, offsets):
        tps = [TopicPartition(topic.name, p, o) for p, o in offsets.items()]
        return self.admin_call(self.admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, tps)])[group])

    def delete_offsets(self, group, topic, partitions):
        """OffsetDelete, as kafka-consumer-groups.sh --delete-offsets sends it (confluent-kafka's
        admin client has no call for it)."""
        raw = Raw(self.args.bootstrap, "offset-deleter")
        try:
            return offset_delete(raw, group, topic.name, partitions)
        finally:
            raw.close()

    def delete_groups(self, groups):
        futs = self.admin.delete_consumer_groups(groups, request_timeout=RT)
        return {("group" if i == 0 else f"group{i}"): self.admin_call(futs[g]) for i, g in enumerate(groups)}


# ---------------------------------------------------------------------------------------------
# confluent-kafka consumers, polled round-robin from this thread


class Member:
    """One consumer of a group and what its rebalance callbacks reported. Commits only when
    told to and on revocation (including the revocation of close)."""

    def __init__(self, sc, ledger, name, group, topic, assignor, instance=None, session_ms=10000):
        self.sc, self.ledger, self.name, self.topic = sc, ledger, name, topic
        self.owned = set()
        self.events = []          # ("assign" | "revoke" | "lost", [partitions])
        self.pos = {}             # partition -> next offset to process
        self.error = None
        conf = {
            "bootstrap.servers": sc.args.bootstrap,
            "group.id": group,
            "client.id": name,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": assignor,
            "session.timeout.ms": session_ms,
            "heartbeat.interval.ms": 500,
        }
        if instance:
            conf["group.instance.id"] = instance
        self.c = Consumer(conf)
        self.c.subscribe([topic.name], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)

    def _on_assign(self, consumer, partitions):
        ps = sorted(tp.partition for tp in partitions)
        self.events.append(("assign", ps))
        for p in ps:
            self.owned.add(p)
            self.ledger.start_session(self.name, p)

    def _on_revoke(self, consumer, partitions):
        ps = sorted(tp.partition for tp in partitions)
        self.events.append(("revoke", ps))
        self.commit(ps)
        for p in ps:
            self.owned.discard(p)
            self.pos.pop(p, None)

    def _on_lost(self, consumer, partitions):
        ps = sorted(tp.partition for tp in partitions)
        self.events.append(("lost", ps))
        for p in ps:
            self.owned.discard(p)
            self.pos.pop(p, None)

    def commit(self, partitions=None):
        offsets = {p: o for p, o in self.pos.items() if partitions is None or p in partitions}
        if not offsets:
            return
        tps = [TopicPartition(self.topic.name, p, o) for p, o in sorted(offsets.items())]
        try:
            result = self.c.commit(offsets=tps, asynchronous=False)
            errors = [err_name(tp.error) for tp in result if tp.error]
        except KafkaException as e:
            errors = [err_name(e)]
        if errors:
            self.ledger.commit_errors.append(errors[0])
            return
        self.ledger.committed.update(offsets)

    def poll(self):
        if self.error:
            return
        for m in self.c.consume(50, 0.05):
            if m.error():
                self.error = m.error()
                log(f"  {self.name}: consume error {self.error}")
                return
            self.ledger.deliver(self, m.partition(), m.offset(), m.value())
            self.pos[m.partition()] = m.offset() + 1

    def close(self):
        try:
            self.c.close()
        except (KafkaException, RuntimeError) as e:
            log(f"  {self.name}: close: {e}")


class Ledger:
    """Deliveries and commits of one group's consumers; anomalies are collected, not raised,
    so the summary shows them."""

    def __init__(self, topic):
        self.topic = topic
        self.committed = {}        # partition -> last committed offset (from these consumers or resets)
        self.session = {}          # (consumer, partition) -> next offset expected, None before the first
        self.first = {}            # partition -> first offset of its latest assignment session
        self.seen = {}             # (partition, offset) -> times delivered
        self.anomalies = []
        self.commit_errors = []

    def start_session(self, consumer, p):
        self.session[(consumer, p)] = None

    def deliver(self, member, p, o, v):
        if v != value(self.topic.name, p, o):
            self.anomalies.append(f"partition {p} offset {o}: unexpected content")
        k = (member.name, p)
        if k not in self.session or p not in member.owned:
            self.anomalies.append(f"partition {p} offset {o} delivered to a consumer not owning it")
        expect = self.session.get(k)
        if expect is None:
            start = self.committed.get(p, 0)
            self.first[p] = o
            if o != start:
                self.anomalies.append(f"partition {p}: a new assignment started at {o}, the last commit was {start}")
        elif o != expect:
            self.anomalies.append(f"partition {p}: offset {o} follows {expect - 1}")
        self.session[k] = o + 1
        self.seen[(p, o)] = self.seen.get((p, o), 0) + 1

    def all_delivered(self):
        return all((p, o) in self.seen for p, end in self.topic.end.items() for o in range(end))

    def duplicates(self):
        return sum(n - 1 for n in self.seen.values())


def pump(sc, members, what, until):
    """Polls every member in turn until until() holds."""
    dl = Deadline(sc.args.timeout, what)
    while not until():
        for m in members:
            m.poll()
        dl.check(" / ".join(f"{m.name} owns {sorted(m.owned)}" for m in members))


def split(members, partitions, sizes):
    """The members' partitions are disjoint, cover the topic and have these sizes."""
    owned = [p for m in members for p in m.owned]
    return sorted(owned) == list(range(partitions)) and sorted(len(m.owned) for m in members) == sizes


def scenario_split(sc, assignor):
    """Three consumers split a topic, one leaves, two take over; returns (summary, the range
    group's topic and group for the next scenario)."""
    topic = Topic(sc, f"diff-split-{assignor}", 6)
    group = common.unique(f"diff-split-{assignor}")
    ledger = Ledger(topic)
    out = {}
    topic.produce(5)
    ms = [Member(sc, ledger, f"{assignor}-c{i}", group, topic, assignor) for i in range(3)]
    pump(sc, ms, "three consumers splitting 2/2/2 and reading everything",
         lambda: split(ms, 6, [2, 2, 2]) and ledger.all_delivered())
    for m in ms:
        m.commit()
    out["three_members"] = {
        "sizes": sorted(len(m.owned) for m in ms),
        "described": sc.wait_state(group, ConsumerGroupState.STABLE, "the group of three being Stable"),
        "committed": sc.committed(group, topic),
        "listed": sc.listed(group),
    }
    log(f"  {assignor}: three consumers split 2/2/2: {out['three_members']}")

    topic.produce(3)
    pump(sc, ms, "three consumers reading the second wave", ledger.all_delivered)
    leaver, rest = ms[0], ms[1:]
    before = {m.name: set(m.owned) for m in rest}
    marks = {m.name: len(m.events) for m in rest}
    leaver.close()
    pump(sc, rest, "two consumers taking over 3/3", lambda: split(rest, 6, [3, 3]) and ledger.all_delivered())
    out["after_leave"] = {
        "sizes": sorted(len(m.owned) for m in rest),
        # Cooperative members give nothing back and only gain; eager ones give everything back
        # first (and what they get then depends on how member ids sort).
        "revoked_during_rebalance": sorted(any(e[0] == "revoke" and e[1] for e in m.events[marks[m.name]:]) for m in rest),
        "described": sc.wait_state(group, ConsumerGroupState.STABLE, "the group of two being Stable"),
        "committed_sorted": sorted(sc.committed(group, topic).values()),
    }
    if assignor == "cooperative-sticky":
        out["after_leave"]["kept_previous"] = sorted(before[m.name] <= m.owned for m in rest)
    log(f"  {assignor}: after one left: {out['after_leave']}")

    for m in rest:
        m.close()
    out["after_close"] = {
        "described": sc.wait_state(group, ConsumerGroupState.EMPTY, "the group being Empty after every consumer closed"),
        "committed": sc.committed(group, topic),
        "listed": sc.listed(group),
    }
    out["duplicates"] = ledger.duplicates()
    out["anomalies"] = ledger.anomalies
    out["commit_errors"] = ledger.commit_errors
    log(f"  {assignor}: all closed: {out['after_close']}; {out['duplicates']} duplicate(s), anomalies {ledger.anomalies}")
    return out, (topic, group, ledger)


def scenario_resume_and_reset(sc, topic, group, ledger):
    """Admin offset resets on the empty range group, a consumer resuming there, and what the
    admin client may not do while it is active."""
    out = {}
    reset = {p: p for p in range(topic.partitions)}
    out["reset_empty_group"] = sc.alter_offsets(group, topic, reset)
    out["committed_after_reset"] = sc.committed(group, topic)
    ledger.committed.update(reset)
    topic.produce(2)
    r = Member(sc, ledger, "resumer", group, topic, "range")
    pump(sc, [r], "a new consumer reading from the reset offsets to the end",
         lambda: len(r.owned) == topic.partitions and all(r.pos.get(p) == topic.end[p] for p in range(topic.partitions)))
    out["resumed_at"] = {str(p): ledger.first.get(p) for p in range(topic.partitions)}
    out["active"] = {
        "described": sc.wait_state(group, ConsumerGroupState.STABLE, "the resumed group being Stable"),
        "listed": sc.listed(group),
        "reset_refused": sc.alter_offsets(group, topic, {0: 1}),
        "delete_offsets_refused": sc.delete_offsets(group, topic, [0]),
        "delete_group_refused": sc.delete_groups([group]),
    }
    log(f"  resumed at {out['resumed_at']}; while active: {out['active']}")
    r.commit()
    r.close()
    sc.wait_state(group, ConsumerGroupState.EMPTY, "the group being Empty after the resumer closed")
    unknown = common.unique("diff-unknown")
    out["idle"] = {
        "committed": sc.committed(group, topic),
        "delete_offsets": sc.delete_offsets(group, topic, [0]),
        "committed_after_delete": sc.committed(group, topic),
        "delete_groups": sc.delete_groups([group, unknown]),
    }
    out["deleted"] = {
        "described": sc.describe(group),
        "committed": sc.committed(group, topic),
        "listed": sc.listed(group),
        "unknown_described": sc.describe(unknown),
    }
    out["anomalies"] = ledger.anomalies
    out["commit_errors"] = ledger.commit_errors
    log(f"  once idle: {out['idle']}; deleted: {out['deleted']}")
    return out


def scenario_static(sc):
    """Static members: a closed one keeps its place, comes back to its partitions, is fenced
    by a newer instance with its group.instance.id, and is removed by instance id."""
    topic = Topic(sc, "diff-static", 4)
    group = common.unique("diff-static")
    ledger = Ledger(topic)
    ids = {k: f"{group}-{k}" for k in ("a", "b")}
    out = {}
    topic.produce(8)
    a = Member(sc, ledger, "static-a", group, topic, "range", instance=ids["a"], session_ms=30000)
    b = Member(sc, ledger, "static-b", group, topic, "range", instance=ids["b"], session_ms=30000)
    pump(sc, [a, b], "two static members splitting 2/2", lambda: split([a, b], 4, [2, 2]) and ledger.all_delivered())
    for m in (a, b):
        m.commit()
    d = sc.admin.describe_consumer_groups([group], request_timeout=RT)[group].result(RT)
    out["two_members"] = {
        "described": sc.describe(group),
        "instances": sorted((m.group_instance_id or "").removeprefix(group + "-") for m in d.members),
    }
    owned_a, b_marks = set(a.owned), len(b.events)
    a.close()
    # A static member does not leave on close: the group keeps it until its session ends.
    out["after_static_close"] = {"described": sc.describe(group)}
    topic.produce(1)
    a2 = Member(sc, ledger, "static-a-again", group, topic, "range", instance=ids["a"], session_ms=30000)
    pump(sc, [a2, b], "the static member returning to its partitions",
         lambda: len(a2.owned) == 2 and ledger.all_delivered())
    out["after_static_return"] = {
        "same_partitions": a2.owned == owned_a,
        "other_member_rebalanced": b.events[b_marks:] != [],
        "described": sc.describe(group),
    }
    log(f"  static: {out}")

    a3 = Member(sc, ledger, "static-a-fencer", group, topic, "range", instance=ids["a"], session_ms=30000)
    pump(sc, [a2, a3, b], "a newer instance with the same group.instance.id fencing the old one",
         lambda: a2.error is not None and len(a3.owned) == 2)
    out["fenced"] = {
        "error": err_name(a2.error),
        "fencer_partitions_same": a3.owned == owned_a,
        "other_member_rebalanced": b.events[b_marks:] != [],
    }
    a2.close()
    for m in (a3, b):
        m.commit()
        m.close()
    out["after_static_closes"] = {"described": sc.describe(group), "committed": sc.committed(group, topic)}
    # Removal by group.instance.id alone (what kafka-consumer-groups --delete ... does for
    # static members), plus one instance that is not in the group.
    raw = Raw(sc.args.bootstrap, "static-remover")
    raw.wait_coordinator(group)
    leave = LeaveGroupRequest(group_id=group, members=[
        LeaveGroupRequest.MemberIdentity(member_id="", group_instance_id=i, reason=None)
        for i in (ids["a"], ids["b"], f"{group}-nobody")])
    r = raw.call(leave, 3)
    out["removed_by_instance_id"] = {"error": code_name(r.error_code), "members": [code_name(m.error_code) for m in r.members]}
    out["after_removal"] = {
        "described": sc.wait_state(group, ConsumerGroupState.EMPTY, "the static group being Empty after removal"),
        "committed": sc.committed(group, topic),
    }
    out["anomalies"] = ledger.anomalies
    out["commit_errors"] = ledger.commit_errors
    raw.close()
    log(f"  static, fenced and removed: {out['fenced']}, {out['removed_by_instance_id']}, {out['after_removal']}")
    return out


# ---------------------------------------------------------------------------------------------
# The protocol by hand


RESPONSES = {
    FindCoordinatorRequest: FindCoordinatorResponse,
    JoinGroupRequest: JoinGroupResponse,
    SyncGroupRequest: SyncGroupResponse,
    HeartbeatRequest: HeartbeatResponse,
    LeaveGroupRequest: LeaveGroupResponse,
    OffsetCommitRequest: OffsetCommitResponse,
    OffsetFetchRequest: OffsetFetchResponse,
    OffsetDeleteRequest: OffsetDeleteResponse,
    DescribeGroupsRequest: DescribeGroupsResponse,
    ListGroupsRequest: ListGroupsResponse,
    DeleteGroupsRequest: DeleteGroupsResponse,
}


class Raw:
    """One connection to the (single) broker, sending kafka-python's message classes with the
    versions asked for. send() and recv() apart let a test park a JoinGroup or SyncGroup
    while it acts on another connection, as the members of a group do."""

    def __init__(self, bootstrap, client_id):
        host, port = bootstrap.split(",")[0].rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=RT)
        self.client_id = client_id
        self.correlation = 0
        self.pending = deque()

    def send(self, req, version):
        self.correlation += 1
        req.API_VERSION = version
        req.with_header(correlation_id=self.correlation, client_id=self.client_id)
        self.sock.sendall(req.encode(version=version, header=True, framed=True))
        self.pending.append((self.correlation, RESPONSES[type(req)], version))

    def recv(self):
        (size,) = struct.unpack(">i", self._read(4))
        data = self._read(size)
        correlation, response, version = self.pending.popleft()
        r = response.decode(data, version=version, header=True)
        check_eq(r.header.correlation_id, correlation, "correlation id")
        return r

    def call(self, req, version):
        self.send(req, version)
        return self.recv()

    def _read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                fail("the broker closed the connection")
            buf += chunk
        return buf

    def wait_coordinator(self, group):
        """FindCoordinator until the group's coordinator is ready (Kafka creates and loads
        __consumer_offsets on first use)."""
        dl = Deadline(RT, f"the coordinator of {group}")
        while True:
            r = self.call(FindCoordinatorRequest(key=group, key_type=0), 3)
            if r.error_code == 0:
                f = self.call(OffsetFetchRequest(group_id=group, topics=[]), 7)
                if f.error_code == 0:
                    return
            dl.check(f"FindCoordinator error {r.error_code}")
            time.sleep(0.2)

    def close(self):
        self.sock.close()


def subscription(topics):
    """ConsumerProtocolSubscription v0: the topics, no user data."""
    out = struct.pack(">hi", 0, len(topics))
    for t in topics:
        out += struct.pack(">h", len(t)) + t.encode()
    return out + struct.pack(">i", -1)


def join_request(group, member_id="", instance=None, protocols=(("range", None),), topics=(), session_ms=10000,
                 protocol_type="consumer"):
    ps = [JoinGroupRequest.JoinGroupRequestProtocol(name=n, metadata=m if m is not None else subscription(list(topics)))
          for n, m in protocols]
    return JoinGroupRequest(group_id=group, session_timeout_ms=session_ms, rebalance_timeout_ms=10000,
                            member_id=member_id, group_instance_id=instance, protocol_type=protocol_type,
                            protocols=ps, reason=None)


def sync_request(group, generation, member_id, instance=None, assignments=()):
    return SyncGroupRequest(group_id=group, generation_id=generation, member_id=member_id, group_instance_id=instance,
                            protocol_type="consumer", protocol_name="range",
                            assignments=[SyncGroupRequest.SyncGroupRequestAssignment(member_id=m, assignment=a)
                                         for m, a in assignments])


def heartbeat(raw, group, generation, member_id, instance=None):
    r = raw.call(HeartbeatRequest(group_id=group, generation_id=generation, member_id=member_id,
                                  group_instance_id=instance), 3)
    return code_name(r.error_code)


def commit(raw, group, generation, member_id, topic, offsets, instance=None, version=8, metadata=""):
    """The error of each partition, in the order of the response."""
    r = commit_topics(raw, group, generation, member_id, [(topic, offsets)], instance, version, metadata)
    return [code_name(p.error_code) for t in r.topics for p in t.partitions]


def commit_topics(raw, group, generation, member_id, topics, instance=None, version=8, metadata=""):
    T = OffsetCommitRequest.OffsetCommitRequestTopic
    req = OffsetCommitRequest(group_id=group, generation_id_or_member_epoch=generation, member_id=member_id,
                              group_instance_id=instance, topics=[T(name=topic, partitions=[
                                  T.OffsetCommitRequestPartition(partition_index=p, committed_offset=o,
                                                                 committed_leader_epoch=-1, committed_metadata=metadata)
                                  for p, o in offsets]) for topic, offsets in topics])
    return raw.call(req, version)


def fetch_offsets(raw, group, topic, partitions, version=7):
    T = OffsetFetchRequest.OffsetFetchRequestTopic
    r = raw.call(OffsetFetchRequest(group_id=group, topics=[T(name=topic, partition_indexes=list(partitions))],
                                    require_stable=False), version)
    return {"error": code_name(r.error_code),
            "partitions": {str(p.partition_index): [p.committed_offset, code_name(p.error_code)]
                           for t in r.topics for p in t.partitions}}


def describe_raw(raw, group, version=5):
    r = raw.call(DescribeGroupsRequest(groups=[group], include_authorized_operations=False), version)
    g = r.groups[0]
    out = {"error": code_name(g.error_code), "state": g.group_state, "protocol_type": g.protocol_type,
           "protocol": g.protocol_data, "members": len(g.members)}
    if version >= 6:
        out["message"] = g.error_message.replace(group, "<group>") if g.error_message is not None else None
    return out


def leave(raw, group, members, version=3):
    if version < 3:
        (member_id, _), = members
        r = raw.call(LeaveGroupRequest(group_id=group, member_id=member_id), version)
        return code_name(r.error_code)
    r = raw.call(LeaveGroupRequest(group_id=group, members=[
        LeaveGroupRequest.MemberIdentity(member_id=m, group_instance_id=i, reason=None) for m, i in members]), version)
    return {"error": code_name(r.error_code), "members": [code_name(m.error_code) for m in r.members]}


def join_result(r, member_id=None):
    """A JoinGroup response without ids: error, generation, and whether ids are as expected."""
    out = {"error": code_name(r.error_code), "generation": r.generation_id, "members": len(r.members),
           "protocol": r.protocol_name}
    if member_id is not None:
        out["leader_is_member"] = r.leader == member_id and r.leader != ""
    return out


def scenario_protocol(sc, topic):
    """Every answer to hand-made requests, good and bad."""
    out = {}
    group = common.unique("diff-protocol")
    a, b, c = (Raw(sc.args.bootstrap, f"raw-{k}") for k in "abc")
    a.wait_coordinator(group)
    t = topic.name

    # Joining: v4+ dynamic members first get an id; a session timeout out of bounds, a
    # protocol type or protocols the group does not share are refused.
    r = a.call(join_request(group, topics=[t]), 5)
    out["join_without_id"] = {"error": code_name(r.error_code), "generation": r.generation_id, "got_member_id": r.member_id != ""}
    ma = r.member_id
    out["join_session_too_short"] = code_name(a.call(join_request(group, ma, topics=[t], session_ms=1000), 5).error_code)
    out["join_session_too_long"] = code_name(a.call(join_request(group, ma, topics=[t], session_ms=3_600_000), 5).error_code)
    out["join_unknown_member_id"] = code_name(a.call(join_request(group, "no-such-member", topics=[t]), 5).error_code)
    r = a.call(join_request(group, ma, topics=[t]), 5)
    out["join_with_id"] = join_result(r, ma)
    gen = r.generation_id
    out["sync_wrong_generation"] = code_name(a.call(sync_request(group, gen + 1, ma), 3).error_code)
    out["sync_unknown_member"] = code_name(a.call(sync_request(group, gen, "no-such-member"), 3).error_code)
    r = a.call(sync_request(group, gen, ma, assignments=[(ma, b"assignment-a")]), 3)
    out["sync_leader"] = {"error": code_name(r.error_code), "assignment": r.assignment.decode()}
    out["join_other_protocol_type"] = code_name(
        b.call(join_request(group, topics=[t], protocol_type="connect"), 5).error_code)
    out["join_unshared_protocols"] = code_name(
        b.call(join_request(group, protocols=(("roundrobin", None),), topics=[t]), 5).error_code)
    out["describe_stable"] = describe_raw(c, group)
    out["describe_stable_v0"] = describe_raw(c, group, 0)
    out["describe_stable_v6"] = describe_raw(c, group, 6)
    r = c.call(sync_request(group, gen, ma), 5)
    out["sync_v5_known_protocol"] = [code_name(r.error_code), r.protocol_type, r.protocol_name, r.assignment.decode()]
    req = sync_request(group, gen, ma)
    req.protocol_name = "roundrobin"
    out["sync_v5_other_protocol"] = code_name(c.call(req, 5).error_code)
    req = sync_request(group, gen, ma)
    req.protocol_type = "connect"
    out["sync_v5_other_protocol_type"] = code_name(c.call(req, 5).error_code)

    # Empty group ids; a member id handed out with MEMBER_ID_REQUIRED but never used.
    out["join_empty_group_id"] = code_name(c.call(join_request("", topics=[t]), 5).error_code)
    out["heartbeat_empty_group_id"] = heartbeat(c, "", 1, ma)
    out["sync_empty_group_id"] = code_name(c.call(sync_request("", 1, ma), 3).error_code)
    out["commit_empty_group_id"] = commit(c, "", 1, ma, t, [(0, 1)])
    out["leave_empty_group_id"] = leave(c, "", [(ma, None)])
    pending = c.call(join_request(group, topics=[t]), 5).member_id
    out["heartbeat_pending_member"] = heartbeat(c, group, gen, pending)
    out["sync_pending_member"] = code_name(c.call(sync_request(group, gen, pending), 3).error_code)
    out["commit_pending_member"] = commit(c, group, gen, pending, t, [(0, 1)])
    out["leave_pending_member"] = leave(c, group, [(pending, None)])
    out["describe_after_pending_left"] = describe_raw(c, group)

    # Heartbeats and commits from the member and from impostors.
    out["heartbeat"] = heartbeat(a, group, gen, ma)
    out["heartbeat_wrong_generation"] = heartbeat(a, group, gen + 1, ma)
    out["heartbeat_old_generation"] = heartbeat(a, group, gen - 1, ma)
    out["heartbeat_unknown_member"] = heartbeat(a, group, gen, "no-such-member")
    out["heartbeat_unknown_group"] = heartbeat(a, common.unique("diff-nogroup"), 1, "no-such-member")
    out["commit"] = commit(a, group, gen, ma, t, [(0, 1), (1, 2)])
    out["commit_stale_generation"] = commit(a, group, gen - 1, ma, t, [(0, 3)])
    out["commit_future_generation"] = commit(a, group, gen + 1, ma, t, [(0, 3)])
    out["commit_unknown_member"] = commit(a, group, gen, "no-such-member", t, [(0, 3)])
    out["commit_outside_group_protocol"] = commit(a, group, -1, "", t, [(0, 3)])
    out["commit_unknown_partition"] = commit(a, group, gen, ma, t, [(0, 4), (99, 1)])
    out["commit_unknown_topic"] = commit(a, group, gen, ma, common.unique("diff-notopic"), [(0, 1)])
    notopic = common.unique("diff-notopic")
    r = commit_topics(a, group, gen, ma, [(t, [(1, 3), (7, 1), (0, 4)]), (notopic, [(0, 1)])])
    # Partitions and topics in the order of the response: which the broker refuses before
    # the coordinator sees the request come first.
    out["commit_mixed_topics"] = [["known" if x.name == t else "unknown", p.partition_index, code_name(p.error_code)]
                                  for x in r.topics for p in x.partitions]
    r = commit_topics(a, group, gen, ma, [(t, [(0, 4)]), (notopic, [(0, 1)])])
    out["commit_known_then_unknown_topic"] = [["known" if x.name == t else "unknown", p.partition_index,
                                               code_name(p.error_code)] for x in r.topics for p in x.partitions]
    out["commit_metadata_too_large"] = commit(a, group, gen, ma, t, [(1, 5)], metadata="m" * 5000)
    nogroup = common.unique("diff-nogroup")
    out["commit_unknown_group_v8"] = commit(a, nogroup, 1, "no-such-member", t, [(0, 1)], version=8)
    out["commit_unknown_group_v9"] = commit(a, nogroup, 1, "no-such-member", t, [(0, 1)], version=9)
    out["offsets"] = fetch_offsets(c, group, t, [0, 1, 2])
    out["offsets_v8"] = fetch_offsets_v8(c, group, t, [0, 1, 2])
    out["offsets_unknown_group"] = fetch_offsets(c, nogroup, t, [0])
    out["offsets_unknown_partition"] = fetch_offsets(c, group, t, [0, 42])
    out["offsets_unknown_topic"] = fetch_offsets(c, group, notopic, [0])

    # A second member: the first learns of the rebalance from its heartbeat, may still commit
    # with its generation until it rejoins, and keeps leading.
    r = b.call(join_request(group, topics=[t]), 5)
    mb = r.member_id
    b.send(join_request(group, mb, topics=[t]), 5)          # parked until a rejoins
    time.sleep(0.5)
    out["heartbeat_during_rebalance"] = heartbeat(c, group, gen, ma)
    out["commit_during_rebalance"] = commit(c, group, gen, ma, t, [(0, 5)])
    out["describe_preparing"] = describe_raw(c, group)
    a.send(join_request(group, ma, topics=[t]), 5)
    ra, rb = a.recv(), b.recv()
    out["rejoin_leader"] = join_result(ra, ma)
    out["rejoin_follower"] = join_result(rb, ma)
    gen2 = ra.generation_id
    out["generation_advanced"] = gen2 == gen + 1 and rb.generation_id == gen2
    out["heartbeat_awaiting_sync"] = heartbeat(c, group, gen2, mb)
    out["commit_awaiting_sync"] = commit(c, group, gen2, ma, t, [(0, 6)])
    out["describe_completing"] = describe_raw(c, group)
    b.send(sync_request(group, gen2, mb), 3)                # parked until the leader syncs
    time.sleep(0.3)
    r = a.call(sync_request(group, gen2, ma, assignments=[(ma, b"assignment-a2"), (mb, b"assignment-b2")]), 3)
    rb = b.recv()
    out["sync_two_members"] = {"leader": [code_name(r.error_code), r.assignment.decode()],
                               "follower": [code_name(rb.error_code), rb.assignment.decode()]}
    out["heartbeat_stale_after_rebalance"] = heartbeat(c, group, gen, ma)
    out["commit_stale_after_rebalance"] = commit(c, group, gen, ma, t, [(0, 7)])
    out["offset_delete_subscribed"] = offset_delete(c, group, t, [0])
    out["delete_non_empty_group"] = delete_groups(c, [group])

    # Leaving: one known member and one unknown in a batch; then the old LeaveGroup version.
    out["leave_batch"] = leave(c, group, [(mb, None), ("no-such-member", None)])
    out["heartbeat_after_other_left"] = heartbeat(a, group, gen2, ma)
    r = a.call(join_request(group, ma, topics=[t]), 5)
    out["rejoin_alone"] = join_result(r, ma)
    gen3 = r.generation_id
    r = a.call(sync_request(group, gen3, ma, assignments=[(ma, b"assignment-a3")]), 3)
    out["sync_alone"] = [code_name(r.error_code), r.assignment.decode()]
    out["leave_v1_unknown_member"] = leave(c, group, [("no-such-member", None)], version=1)
    out["leave_unknown_group"] = leave(c, common.unique("diff-nogroup"), [("no-such-member", None)])
    out["leave_v1_unknown_group"] = leave(c, common.unique("diff-nogroup"), [("no-such-member", None)], version=1)
    out["sync_unknown_group"] = code_name(c.call(sync_request(common.unique("diff-nogroup"), 1, "m"), 3).error_code)
    out["leave_v1"] = leave(a, group, [(ma, None)], version=1)
    out["heartbeat_after_leave"] = heartbeat(a, group, gen3, ma)
    out["sync_after_leave"] = code_name(a.call(sync_request(group, gen3, ma), 3).error_code)
    out["describe_empty"] = describe_raw(c, group)
    out["offsets_after_leave"] = fetch_offsets(c, group, t, [0, 1])
    out["commit_empty_group_with_generation"] = commit(c, group, gen3, ma, t, [(0, 8)])
    out["commit_empty_group_outside_protocol"] = commit(c, group, -1, "", t, [(0, 9)])
    out["offset_delete"] = offset_delete(c, group, t, [0, 99])
    out["offset_delete_unknown_group"] = offset_delete(c, common.unique("diff-nogroup"), t, [0])
    out["offsets_after_offset_delete"] = fetch_offsets(c, group, t, [0, 1])
    out["list_groups"] = list_groups(c, group)
    out["describe_unknown_group"] = {f"v{v}": describe_raw(c, common.unique("diff-nogroup"), v) for v in (0, 5, 6)}
    out["delete_groups"] = delete_groups(c, [group, common.unique("diff-nogroup")])
    out["describe_deleted"] = describe_raw(c, group)
    out["offsets_deleted"] = fetch_offsets(c, group, t, [1])
    for x in (a, b, c):
        x.close()
    log(f"  protocol: {json.dumps(out, sort_keys=True)}")
    return out


def fetch_offsets_v8(raw, group, topic, partitions):
    G = OffsetFetchRequest.OffsetFetchRequestGroup
    req = OffsetFetchRequest(groups=[G(group_id=group, member_id=None, member_epoch=-1, topics=[
        G.OffsetFetchRequestTopics(name=topic, partition_indexes=list(partitions))])], require_stable=True)
    r = raw.call(req, 8)
    g = r.groups[0]
    return {"error": code_name(g.error_code),
            "partitions": {str(p.partition_index): [p.committed_offset, code_name(p.error_code)]
                           for t in g.topics for p in t.partitions}}


def offset_delete(raw, group, topic, partitions):
    T = OffsetDeleteRequest.OffsetDeleteRequestTopic
    r = raw.call(OffsetDeleteRequest(group_id=group, topics=[T(name=topic, partitions=[
        T.OffsetDeleteRequestPartition(partition_index=p) for p in partitions])]), 0)
    return {"error": code_name(r.error_code),
            "partitions": {str(p.partition_index): code_name(p.error_code) for t in r.topics for p in t.partitions}}


def delete_groups(raw, groups):
    r = raw.call(DeleteGroupsRequest(groups_names=groups), 2)
    by_id = {x.group_id: code_name(x.error_code) for x in r.results}
    return [by_id.get(g) for g in groups]


def list_groups(raw, group):
    out = {}
    for states in ([], ["Stable"], ["Empty"], ["empty"]):
        r = raw.call(ListGroupsRequest(states_filter=states, types_filter=[]), 4)
        mine = [x for x in r.groups if x.group_id == group]
        out["/".join(states) or "all"] = {"error": code_name(r.error_code),
                                          "listed": [(x.protocol_type, x.group_state) for x in mine]}
    r = raw.call(ListGroupsRequest(states_filter=[], types_filter=["classic"]), 5)
    out["type_classic"] = [(x.group_state, x.group_type) for x in r.groups if x.group_id == group]
    for types in (["consumer"], ["Classic"], ["CLASSIC", "share"]):
        r = raw.call(ListGroupsRequest(states_filter=[], types_filter=types), 5)
        out["types_" + "/".join(types)] = [(x.group_state, x.group_type) for x in r.groups if x.group_id == group]
    return out


def scenario_static_protocol(sc, topic):
    """Static membership by hand: a rejoin without member id takes over the old id, which is
    fenced from then on."""
    out = {}
    group = common.unique("diff-static-protocol")
    instance = f"{group}-i"
    a, c = Raw(sc.args.bootstrap, "raw-static"), Raw(sc.args.bootstrap, "raw-static-admin")
    a.wait_coordinator(group)
    r = a.call(join_request(group, instance=instance, topics=["t"]), 5)
    out["join"] = join_result(r, r.member_id)
    old, gen = r.member_id, r.generation_id
    r = a.call(sync_request(group, gen, old, instance, assignments=[(old, b"static-assignment")]), 3)
    out["sync"] = [code_name(r.error_code), r.assignment.decode()]
    out["heartbeat_wrong_instance"] = heartbeat(a, group, gen, old, f"{group}-other")
    out["heartbeat_without_instance"] = heartbeat(a, group, gen, old)
    # A restarted process: same instance id, no member id.
    r = a.call(join_request(group, instance=instance, topics=["t"]), 5)
    new = r.member_id
    out["rejoin_without_member_id"] = {
        "error": code_name(r.error_code), "same_generation": r.generation_id == gen, "new_member_id": new != old,
        # Before JoinGroup v9 the old leader id comes back, so the returning member does not
        # think it leads and recompute an assignment the group would ignore.
        "leader_is_old_id": r.leader == old, "members": len(r.members)}
    r = a.call(sync_request(group, gen, new, instance), 3)
    out["sync_new_id"] = [code_name(r.error_code), r.assignment.decode()]
    out["heartbeat_old_id"] = heartbeat(a, group, gen, old, instance)
    out["heartbeat_new_id"] = heartbeat(a, group, gen, new, instance)
    out["commit_old_id"] = commit(a, group, gen, old, topic.name, [(0, 1)], instance=instance)
    out["commit_new_id"] = commit(a, group, gen, new, topic.name, [(0, 2)], instance=instance)
    out["commit_new_id_without_instance"] = commit(a, group, gen, new, topic.name, [(0, 3)])
    out["sync_old_id"] = code_name(a.call(sync_request(group, gen, old, instance), 3).error_code)
    out["join_old_id"] = code_name(a.call(join_request(group, old, instance=instance, topics=["t"]), 5).error_code)
    out["leave_old_id"] = leave(a, group, [(old, instance)])
    out["describe"] = describe_raw(c, group)
    out["leave_by_instance"] = leave(c, group, [("", instance)])
    out["heartbeat_after_removal"] = heartbeat(a, group, gen, new, instance)
    out["describe_after_removal"] = describe_raw(c, group)
    # JoinGroup v9: a returning static leader is told it leads but must skip the assignment.
    r = a.call(join_request(group, instance=instance, topics=["t"]), 9)
    first, gen = r.member_id, r.generation_id
    a.call(sync_request(group, gen, first, instance, assignments=[(first, b"v9-assignment")]), 5)
    r = a.call(join_request(group, instance=instance, topics=["t"]), 9)
    out["rejoin_v9"] = {"error": code_name(r.error_code), "same_generation": r.generation_id == gen,
                        "leader_is_new_id": r.leader == r.member_id, "skip_assignment": r.skip_assignment,
                        "members": len(r.members)}
    out["leave_v9_member"] = leave(c, group, [("", instance)])
    # Before v4 a dynamic member joins at once, without MEMBER_ID_REQUIRED.
    old_group = common.unique("diff-join-v3")
    r = a.call(join_request(old_group, topics=["t"]), 3)
    out["join_v3"] = join_result(r, r.member_id)
    out["leave_v3_member"] = leave(c, old_group, [(r.member_id, None)], version=1)
    a.close()
    c.close()
    log(f"  static protocol: {json.dumps(out, sort_keys=True)}")
    return out


def join_sync(raw, group, member_id="", instance=None, topics=("t",), rebalance_ms=10000, session_ms=10000, version=5):
    """A lone member's join (asking for a member id first when dynamic) and sync; returns
    (member id, generation)."""
    req = join_request(group, member_id, instance, topics=topics, session_ms=session_ms)
    req.rebalance_timeout_ms = rebalance_ms
    r = raw.call(req, version)
    if r.error_code == 79:  # MEMBER_ID_REQUIRED
        req.member_id = r.member_id
        r = raw.call(req, version)
    check_eq(code_name(r.error_code), "NONE", f"join of {group}")
    s = raw.call(sync_request(group, r.generation_id, r.member_id, instance,
                              assignments=[(m.member_id, b"x") for m in r.members]), 3)
    check_eq(code_name(s.error_code), "NONE", f"sync of {group}")
    return r.member_id, r.generation_id


def wait_heartbeat(raw, group, generation, member_id, want, what):
    """Heartbeats (as a live member does) until the answer is `want`."""
    dl = Deadline(RT, what)
    while True:
        got = heartbeat(raw, group, generation, member_id)
        if got == want:
            return got
        dl.check(f"heartbeat answered {got}")
        time.sleep(0.2)


def wait_described(raw, group, state, what):
    dl = Deadline(RT, what)
    while True:
        d = describe_raw(raw, group)
        if d["state"] == state:
            return d
        dl.check(f"described as {d}")
        time.sleep(0.2)


def scenario_timeouts(sc, topic):
    """What the coordinator's timers do: a silent member's session ends, a member that does not
    rejoin in time or never sends SyncGroup is dropped, a static member that changes its
    subscription makes the group rebalance. Only outcomes are kept, not when they happened."""
    out = {}
    t = topic.name
    a, b, c = (Raw(sc.args.bootstrap, f"timer-{k}") for k in "abc")

    # A member that stops heartbeating: removed when its session (the 6 s minimum) ends; the
    # group's generation moves on to an empty one.
    group = common.unique("diff-session")
    a.wait_coordinator(group)
    m, gen = join_sync(a, group, topics=[t], session_ms=6000)
    commit(a, group, gen, m, t, [(0, 3)])
    out["session_expired"] = wait_described(c, group, "Empty", "the silent member's session ending")
    out["session_expired_heartbeat"] = heartbeat(a, group, gen, m)
    out["session_expired_commit"] = commit(a, group, gen, m, t, [(0, 4)])
    out["session_expired_offsets"] = fetch_offsets(c, group, t, [0])
    _, gen2 = join_sync(a, group, topics=[t])
    out["session_expired_next_generation"] = gen2 - gen

    # A member that does not rejoin within the rebalance timeout is dropped from the next
    # generation.
    group = common.unique("diff-rejoin")
    a.wait_coordinator(group)
    ma, gen = join_sync(a, group, topics=[t], rebalance_ms=3000)
    req = join_request(group, topics=[t])
    req.rebalance_timeout_ms = 3000
    req.member_id = b.call(req, 5).member_id
    b.send(req, 5)                       # parked until a rejoins, which it never does
    r = b.recv()
    out["not_rejoined"] = {"joined": join_result(r, r.member_id), "generation_step": r.generation_id - gen}
    mb = r.member_id
    b.call(sync_request(group, r.generation_id, mb, assignments=[(mb, b"b")]), 3)
    out["not_rejoined_heartbeat"] = heartbeat(a, group, gen, ma)
    out["not_rejoined_described"] = describe_raw(c, group)
    leave(c, group, [(mb, None)])

    # A follower that never sends SyncGroup: dropped at the rebalance timeout and the group
    # rebalances for the leader, who hears of it from its heartbeat.
    group = common.unique("diff-nosync")
    a.wait_coordinator(group)
    ma, gen = join_sync(a, group, topics=[t], rebalance_ms=3000)
    req = join_request(group, topics=[t])
    req.rebalance_timeout_ms = 3000
    req.member_id = b.call(req, 5).member_id
    mb = req.member_id
    b.send(req, 5)
    time.sleep(0.3)
    req_a = join_request(group, ma, topics=[t])
    req_a.rebalance_timeout_ms = 3000
    ra = a.call(req_a, 5)
    b.recv()
    gen = ra.generation_id
    r = a.call(sync_request(group, gen, ma, assignments=[(ma, b"a"), (mb, b"b")]), 3)
    out["no_sync_leader_synced"] = code_name(r.error_code)
    out["no_sync_leader_heartbeat"] = wait_heartbeat(a, group, gen, ma, "REBALANCE_IN_PROGRESS",
                                                     "the leader hearing of the rebalance")
    ra = a.call(req_a, 5)
    out["no_sync_rejoined"] = {**join_result(ra, ma), "generation_step": ra.generation_id - gen}
    out["no_sync_dropped_heartbeat"] = heartbeat(b, group, gen, mb)
    a.call(sync_request(group, ra.generation_id, ma, assignments=[(ma, b"a")]), 3)
    leave(c, group, [(ma, None)])

    # A simple group (offsets only) becomes a consumer group when someone joins it.
    group = common.unique("diff-simple")
    a.wait_coordinator(group)
    out["simple_commit"] = commit(c, group, -1, "", t, [(0, 2)])
    out["simple_described"] = describe_raw(c, group)
    out["simple_listed"] = list_groups(c, group)["all"]
    m, gen = join_sync(a, group, topics=[t])
    out["simple_joined"] = {"generation": gen, "described": describe_raw(c, group)}
    leave(a, group, [(m, None)])
    out["simple_deleted"] = delete_groups(c, [group])
    out["simple_offsets_after_delete"] = fetch_offsets(c, group, t, [0])

    # Static member rejoining (no member id) with another subscription, and with the same one.
    group = common.unique("diff-static-change")
    instance = f"{group}-i"
    a.wait_coordinator(group)
    m, gen = join_sync(a, group, instance=instance, topics=[t])
    r = a.call(join_request(group, instance=instance, topics=[t, "other"]), 5)
    out["static_changed_subscription"] = {"error": code_name(r.error_code), "generation_step": r.generation_id - gen,
                                          "members": len(r.members)}
    gen = r.generation_id
    a.call(sync_request(group, gen, r.member_id, instance, assignments=[(x.member_id, b"x") for x in r.members]), 3)
    r = a.call(join_request(group, instance=instance, topics=[t, "other"]), 5)
    out["static_same_subscription"] = {"error": code_name(r.error_code), "generation_step": r.generation_id - gen,
                                       "members": len(r.members)}
    leave(c, group, [("", instance)])
    for x in (a, b, c):
        x.close()
    log(f"  timers: {json.dumps(out, sort_keys=True)}")
    return out


# ---------------------------------------------------------------------------------------------
# Across a broker restart


def restart_before(sc, args):
    topic = Topic(sc, "diff-restart", 3)
    topic.produce(10)
    state = {"topic": topic.name, "groups": {}}
    out = {}
    for kind in ("dynamic", "static"):
        group = common.unique(f"diff-restart-{kind}")
        ledger = Ledger(topic)
        m = Member(sc, ledger, f"restart-{kind}", group, topic, "range",
                   instance=f"{group}-i" if kind == "static" else None, session_ms=30000)
        pump(sc, [m], f"the {kind} consumer reading everything", lambda: len(m.owned) == 3 and ledger.all_delivered())
        # Commit a known point (not the end) so resuming is visible.
        m.pos = {p: 4 + p for p in range(3)}
        m.commit()
        m.close()
        state["groups"][kind] = group
        out[kind] = {"committed": sc.committed(group, topic), "described": sc.describe(group)}
    with open(args.state, "w") as f:
        json.dump(state, f)
    log(f"  before the restart: {out}")
    return out


def restart_after(sc, args):
    with open(args.state) as f:
        state = json.load(f)
    topic = Topic(sc, "", 3, name=state["topic"])
    topic.end = {p: 10 for p in range(3)}
    out = {}
    raw = Raw(args.bootstrap, "restart-check")
    for group in state["groups"].values():
        raw.wait_coordinator(group)  # a restarted Kafka loads its groups first
    raw.close()
    for kind in ("dynamic", "static"):
        group = state["groups"][kind]
        out[kind] = {"described": sc.describe(group), "committed": sc.committed(group, topic)}
    topic.produce(2)
    for kind in ("dynamic", "static"):
        group = state["groups"][kind]
        ledger = Ledger(topic)
        ledger.committed = {p: 4 + p for p in range(3)}
        m = Member(sc, ledger, f"restart-{kind}-again", group, topic, "range",
                   instance=f"{group}-i" if kind == "static" else None, session_ms=30000)
        pump(sc, [m], f"the {kind} consumer resuming after the restart",
             lambda: len(m.owned) == 3 and all(m.pos.get(p) == topic.end[p] for p in range(3)))
        m.commit()
        out[kind].update({
            "resumed_at": {str(p): ledger.first.get(p) for p in range(3)},
            "delivered": len(ledger.seen),
            "described_rejoined": sc.describe(group),
            "anomalies": ledger.anomalies,
            "commit_errors": ledger.commit_errors,
        })
        m.close()
        out[kind]["committed_at_end"] = sc.committed(group, topic)
    log(f"  after the restart: {out}")
    return out


# ---------------------------------------------------------------------------------------------


def body(args):
    sc = Scenarios(args)
    if args.phase == "before-restart":
        summary = {"before_restart": restart_before(sc, args)}
    elif args.phase == "after-restart":
        summary = {"after_restart": restart_after(sc, args)}
    else:
        summary = {}
        only = set(args.only.split(",")) if args.only else None
        wanted = lambda name: only is None or name in only
        if wanted("split") or wanted("resume_and_reset"):
            summary["split_range"], (topic, group, ledger) = scenario_split(sc, "range")
        if wanted("split"):
            summary["split_cooperative"], _ = scenario_split(sc, "cooperative-sticky")
        if wanted("resume_and_reset"):
            summary["resume_and_reset"] = scenario_resume_and_reset(sc, topic, group, ledger)
        if wanted("static"):
            summary["static"] = scenario_static(sc)
        if wanted("protocol") or wanted("static_protocol") or wanted("timeouts"):
            topic = Topic(sc, "diff-protocol", 2)
        if wanted("protocol"):
            summary["protocol"] = scenario_protocol(sc, topic)
        if wanted("static_protocol"):
            summary["static_protocol"] = scenario_static_protocol(sc, topic)
        if wanted("timeouts"):
            summary["timeouts"] = scenario_timeouts(sc, topic)
    with open(args.summary, "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
    return f"{', '.join(summary)} written to {args.summary}"


def extra_args(p):
    p.add_argument("--summary", required=True, help="file the JSON summary is written to")
    p.add_argument("--phase", choices=["all", "before-restart", "after-restart"], default="all")
    p.add_argument("--state", help="JSON file passed from phase before-restart to after-restart")
    p.add_argument("--only", help="comma-separated scenarios of phase all to run (default: every one): "
                                  "split, resume_and_reset, static, protocol, static_protocol, timeouts")


if __name__ == "__main__":
    common.run_main(NAME, body, common.parse_args(__doc__.splitlines()[0], extra_args))
