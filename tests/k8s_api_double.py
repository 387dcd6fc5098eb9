"""A test double of the Kubernetes API server: only what the rollout role's drain flow asks of it.

No kube-apiserver can be installed here (../shared/notes/kubernetes.md, "Testing without a cluster"),
so the drain flow (kubernetes.core.k8s_info and k8s_drain through the real kubernetes client) is
tested against this: Nodes (read, list, patch of spec.unschedulable), Pods (list by node and label
selector, read), and the Eviction subresource, which refuses evictions the way a PodDisruptionBudget
does (HTTP 429, the API server's message) as many times as a pod's ``refusals`` says. Every request is
recorded, so a test can check which calls were made and in what order. It is not a Kubernetes: no
scheduling, no controllers recreating pods, no authentication (any token is taken).
"""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PDB_MESSAGE = "Cannot evict pod as it would violate the pod's disruption budget."

API_RESOURCES = {
    "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1",
    "resources": [
        {"name": "nodes", "singularName": "node", "namespaced": False, "kind": "Node",
         "verbs": ["get", "list", "patch", "update", "watch"]},
        {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
         "verbs": ["get", "list", "delete", "watch"]},
        {"name": "pods/eviction", "singularName": "", "namespaced": True, "kind": "Eviction", "group": "policy",
         "version": "v1", "verbs": ["create"]},
    ],
}


def pod(name, node, *, namespace="default", labels=None, owner="ReplicaSet", refusals=0, empty_dir=False):
    """A pod of the double's state: ``refusals`` evictions are refused (PodDisruptionBudget) before one succeeds."""
    return {"name": name, "namespace": namespace, "node": node, "labels": labels or {}, "owner": owner,
            "refusals": refusals, "empty_dir": empty_dir}


class ApiDouble(object):
    """Start with ``with ApiDouble(nodes={"n1": False}, pods=[pod(...)]) as api:``; ``api.kubeconfig(path)``
    writes a kubeconfig for it; ``api.calls`` lists (method, path, query) in order; ``api.nodes`` maps a
    node's name to whether it is unschedulable."""

    def __init__(self, nodes, pods=()):
        self.nodes = dict(nodes)
        self.pods = [dict(p) for p in pods]
        self.calls = []
        self.lock = threading.Lock()
        self.server = None

    def __enter__(self):
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self):
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null") if length else None
                query = dict((k, v[0]) for k, v in parse_qs(url.query).items())
                with double.lock:
                    double.calls.append((self.command, url.path, query))
                    status, answer = double.answer(self.command, url.path, query, body)
                self._answer(status, answer)

            do_GET = do_PATCH = do_POST = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def kubeconfig(self, path):
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "double",
            "clusters": [{"name": "double", "cluster": {"server": self.url}}],
            "users": [{"name": "double", "user": {"token": "test-double"}}],
            "contexts": [{"name": "double", "context": {"cluster": "double", "user": "double"}}],
        }))
        return str(path)

    def writes(self):
        """The calls that change something, as short words: cordon/uncordon NODE, evict NS/POD."""
        out = []
        for method, path, _query in self.calls:
            node = re.match(r"^/api/v1/nodes/([^/]+)$", path)
            evict = re.match(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/eviction$", path)
            if method == "PATCH" and node:
                out.append(("patch", node.group(1)))
            elif method == "POST" and evict:
                out.append(("evict", "%s/%s" % evict.groups()))
        return out

    # --- the API -------------------------------------------------------------------------------
    def _node(self, name):
        return {"kind": "Node", "apiVersion": "v1", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                "spec": {"unschedulable": True} if self.nodes[name] else {}, "status": {"conditions": []}}

    def _pod(self, item):
        spec = {"nodeName": item["node"], "containers": [{"name": "main", "image": "example/app:1"}]}
        if item["empty_dir"]:
            spec["volumes"] = [{"name": "scratch", "emptyDir": {}}]
        meta = {"name": item["name"], "namespace": item["namespace"], "labels": item["labels"]}
        if item["owner"]:
            meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": item["owner"], "name": item["name"] + "-owner",
                                        "uid": "uid-" + item["name"], "controller": True}]
        return {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": spec, "status": {"phase": "Running"}}

    @staticmethod
    def _status(code, reason, message):
        return code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message,
                      "code": code}

    def answer(self, method, path, query, body):
        if path == "/version":
            return 200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0-gpunode-test-double"}
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if path == "/apis":
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}
        if path == "/api/v1":
            return 200, API_RESOURCES
        if path == "/api/v1/nodes" and method == "GET":
            return 200, {"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": [self._node(n) for n in self.nodes]}
        match = re.match(r"^/api/v1/nodes/([^/]+)$", path)
        if match:
            name = match.group(1)
            if name not in self.nodes:
                return self._status(404, "NotFound", 'nodes "%s" not found' % name)
            if method == "PATCH":
                self.nodes[name] = bool(((body or {}).get("spec") or {}).get("unschedulable"))
            return 200, self._node(name)
        if path == "/api/v1/pods" and method == "GET":
            chosen = [p for p in self.pods if self._selected(p, query)]
            return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [self._pod(p) for p in chosen]}
        match = re.match(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)(/eviction)?$", path)
        if match:
            namespace, name, eviction = match.groups()
            found = [p for p in self.pods if p["namespace"] == namespace and p["name"] == name]
            if not found:
                return self._status(404, "NotFound", 'pods "%s" not found' % name)
            if eviction and method == "POST":
                if found[0]["refusals"] > 0:
                    found[0]["refusals"] -= 1
                    return self._status(429, "TooManyRequests", PDB_MESSAGE)
                self.pods.remove(found[0])
                return 201, {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}
            return 200, self._pod(found[0])
        return self._status(404, "NotFound", "the test double does not serve %s %s" % (method, path))

    @staticmethod
    def _selected(item, query):
        field = query.get("fieldSelector", "")
        if field.startswith("spec.nodeName=") and item["node"] != field.split("=", 1)[1]:
            return False
        for term in filter(None, query.get("labelSelector", "").split(",")):
            key, _sep, value = term.partition("=")
            if item["labels"].get(key) != value:
                return False
        return True
