"""Group requests sent by hand for tests/compat/group_scenarios.py: kafka-python's message
classes with pinned versions, one blocking connection per simulated member, and small helpers
that reduce each answer to what two brokers must agree on (error names, no ids)."""

import socket
import struct
import time
from collections import deque

from kafka.errors import for_code
from kafka.protocol.admin.groups import (DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
                                         DescribeGroupsResponse, ListGroupsRequest, ListGroupsResponse)
from kafka.protocol.consumer import (HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
                                     LeaveGroupRequest, LeaveGroupResponse, OffsetCommitRequest,
                                     OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
                                     OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse)
from kafka.protocol.metadata import FindCoordinatorRequest, FindCoordinatorResponse

from common import Deadline, check_eq, fail

RT = 30  # seconds per request


def code_name(code):
    """Kafka's name of a protocol error code (NONE for 0)."""
    return "NONE" if code == 0 else for_code(code).message


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
