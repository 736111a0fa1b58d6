#!/usr/bin/env python3
"""Servers for the fetch tests, on 127.0.0.1 only.

token PORT DIR ISSUER SERVICE USER PASSWORD EXPIRES
    A Bearer token server for docker-registry's `auth: token`: checks Basic credentials
    (USER "-" allows anonymous), signs RS256 JWTs with DIR/key.pem, carrying DIR/cert.pem
    in x5c. Counts requests in DIR/token-requests. Also the OAuth2 form POST of
    docker/distribution's docs/spec/auth/oauth.md: grant_type=password (USER/PASSWORD; with
    access_type=offline the answer carries a refresh_token) and grant_type=refresh_token
    (a refresh token it issued, or one written in DIR/refresh-tokens, a line each),
    answering access_token. Each POST is logged to DIR/token-requests as
    "POST grant_type=G client_id=C service=S scope=SCOPE".
proxy PORT UPSTREAM DIR [STORAGE]
    A fault-injecting HTTP proxy in front of a registry. Fault "redirect" answers a request
    with 307 to http://localhost:PORT/_proxy/raw/PATH, which serves PATH from STORAGE (a
    registry without auth, standing for blob storage) and logs "RAW PATH auth=yes|no". POST /_proxy/fault with JSON
    {"match": "substring of the path", "kind": "status500|status429|truncate|wrong|slow|drop|stall",
     "times": N} arms a fault ("stall": no answer for 10 minutes); GET /_proxy/log returns every request line seen
    ("METHOD PATH RANGE auth=yes|no"), DELETE /_proxy/log clears it.
    With PROXY_RATE=BYTES_PER_SECOND in the environment, every body it relays shares one link
    of that bandwidth (a token bucket over all connections), streamed in 64 KiB pieces.
"""
import base64, http.client, http.server, json, os, socketserver, subprocess, sys, threading, time, uuid


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def token_server(port, d, issuer, service, user, password, expires):
    cert_der = subprocess.run(["openssl", "x509", "-in", f"{d}/cert.pem", "-outform", "DER"],
                              check=True, capture_output=True).stdout
    issued_refresh = {}  # refresh token -> user
    lock = threading.Lock()

    def jwt(who, scopes):
        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "x5c": [base64.b64encode(cert_der).decode()]}
        claims = {"iss": issuer, "sub": who or "", "aud": service, "exp": now + expires,
                  "nbf": now - 5, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        signing = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", f"{d}/key.pem"],
                             input=signing.encode(), check=True, capture_output=True).stdout
        return signing + "." + b64url(sig)

    def refresh_user(tok):
        with lock:
            if tok in issued_refresh:
                return issued_refresh[tok]
        try:
            with open(f"{d}/refresh-tokens") as f:
                if tok in (l.strip() for l in f):
                    return user
        except FileNotFoundError:
            pass
        return None

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def answer(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            with open(f"{d}/token-requests", "a") as f:
                f.write(self.path + "\n")
            auth = self.headers.get("Authorization", "")
            who = None
            if auth.startswith("Basic "):
                u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
                if u == user and p == password:
                    who = u
            if who is None and user != "-":
                return self.answer(401, {"details": "incorrect username or password"})
            from urllib.parse import urlparse, parse_qs
            q = parse_qs(urlparse(self.path).query)
            self.answer(200, {"token": jwt(who, q.get("scope", [])), "expires_in": expires})

        def do_POST(self):
            from urllib.parse import parse_qs
            form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode())
            get = lambda k: form.get(k, [""])[0]
            with open(f"{d}/token-requests", "a") as f:
                f.write(f"POST grant_type={get('grant_type')} client_id={get('client_id')} "
                        f"service={get('service')} scope={get('scope')}\n")
            if get("service") != service or not get("client_id"):
                return self.answer(400, {"error": "invalid_request"})
            reply = {"expires_in": expires}
            if get("grant_type") == "password":
                if get("username") != user or get("password") != password:
                    return self.answer(401, {"error": "invalid_grant"})
                who = user
                if get("access_type") == "offline":
                    tok = uuid.uuid4().hex
                    with lock:
                        issued_refresh[tok] = who
                    reply["refresh_token"] = tok
            elif get("grant_type") == "refresh_token":
                who = refresh_user(get("refresh_token"))
                if who is None:
                    return self.answer(401, {"error": "invalid_grant"})
            else:
                return self.answer(400, {"error": "unsupported_grant_type"})
            reply["access_token"] = jwt(who, get("scope").split() if get("scope") else [])
            self.answer(200, reply)

    Server(("127.0.0.1", port), H).serve_forever()


def proxy(port, upstream, d, storage=None):
    faults = []
    log = []
    lock = threading.Lock()
    rate = float(os.environ.get("PROXY_RATE", "0"))
    link = {"free_at": 0.0}  # when the shared link is next idle
    link_lock = threading.Lock()

    def pace(n):
        """Waits until n more bytes fit the shared link."""
        with link_lock:
            start = max(time.monotonic(), link["free_at"])
            link["free_at"] = start + n / rate
            done = link["free_at"]
        delay = done - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Go servers (distribution, Docker Hub) set TCP_NODELAY: without it a body written after its
        # headers waits out the client's delayed ACK, 40 ms a response.
        disable_nagle_algorithm = True

        def log_message(self, *a):
            pass

        def reply(self, code, body=b"", headers=()):
            self.send_response(code)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def control(self):
            if self.command == "POST" and self.path == "/_proxy/fault":
                f = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    faults.append(f)
                return self.reply(200)
            if self.path == "/_proxy/log":
                with lock:
                    if self.command == "DELETE":
                        log.clear()
                        faults.clear()
                    body = "".join(l + "\n" for l in log).encode()
                return self.reply(200, body)
            self.reply(404)

        def take_fault(self):
            with lock:
                for f in faults:
                    if f["match"] in self.path and f.get("times", 1) > 0:
                        f["times"] = f.get("times", 1) - 1
                        return f["kind"]
            return None

        def forward(self):
            if self.path.startswith("/_proxy/raw/"):
                path = self.path[len("/_proxy/raw"):]
                with lock:
                    log.append(f"RAW {path} auth={'yes' if self.headers.get('Authorization') else 'no'}")
                conn = http.client.HTTPConnection(storage, timeout=60)
                conn.request("GET", path)
                r = conn.getresponse()
                return self.reply(r.status, r.read(), [("Content-Type", r.getheader("Content-Type", ""))])
            if self.path.startswith("/_proxy/"):
                return self.control()
            with lock:
                auth = "yes" if self.headers.get("Authorization") else "no"
                log.append(f"{self.command} {self.path} {self.headers.get('Range', '-')} auth={auth}")
            kind = self.take_fault()
            if kind == "drop":
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if kind == "redirect":
                return self.reply(307, b"", [("Location", f"http://localhost:{port}/_proxy/raw{self.path}")])
            if kind in ("status500", "status429"):
                code = 500 if kind == "status500" else 429
                return self.reply(code, b'{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}',
                                  [("Retry-After", "1")] if code == 429 else [])
            if kind == "stall":  # the request is taken, and nothing comes back
                time.sleep(600)
                return
            conn = http.client.HTTPConnection(upstream, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            conn.request(self.command, self.path, headers=headers)
            r = conn.getresponse()
            if rate > 0 and kind is None:  # a link of limited bandwidth: streamed, paced
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding"):
                        self.send_header(k, v)
                self.end_headers()
                while self.command != "HEAD":
                    piece = r.read(65536)
                    if not piece:
                        break
                    pace(len(piece))
                    self.wfile.write(piece)
                return
            body = r.read() if self.command != "HEAD" else b""
            if kind == "wrong" and len(body) > 10:
                i = len(body) // 2
                body = body[:i] + bytes([body[i] ^ 0xFF]) + body[i + 1:]
            self.send_response(r.status)
            for k, v in r.getheaders():
                if k.lower() not in ("connection", "transfer-encoding"):
                    self.send_header(k, v)
            self.end_headers()
            if kind == "truncate":
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if kind == "slow":
                for i in range(0, len(body), 16384):
                    self.wfile.write(body[i:i + 16384])
                    self.wfile.flush()
                    time.sleep(0.02)
                return
            self.wfile.write(body)

        do_GET = do_HEAD = do_POST = do_DELETE = forward

    Server(("127.0.0.1", port), H).serve_forever()


if __name__ == "__main__":
    if sys.argv[1] == "token":
        token_server(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7], int(sys.argv[8]))
    elif sys.argv[1] == "proxy":
        proxy(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5] if len(sys.argv) > 5 else None)
