#!/usr/bin/env python3
# Only for what a real kube-apiserver cannot do on demand (429 + Retry-After, 5xx, slow answers, dropped connections: tests/kube/faults_test.cpp); all else runs against the real one (tests/k8s).
"""A Kubernetes API test server: the subset nodeagent uses, implemented faithfully.

TLS (certificate and key given by the test, which makes its own CA), bearer-token auth,
GET/LIST/WATCH of nodes (chunked JSON events, BOOKMARKs, 410 Gone for compacted versions,
timeoutSeconds), PATCH of nodes/NAME/status (strategic merge patch: lists with a patch
merge key such as status.conditions merge on `type`, `$patch: delete` removes an item,
null removes a key; JSON merge patch replaces lists, as the real server does), core/v1
Events (create, patch, list) and coordination.k8s.io Leases (kubelet's heartbeat, for the
benchmark baseline).

Test control, without auth, under /_test/: faults (status such as 429 with Retry-After or
500, delay, dropped connection; matched by method and path regex, for N requests),
accepted tokens, dropping every open watch, compacting history (so old versions get 410),
the request log and counters.

Only python3's standard library is used.
"""
import argparse
import copy
import datetime
import json
import os
import re
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MERGE_KEYS = {("status", "conditions"): "type", ("status", "addresses"): "type"}
CONDITION_STATUSES = ("True", "False", "Unknown")


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_obj(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class PatchError(Exception):
    pass


def strategic_merge(orig, patch, path=()):
    """Strategic merge patch of JSON values, for the fields nodes and events have."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = copy.deepcopy(orig) if isinstance(orig, dict) else {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$retainKeys", "$patch"):
            continue
        if key.startswith("$"):
            raise PatchError("unknown patch directive " + key)
        if value is None:
            result.pop(key, None)
            continue
        sub = path + (key,)
        if isinstance(value, list) and sub in MERGE_KEYS:
            result[key] = merge_list(result.get(key) or [], value, MERGE_KEYS[sub], sub)
        elif isinstance(value, dict):
            result[key] = strategic_merge(result.get(key), value, sub)
        else:
            result[key] = copy.deepcopy(value)
    return result


def merge_list(orig, patch, merge_key, path):
    out = copy.deepcopy(orig)
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise PatchError("%s: every item needs the merge key %r" % (".".join(path), merge_key))
        key = item[merge_key]
        idx = next((i for i, o in enumerate(out) if isinstance(o, dict) and o.get(merge_key) == key), None)
        directive = item.get("$patch")
        if directive == "delete":
            if idx is not None:
                del out[idx]
            continue
        if directive not in (None, "merge"):
            raise PatchError("unsupported $patch %r in list" % directive)
        if idx is None:
            out.append(strategic_merge({}, item, path))
        else:
            out[idx] = strategic_merge(out[idx], item, path)
    return out


def json_merge(orig, patch):
    """RFC 7386 JSON merge patch: lists are replaced whole (this is what wipes others' conditions)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(orig) if isinstance(orig, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = json_merge(result.get(k), v)
    return result


class State:
    def __init__(self, args):
        self.lock = threading.Condition()
        self.rv = 100
        self.nodes = {}
        self.events = {}
        self.leases = {}
        self.history = []  # (rv, type, node) for watches
        self.floor = 0  # versions below it were compacted: 410 Gone
        self.tokens = set(args.token)
        self.faults = []
        self.log = []
        self.log_bodies = not args.no_log_bodies
        self.counters = {}
        self.watch_socks = set()
        self.bookmark_interval = args.bookmark_interval
        self.history_limit = args.history
        with self.lock:
            for name in args.node:
                self.add_node(name)

    def next_rv(self):
        self.rv += 1
        return str(self.rv)

    def add_node(self, name, labels=None):
        node = {"kind": "Node", "apiVersion": "v1",
                "metadata": {"name": name, "uid": "uid-" + name, "resourceVersion": "",
                             "labels": labels or {"kubernetes.io/hostname": name},
                             "creationTimestamp": now_rfc3339()},
                "spec": {},
                "status": {"conditions": [
                    {"type": "Ready", "status": "True", "reason": "KubeletReady",
                     "message": "kubelet is posting ready status",
                     "lastHeartbeatTime": now_rfc3339(), "lastTransitionTime": now_rfc3339()}],
                    "addresses": [{"type": "InternalIP", "address": "10.0.0.1"},
                                  {"type": "Hostname", "address": name}],
                    "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"}}}
        self.store_node(node, "ADDED")
        return node

    def store_node(self, node, typ):
        node["metadata"]["resourceVersion"] = self.next_rv()
        self.nodes[node["metadata"]["name"]] = node
        self.history.append((int(node["metadata"]["resourceVersion"]), typ, copy.deepcopy(node)))
        if len(self.history) > self.history_limit:
            drop = len(self.history) - self.history_limit
            self.floor = self.history[drop - 1][0]
            del self.history[:drop]
        self.lock.notify_all()

    def count(self, key):
        self.counters[key] = self.counters.get(key, 0) + 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-api-test-server"

    def log_message(self, fmt, *args):  # quiet
        pass

    @property
    def st(self):
        return self.server.state

    # -- plumbing -------------------------------------------------------------
    def record(self, code):
        # Logged before the answer leaves, so a client that got it sees it in the log.
        self._status = code
        entry, self._entry = getattr(self, "_entry", None), None
        if entry is not None:
            entry["status"] = code
            with self.st.lock:
                self.st.log.append(entry)
                self.st.count("%s %d" % (entry["method"], code))

    def send_json(self, code, obj, extra_headers=None):
        body = json.dumps(obj).encode()
        self.record(code)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def fail(self, code, reason, message, extra=None):
        self.send_json(code, status_obj(code, reason, message), extra)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def dispatch(self, method):
        self._status = 0
        self._entry = None
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        body = self.read_body()
        if path.startswith("/_test/"):
            return self.control(method, path, body)
        entry = {"t": time.time(), "method": method, "path": path, "query": query,
                 "content_type": self.headers.get("Content-Type", ""), "status": 0}
        if self.st.log_bodies and body:
            entry["body"] = body.decode(errors="replace")
        if method == "GET" and query.get("watch") in ("1", "true"):
            entry["method"] = "WATCH"
        self._entry = entry
        try:
            self.serve(method, path, query, body, entry)
        finally:
            self.record(self._status)

    def serve(self, method, path, query, body, entry):
        auth = self.headers.get("Authorization", "")
        with self.st.lock:
            ok = auth.startswith("Bearer ") and auth[7:] in self.st.tokens
        entry["auth"] = ok
        if not ok:
            return self.fail(401, "Unauthorized", "Unauthorized")
        fault = self.take_fault(method, path)
        if fault:
            if fault.get("delay_ms"):
                time.sleep(fault["delay_ms"] / 1000.0)
            if fault.get("drop"):
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault.get("status"):
                extra = {}
                if fault.get("retry_after") is not None:
                    extra["Retry-After"] = str(fault["retry_after"])
                code = fault["status"]
                reason = {429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
                          410: "Expired", 403: "Forbidden"}.get(code, "Unknown")
                return self.fail(code, reason, "injected fault", extra)
        m = re.fullmatch(r"/api/v1/nodes(?:/([^/]+)(/status)?)?", path)
        if m:
            return self.nodes(method, m.group(1), m.group(2), query, body)
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/events(?:/([^/]+))?", path)
        if m:
            return self.events(method, m.group(1), m.group(2), body)
        m = re.fullmatch(r"/apis/coordination.k8s.io/v1/namespaces/([^/]+)/leases/([^/]+)", path)
        if m:
            return self.leases(method, m.group(1), m.group(2), body)
        return self.fail(404, "NotFound", "the server could not find the requested resource")

    def take_fault(self, method, path):
        with self.st.lock:
            for f in self.st.faults:
                if f.get("method") not in (None, "", method) and not (
                        f.get("method") == "WATCH" and method == "GET" and "watch=" in self.path):
                    continue
                if f.get("path") and not re.search(f["path"], path):
                    continue
                if f.get("count", -1) == 0:
                    continue
                if f.get("count", -1) > 0:
                    f["count"] -= 1
                return dict(f)
        return None

    # -- nodes ---------------------------------------------------------------
    def selected(self, query):
        sel = query.get("fieldSelector", "")
        names = None
        for part in filter(None, sel.split(",")):
            k, _, v = part.partition("=")
            if k != "metadata.name":
                raise PatchError("field selector %s not supported" % k)
            names = {v.lstrip("=")}
        return names

    def nodes(self, method, name, sub, query, body):
        st = self.st
        if name is None:
            if method != "GET":
                return self.fail(405, "MethodNotAllowed", "only GET on the collection")
            try:
                names = self.selected(query)
            except PatchError as e:
                return self.fail(400, "BadRequest", str(e))
            if query.get("watch") in ("1", "true"):
                return self.watch(names, query)
            with st.lock:
                items = [copy.deepcopy(n) for k, n in sorted(st.nodes.items()) if names is None or k in names]
                rv = str(st.rv)
            return self.send_json(200, {"kind": "NodeList", "apiVersion": "v1",
                                        "metadata": {"resourceVersion": rv}, "items": items})
        with st.lock:
            node = st.nodes.get(name)
            if node is None:
                return self.fail(404, "NotFound", 'nodes "%s" not found' % name)
            if method == "GET":
                return self.send_json(200, copy.deepcopy(node))
            if method != "PATCH":
                return self.fail(405, "MethodNotAllowed", "only GET and PATCH")
            ctype = self.headers.get("Content-Type", "").split(";")[0].strip()
            try:
                patch = json.loads(body or b"null")
                if not isinstance(patch, dict):
                    raise PatchError("patch must be a JSON object")
                if ctype == "application/strategic-merge-patch+json":
                    new = strategic_merge(node, patch)
                elif ctype == "application/merge-patch+json":
                    new = json_merge(node, patch)
                else:
                    return self.fail(415, "UnsupportedMediaType", "unsupported patch type " + ctype)
            except (ValueError, PatchError) as e:
                return self.fail(400, "BadRequest", str(e))
            if sub == "/status":  # the status subresource changes status only
                keep = copy.deepcopy(node)
                keep["status"] = new.get("status", {})
                new = keep
            for c in new.get("status", {}).get("conditions", []):
                if not c.get("type") or c.get("status") not in CONDITION_STATUSES:
                    return self.fail(422, "Invalid", 'Node "%s" is invalid: status.conditions: type and status '
                                     "(True, False, Unknown) are required" % name)
            new["metadata"]["resourceVersion"] = node["metadata"]["resourceVersion"]
            if new != node:  # a no-op patch is not written (no new version, no watch event)
                st.store_node(new, "MODIFIED")
            else:
                st.count("noop-patch")
            return self.send_json(200, copy.deepcopy(st.nodes[name]))

    def watch(self, names, query):
        st = self.st
        rv = query.get("resourceVersion", "")
        bookmarks = query.get("allowWatchBookmarks") in ("1", "true")
        timeout = float(query.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        self.record(200)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sock = self.connection
        with st.lock:
            st.watch_socks.add(sock)
        try:
            def send(obj):
                data = (json.dumps(obj) + "\n").encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            with st.lock:
                pending = []
                if rv in ("", "0"):
                    pos = st.rv
                    pending = [("ADDED", copy.deepcopy(n)) for k, n in sorted(st.nodes.items())
                               if names is None or k in names]
                else:
                    pos = int(rv)
                    if pos < st.floor:
                        pending = None
            if pending is None:
                send({"type": "ERROR", "object": status_obj(
                    410, "Expired", "too old resource version: %d (%d)" % (pos, st.floor))})
                self.wfile.write(b"0\r\n\r\n")
                return
            for typ, obj in pending:
                send({"type": typ, "object": obj})
            next_bookmark = time.monotonic() + st.bookmark_interval
            while True:
                with st.lock:
                    if sock not in st.watch_socks:
                        return  # dropped by the test
                    # An open watch keeps streaming across a compaction, as the API
                    # server's watch cache does; only new watches from old versions get 410.
                    batch = [(r, t, o) for r, t, o in st.history if r > pos]
                    if batch == []:
                        wait = min(deadline, next_bookmark if bookmarks else deadline) - time.monotonic()
                        if wait > 0:
                            st.lock.wait(wait)
                        batch = [(r, t, o) for r, t, o in st.history if r > pos]
                    cur = st.rv
                    if sock not in st.watch_socks:
                        return
                for r, t, o in batch:
                    pos = r
                    if names is None or o["metadata"]["name"] in names:
                        send({"type": t, "object": o})
                now = time.monotonic()
                if now >= deadline:
                    break
                if bookmarks and now >= next_bookmark:
                    pos = max(pos, cur)
                    send({"type": "BOOKMARK", "object": {"kind": "Node", "apiVersion": "v1",
                                                         "metadata": {"resourceVersion": str(pos)}}})
                    next_bookmark = now + st.bookmark_interval
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError, ValueError):
            self.close_connection = True
        finally:
            with st.lock:
                st.watch_socks.discard(sock)

    # -- events and leases ------------------------------------------------------
    def events(self, method, ns, name, body):
        st = self.st
        with st.lock:
            if name is None:
                if method == "GET":
                    items = [copy.deepcopy(e) for (n, _), e in sorted(st.events.items()) if n == ns]
                    return self.send_json(200, {"kind": "EventList", "apiVersion": "v1",
                                                "metadata": {"resourceVersion": str(st.rv)}, "items": items})
                if method != "POST":
                    return self.fail(405, "MethodNotAllowed", "only GET and POST")
                try:
                    ev = json.loads(body)
                except ValueError as e:
                    return self.fail(400, "BadRequest", str(e))
                ev_name = ev.get("metadata", {}).get("name")
                if not ev_name or not ev.get("involvedObject", {}).get("name") or not ev.get("reason"):
                    return self.fail(422, "Invalid", "metadata.name, involvedObject.name and reason are required")
                if (ns, ev_name) in st.events:
                    return self.fail(409, "AlreadyExists", 'events "%s" already exists' % ev_name)
                ev["metadata"]["namespace"] = ns
                ev["metadata"]["resourceVersion"] = st.next_rv()
                ev["metadata"]["uid"] = "ev-" + ev["metadata"]["resourceVersion"]
                st.events[(ns, ev_name)] = ev
                return self.send_json(201, ev)
            ev = st.events.get((ns, name))
            if ev is None:
                return self.fail(404, "NotFound", 'events "%s" not found' % name)
            if method == "GET":
                return self.send_json(200, ev)
            if method != "PATCH":
                return self.fail(405, "MethodNotAllowed", "only GET and PATCH")
            try:
                new = strategic_merge(ev, json.loads(body))
            except (ValueError, PatchError) as e:
                return self.fail(400, "BadRequest", str(e))
            new["metadata"]["resourceVersion"] = st.next_rv()
            st.events[(ns, name)] = new
            return self.send_json(200, new)

    def leases(self, method, ns, name, body):
        st = self.st
        with st.lock:
            if method == "GET":
                if (ns, name) not in st.leases:
                    return self.fail(404, "NotFound", 'leases "%s" not found' % name)
                return self.send_json(200, st.leases[(ns, name)])
            if method != "PUT":
                return self.fail(405, "MethodNotAllowed", "only GET and PUT")
            try:
                lease = json.loads(body)
            except ValueError as e:
                return self.fail(400, "BadRequest", str(e))
            lease.setdefault("metadata", {})["resourceVersion"] = st.next_rv()
            st.leases[(ns, name)] = lease
            return self.send_json(200, lease)

    # -- test control ------------------------------------------------------------
    def control(self, method, path, body):
        st = self.st
        try:
            arg = json.loads(body) if body else {}
        except ValueError as e:
            return self.fail(400, "BadRequest", str(e))
        with st.lock:
            if path == "/_test/faults" and method == "POST":
                st.faults = arg.get("rules", [])
                return self.send_json(200, {"rules": st.faults})
            if path == "/_test/tokens" and method == "POST":
                st.tokens = set(arg.get("tokens", []))
                return self.send_json(200, {"tokens": len(st.tokens)})
            if path == "/_test/compact" and method == "POST":
                # Another write moves the version on; everything before it is forgotten.
                st.rv += 1
                st.floor = st.rv
                st.history.clear()
                if not arg.get("drop_watches"):
                    return self.send_json(200, {"floor": st.floor})
            if path in ("/_test/drop_watches", "/_test/compact") and method == "POST":
                socks = list(st.watch_socks)
                st.watch_socks.clear()
                st.lock.notify_all()
                for s in socks:
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return self.send_json(200, {"dropped": len(socks)})
            if path == "/_test/nodes" and method == "POST":
                return self.send_json(200, st.add_node(arg["name"]))
            if path == "/_test/requests" and method == "GET":
                return self.send_json(200, {"requests": st.log})
            if path == "/_test/requests" and method == "DELETE":
                st.log = []
                return self.send_json(200, {})
            if path == "/_test/stats" and method == "GET":
                return self.send_json(200, {"counters": st.counters, "rv": st.rv, "watches": len(st.watch_socks),
                                            "nodes": len(st.nodes), "events": len(st.events)})
        return self.fail(404, "NotFound", "no such test endpoint")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def handle_error(self, request, client_address):  # quiet on dropped clients
        pass


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file", required=True, help="written with the bound port once serving")
    p.add_argument("--token", action="append", default=[], help="accepted bearer token (repeatable)")
    p.add_argument("--node", action="append", default=[], help="node to create at start (repeatable)")
    p.add_argument("--bookmark-interval", type=float, default=1.0)
    p.add_argument("--history", type=int, default=10000, help="watch events kept before compaction")
    p.add_argument("--no-log-bodies", action="store_true")
    args = p.parse_args()
    srv = Server(("127.0.0.1", args.port), Handler)
    srv.state = State(args)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.set_alpn_protocols(["http/1.1"])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, args.port_file)
    try:
        srv.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
