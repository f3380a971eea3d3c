#!/usr/bin/env python3
"""Writes the binary seed inputs of the netlink fuzz targets into corpus/<target>/.

Each seed is a reply as the kernel sends it (layouts from <linux/ip_vs.h>,
<linux/netfilter/nfnetlink_conntrack.h>, <linux/netlink.h>), so the fuzzer starts from
messages the parsers accept and mutates from there. The text seeds (YAML, JSON, image
references) are plain files written by hand. Run: python3 tests/fuzz/make_seeds.py
"""
import json
import os
import socket
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
NLMSG_ERROR = 2
NLM_F_MULTI = 2
NLM_F_CAPPED = 0x100
NLM_F_ACK_TLVS = 0x200
NLA_F_NESTED = 0x8000


def align(b):
    return b + b"\0" * (-len(b) % 4)


def attr(t, payload):
    return align(struct.pack("<HH", 4 + len(payload), t) + payload)


def nest(t, *attrs):
    body = b"".join(attrs)
    return struct.pack("<HH", 4 + len(body), t | NLA_F_NESTED) + body


def u8(v): return struct.pack("<B", v)
def u16(v): return struct.pack("<H", v)
def u32(v): return struct.pack("<I", v)
def u64(v): return struct.pack("<Q", v)
def be16(v): return struct.pack(">H", v)
def be32(v): return struct.pack(">I", v)


def msg(mtype, body, flags=NLM_F_MULTI, seq=1):
    return align(struct.pack("<IHHII", 16 + len(body), mtype, flags, seq, 0) + body)


def genl(cmd, *attrs):
    return msg(0x1c, struct.pack("<BBH", cmd, 1, 0) + b"".join(attrs))


def nfgen(subsys_msg, family, res_id, *attrs):
    return msg((1 << 8) | subsys_msg, struct.pack("<BBH", family, 0, socket.htons(res_id)) + b"".join(attrs))


def v4(s): return socket.inet_pton(socket.AF_INET, s)
def v6(s): return socket.inet_pton(socket.AF_INET6, s)


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# IPVS (family "IPVS", version 1)
stats64 = nest(12, attr(1, u64(42)), attr(2, u64(1000)), attr(4, u64(64000)))
svc_tcp = genl(1, nest(1, attr(1, u16(socket.AF_INET)), attr(2, u16(6)), attr(3, v4("10.96.0.10") + b"\0" * 12),
                       attr(4, be16(80)), attr(6, b"wrr\0"), attr(7, u32(2) + u32(0xffffffff)),
                       attr(8, u32(10800)), attr(9, u32(0xffffffff)), stats64))
svc_fwmark = genl(1, nest(1, attr(1, u16(socket.AF_INET6)), attr(5, u32(7)), attr(6, b"mh\0"),
                          attr(7, u32(0x30) + u32(0xffffffff)), attr(8, u32(0)), attr(9, u32(128))))
dest = genl(5, nest(2, attr(1, v4("10.244.1.5") + b"\0" * 12), attr(2, be16(8080)), attr(3, u32(0)),
                    attr(4, u32(5)), attr(5, u32(100)), attr(6, u32(10)), attr(7, u32(3)), attr(8, u32(9)),
                    attr(9, u32(1)), attr(11, u16(socket.AF_INET)), stats64))
dest6 = genl(5, nest(2, attr(1, v6("fd00::5")), attr(2, be16(443)), attr(3, u32(3)), attr(4, u32(1)),
                     nest(10, attr(1, u32(7)), attr(2, u32(8)))))
timeouts = genl(13, attr(4, u32(900)), attr(5, u32(120)), attr(6, u32(300)))
write("ipvs_reply", "service-tcp", svc_tcp)
write("ipvs_reply", "service-fwmark6", svc_fwmark)
write("ipvs_reply", "dest-v4", dest)
write("ipvs_reply", "dest-v6-stats32", dest6)
write("ipvs_reply", "timeouts", timeouts)
write("ipvs_reply", "dump-two-services", svc_tcp + svc_fwmark + msg(3, u32(0)))


# ctnetlink
def tuple_(t, src, dst, proto, sport, dport, six=False):
    ip = nest(1, attr(3 if six else 1, src), attr(4 if six else 2, dst))
    p = nest(2, attr(1, u8(proto)), attr(2, be16(sport)), attr(3, be16(dport)))
    return nest(t, ip, p)


entry_udp = nfgen(1, socket.AF_INET, 0,
                  tuple_(1, v4("10.0.0.7"), v4("10.96.0.10"), 17, 40000, 53),
                  tuple_(2, v4("10.0.1.5"), v4("10.0.0.7"), 17, 5353, 40000),
                  attr(3, be32(0x20)), attr(12, be32(77)), attr(18, be16(3)))
entry_tcp6 = nfgen(0, socket.AF_INET6, 0,
                   tuple_(1, v6("fd00::7"), v6("fd00:96::a"), 6, 40001, 443, True),
                   tuple_(2, v6("fd00:1::5"), v6("fd00::7"), 6, 8443, 40001, True),
                   attr(3, be32(0x18e)))
cpu = nfgen(4, 0, 3, *[attr(t, be32(t * 10)) for t in range(1, 17)])
glob = nfgen(5, 0, 0, attr(1, be32(150)), attr(2, be32(262144)))
write("conntrack_reply", "entry-udp", entry_udp)
write("conntrack_reply", "entry-tcp6-new", entry_tcp6)
write("conntrack_reply", "stats-cpu", cpu)
write("conntrack_reply", "stats-global", glob)
write("conntrack_reply", "dump", entry_udp + entry_tcp6 + msg(3, u32(0)))

# NLMSG_ERROR: a plain ACK, an error with a capped echo and an extended-ACK message, an
# error echoing the whole request (not capped) followed by TLVs.
req = struct.pack("<IHHII", 20, 0x1c, 5, 9, 0) + b"\x01\x01\0\0"
write("netlink_ack", "ack", msg(NLMSG_ERROR, struct.pack("<i", 0) + req[:16], flags=NLM_F_CAPPED))
write("netlink_ack", "capped-extack", msg(NLMSG_ERROR, struct.pack("<i", -17) + req[:16] +
                                          attr(1, b"Object exists\0") + attr(2, u32(20)),
                                          flags=NLM_F_CAPPED | NLM_F_ACK_TLVS))
write("netlink_ack", "full-echo-extack", msg(NLMSG_ERROR, struct.pack("<i", -22) + req +
                                             attr(1, b"Invalid argument for chain\0"), flags=NLM_F_ACK_TLVS))
write("netlink_ack", "batch", msg(NLMSG_ERROR, struct.pack("<i", 0) + req[:16], flags=NLM_F_CAPPED, seq=1) +
      msg(NLMSG_ERROR, struct.pack("<i", -1) + req[:16] + attr(1, b"no\0"),
          flags=NLM_F_CAPPED | NLM_F_ACK_TLVS, seq=2))


# CRI runtime.v1 answers (imagepull/proto/api.proto): the first byte picks the message
# (0 Version, 1 ImageStatus, 2 ListImages, 3 ImageFsInfo, 4 PullImage), protobuf wire after.
def varint(v):
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def pb_len(field, payload):
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def pb_int(field, v):
    return varint(field << 3) + varint(v)


def image(id_, tags, digests, size, pinned):
    return (pb_len(1, id_.encode()) + b"".join(pb_len(2, t.encode()) for t in tags) +
            b"".join(pb_len(3, d.encode()) for d in digests) + pb_int(4, size) +
            pb_len(5, pb_int(1, 0)) + pb_len(7, pb_len(1, tags[0].encode() if tags else b"")) + pb_int(8, pinned))


sha = "sha256:" + "ab" * 32
nginx = image(sha, ["docker.io/library/nginx:1.25"], ["docker.io/library/nginx@" + sha], 67_000_000, 0)
pause = image("sha256:" + "cd" * 32, ["registry.k8s.io/pause:3.9"], [], 321_000, 1)
write("cri_response", "version", b"\0" + pb_len(1, b"0.1.0") + pb_len(2, b"containerd") + pb_len(3, b"1.6.20") +
      pb_len(4, b"v1"))
write("cri_response", "status-present", b"\1" + pb_len(1, nginx) + pb_len(2, pb_len(1, b"k") + pb_len(2, b"v")))
write("cri_response", "status-absent", b"\1")
write("cri_response", "list", b"\2" + pb_len(1, nginx) + pb_len(1, pause))
write("cri_response", "fsinfo", b"\3" + pb_len(1, pb_int(1, 1_700_000_000_000_000_000) +
                                              pb_len(2, pb_len(1, b"/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs")) +
                                              pb_len(3, pb_int(1, 5_000_000_000)) + pb_len(4, pb_int(1, 100_000_000_000))))
write("cri_response", "pull", b"\4" + pb_len(1, sha.encode()))


# rtnetlink (<linux/rtnetlink.h>, <linux/if_link.h>, <linux/if_addr.h>): RTM_NEWLINK 16,
# RTM_NEWADDR 20; ifinfomsg (16 bytes) and ifaddrmsg (8 bytes) before the attributes.
def ifinfo(index, *attrs):
    return msg(16, struct.pack("<BBHiII", socket.AF_UNSPEC, 0, 1, index, 0x1043, 0) + b"".join(attrs))


def ifaddr(family, prefix, index, *attrs):
    return msg(20, struct.pack("<BBBBI", family, prefix, 0x80, 0, index) + b"".join(attrs))


link = ifinfo(7, attr(3, b"nodeagent0\0"), attr(4, u32(1500)), nest(18, attr(1, b"dummy\0")))
write("rtnl_reply", "link-dummy", link)
write("rtnl_reply", "link-no-kind", ifinfo(1, attr(3, b"lo\0")))
a4 = ifaddr(socket.AF_INET, 32, 7, attr(1, v4("10.96.0.10")), attr(2, v4("10.96.0.10")), attr(3, b"nodeagent0\0"))
a6 = ifaddr(socket.AF_INET6, 128, 7, attr(1, v6("fd00:96::a")), attr(8, u32(0x80)))
write("rtnl_reply", "addr-v4", a4)
write("rtnl_reply", "addr-v6-no-local", a6)
write("rtnl_reply", "addr-dump", a4 + a6 + msg(3, u32(0)))


# The service proxy's Kubernetes objects (ipvs/kube_objects.h): v1 Service and
# discovery.k8s.io/v1 EndpointSlice as the API server sends them.
def write_json(target, name, obj):
    write(target, name + ".json", json.dumps(obj, separators=(",", ":")).encode())


def meta(name, **extra):
    m = {"name": name, "namespace": "default", "uid": "0b5e6c1e-" + name, "resourceVersion": "4711"}
    m.update(extra)
    return m


write_json("kube_service", "clusterip", {
    "kind": "Service", "apiVersion": "v1", "metadata": meta("web"),
    "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
             "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
                       {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": "dns"}],
             "sessionAffinity": "None", "internalTrafficPolicy": "Cluster"}})
write_json("kube_service", "nodeport-dual-local", {
    "kind": "Service", "metadata": meta("web", labels={"app": "web"},
                                        annotations={"service.kubernetes.io/topology-mode": "Auto"}),
    "spec": {"type": "NodePort", "clusterIPs": ["10.96.0.11", "fd00:96::b"], "ipFamilyPolicy": "PreferDualStack",
             "ports": [{"name": "http", "port": 80, "nodePort": 30080}], "externalTrafficPolicy": "Local",
             "externalIPs": ["203.0.113.7", "2001:db8::7"], "sessionAffinity": "ClientIP",
             "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}}}})
write_json("kube_service", "loadbalancer", {
    "kind": "Service", "metadata": meta("web"),
    "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.12", "ports": [{"port": 443, "nodePort": 31443}],
             "externalTrafficPolicy": "Local", "healthCheckNodePort": 32000,
             "loadBalancerSourceRanges": ["192.0.2.0/24", " 2001:db8::/32 "], "trafficDistribution": "PreferClose"},
    "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.9"}, {"ip": "198.51.100.10", "ipMode": "Proxy"},
                                            {"hostname": "lb.example.com"}]}}})
write_json("kube_service", "headless", {
    "kind": "Service", "metadata": meta("db", labels={"service.kubernetes.io/headless": ""}),
    "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}})
write_json("kube_service", "externalname", {
    "kind": "Service", "metadata": meta("ext", labels={"service.kubernetes.io/service-proxy-name": "other"}),
    "spec": {"type": "ExternalName", "externalName": "example.com"}})
write_json("kube_service", "invalid-port", {
    "kind": "Service", "metadata": meta("bad"),
    "spec": {"clusterIP": "10.96.0.13", "ports": [{"port": 0, "protocol": "ICMP"}, {"port": "80"}]}})

write_json("kube_endpoint_slice", "ipv4", {
    "kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
    "metadata": meta("web-abc12", labels={"kubernetes.io/service-name": "web"},
                     annotations={"endpoints.kubernetes.io/last-change-trigger-time": "2026-12-02T03:04:05Z"}),
    "addressType": "IPv4",
    "ports": [{"name": "http", "protocol": "TCP", "port": 8080}, {"name": "dns", "protocol": "UDP", "port": 5353}],
    "endpoints": [
        {"addresses": ["10.244.1.5"], "conditions": {"ready": True, "serving": True, "terminating": False},
         "nodeName": "node-a", "zone": "zone-1", "hints": {"forZones": [{"name": "zone-1"}]}},
        {"addresses": ["10.244.2.5", "10.244.2.6"], "conditions": {"ready": False, "serving": True, "terminating": True},
         "nodeName": "node-b", "hints": {"forNodes": [{"name": "node-b"}]}},
        {"addresses": ["10.244.3.5"], "nodeName": "node-a"}]})
write_json("kube_endpoint_slice", "ipv6", {
    "kind": "EndpointSlice",
    "metadata": meta("web-v6", labels={"kubernetes.io/service-name": "web"},
                     annotations={"endpoints.kubernetes.io/last-change-trigger-time": "2026-12-02T03:04:05.123456+01:00"}),
    "addressType": "IPv6", "ports": [{"name": "http", "port": 8080}],
    "endpoints": [{"addresses": ["fd00:244::5"], "conditions": {"ready": True}, "nodeName": "node-a"}]})
write_json("kube_endpoint_slice", "fqdn", {
    "kind": "EndpointSlice", "metadata": meta("ext-x", labels={"kubernetes.io/service-name": "ext"}),
    "addressType": "FQDN", "ports": [{"port": 80}], "endpoints": [{"addresses": ["www.example.com"]}]})
write_json("kube_endpoint_slice", "unset-port-wrong-family", {
    "kind": "EndpointSlice", "metadata": meta("web-odd", labels={"kubernetes.io/service-name": "web"}),
    "addressType": "IPv4", "ports": [{"name": "http", "port": None}, {"name": "dns", "protocol": "SCTP"}],
    "endpoints": [{"addresses": ["fd00::1"]}, {"addresses": []}, {"addresses": ["10.244.9.9"], "conditions": {}}]})
