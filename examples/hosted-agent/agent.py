"""A hosted A2A agent for Hive, with Python's standard library only.

Hive starts it in its sandbox with HIVE_AGENT_SOCKET set: it serves A2A 1.0 JSON-RPC over HTTP
on that Unix socket (outside Hive, set PORT instead to serve on 127.0.0.1:PORT). It answers
SendMessage and SendStreamingMessage with "echo: <text>", keeps its tasks for GetTask, and on
"fetch <url>" fetches the URL through HTTPS_PROXY/HTTP_PROXY (urllib reads them), sending the
UPSTREAM_TOKEN secret as a bearer token, and answers with the status it got.
"""
import http.server
import json
import os
import socketserver
import sys
import threading
import urllib.error
import urllib.request
import uuid

CARD = {
    "name": "echo",
    "description": "Says back what it is sent.",
    "version": "1.0.0",
    # Hive calls the agent on its socket; the card's URL names the path it posts to.
    "supportedInterfaces": [
        {"url": "http://agent/", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
    ],
    "capabilities": {"streaming": True, "pushNotifications": False},
    "defaultInputModes": ["text/plain"],
    "defaultOutputModes": ["text/plain"],
    "skills": [
        {"id": "echo", "name": "Echo", "description": "Answers with the text it was sent.", "tags": []},
        {"id": "fetch", "name": "Fetch", "description": "fetch <url>", "tags": []},
    ],
}

TASKS = {}
TASKS_LOCK = threading.Lock()


def text_of(message):
    return "".join(part.get("text", "") for part in message.get("parts", []))


def answer(text):
    """The reply to a message's text."""
    if text.startswith("fetch "):
        request = urllib.request.Request(text[len("fetch "):].strip())
        token = os.environ.get("UPSTREAM_TOKEN")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return f"fetched: HTTP {response.status}"
        except urllib.error.HTTPError as error:
            return f"fetched: HTTP {error.code}"
        except OSError as error:
            return f"fetch failed: {error}"
    return f"echo: {text}"


def completed_task(message, reply):
    task_id = str(uuid.uuid4())
    context_id = message.get("contextId") or str(uuid.uuid4())
    agent_message = {
        "messageId": str(uuid.uuid4()),
        "contextId": context_id,
        "taskId": task_id,
        "role": "ROLE_AGENT",
        "parts": [{"text": reply}],
    }
    task = {
        "id": task_id,
        "contextId": context_id,
        "status": {"state": "TASK_STATE_COMPLETED", "message": agent_message},
        "artifacts": [{"artifactId": "answer", "name": "answer", "parts": [{"text": reply}]}],
        "history": [dict(message, taskId=task_id, contextId=context_id)],
    }
    with TASKS_LOCK:
        TASKS[task_id] = task
    return task


def error(request_id, code, message):
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def result(request_id, value):
    return {"jsonrpc": "2.0", "id": request_id, "result": value}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def send_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/.well-known/agent-card.json":
            self.send_json(200, CARD)
        else:
            self.send_json(404, {"error": "not found"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        try:
            request = json.loads(self.rfile.read(length))
        except ValueError:
            self.send_json(200, error(None, -32700, "parse error"))
            return
        request_id = request.get("id")
        method = request.get("method")
        params = request.get("params") or {}
        if method in ("SendMessage", "SendStreamingMessage"):
            message = params.get("message") or {}
            task = completed_task(message, answer(text_of(message)))
            if method == "SendMessage":
                self.send_json(200, result(request_id, {"task": task}))
            else:
                self.stream(request_id, task)
        elif method == "GetTask":
            with TASKS_LOCK:
                task = TASKS.get(params.get("id"))
            if task is None:
                self.send_json(200, error(request_id, -32001, "task not found"))
            else:
                self.send_json(200, result(request_id, task))
        else:
            self.send_json(200, error(request_id, -32601, f"method not found: {method}"))

    def stream(self, request_id, task):
        """The task as Server-Sent Events: working, the answer, completed."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        working = dict(task, status={"state": "TASK_STATE_WORKING"}, artifacts=[])
        events = [
            {"task": working},
            {"artifactUpdate": {"taskId": task["id"], "contextId": task["contextId"],
                                "artifact": task["artifacts"][0], "lastChunk": True}},
            {"statusUpdate": {"taskId": task["id"], "contextId": task["contextId"],
                              "status": task["status"]}},
        ]
        for event in events:
            self.wfile.write(f"data: {json.dumps(result(request_id, event))}\n\n".encode())
            self.wfile.flush()
        self.close_connection = True

    def address_string(self):
        return "hive"  # a Unix socket has no client address

    def log_message(self, format, *args):
        sys.stderr.write("%s\n" % (format % args))


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class TcpServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main():
    socket_path = os.environ.get("HIVE_AGENT_SOCKET")
    if socket_path:
        if os.path.exists(socket_path):
            os.unlink(socket_path)
        server = UnixServer(socket_path, Handler)
        print(f"serving A2A on {socket_path}", file=sys.stderr, flush=True)
    else:
        port = int(os.environ.get("PORT", "8000"))
        server = TcpServer(("127.0.0.1", port), Handler)
        print(f"serving A2A on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
