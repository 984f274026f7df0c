"""The consensus side for a real execution client under test: drives it over its JWT-authenticated Engine
API (engine_forkchoiceUpdatedV2 with payload attributes, engine_getPayloadV2, engine_newPayloadV2, then
forkchoiceUpdated to the new head) once a slot, as a consensus client does after the Merge (Shanghai
payloads; execution-apis `src/engine/shanghai.md`), and serves the standard beacon API endpoints ethnode
reads (`/eth/v1/node/syncing`, `/eth/v1/node/peer_count`, `/eth/v1/beacon/blinded_blocks/head`) from
what it drove. Started in place of `lighthouse bn`: it reads Lighthouse's --execution-endpoint,
--execution-jwt and --http-port. No real consensus client installs here (see TESTING-NOTES.md)."""
import base64, hashlib, hmac, json, sys, threading, time, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def arg(name, default=None):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


engine = arg("--execution-endpoint")
jwt_path = arg("--execution-jwt")
port = int(arg("--http-port"))
slot_secs = 1.0


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")


def token():
    # Engine API authentication (execution-apis `src/engine/authentication.md`): HS256 over an `iat`
    # claim with the shared 32-byte secret, read on every call as a client re-reads a rotated file.
    secret = bytes.fromhex(open(jwt_path).read().strip().removeprefix("0x"))
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"iat": int(time.time())}).encode())
    sig = b64(hmac.new(secret, head + b"." + body, hashlib.sha256).digest())
    return (head + b"." + body + b"." + sig).decode()


def call(method, params):
    req = urllib.request.Request(
        engine,
        json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode(),
        {"Content-Type": "application/json", "Authorization": "Bearer " + token()},
    )
    r = json.loads(urllib.request.urlopen(req, timeout=5).read())
    if "error" in r:
        raise RuntimeError(f"{method}: {r['error']}")
    return r["result"]


state = {"head": None, "number": 0, "ts": 0, "slot": 0, "last": time.time(), "offline": True}


def produce():
    if state["head"] is None:
        b = call("eth_getBlockByNumber", ["latest", False])
        state.update(head=b["hash"], number=int(b["number"], 16), ts=int(b["timestamp"], 16))
    h = state["head"]
    fc = {"headBlockHash": h, "safeBlockHash": h, "finalizedBlockHash": h}
    attrs = {"timestamp": hex(max(int(time.time()), state["ts"] + 1)), "prevRandao": "0x" + "00" * 32,
             "suggestedFeeRecipient": "0x" + "00" * 20, "withdrawals": []}
    pid = call("engine_forkchoiceUpdatedV2", [fc, attrs])["payloadId"]
    payload = call("engine_getPayloadV2", [pid])["executionPayload"]
    status = call("engine_newPayloadV2", [payload])["status"]
    if status != "VALID":
        raise RuntimeError(f"engine_newPayloadV2: {status}")
    h = payload["blockHash"]
    call("engine_forkchoiceUpdatedV2", [{"headBlockHash": h, "safeBlockHash": h, "finalizedBlockHash": h}, None])
    state.update(head=h, number=int(payload["blockNumber"], 16), ts=int(payload["timestamp"], 16), last=time.time())
    state["slot"] += 1


def loop():
    while True:
        try:
            produce()
            state["offline"] = False
        except Exception as e:
            print("engine driver:", e, file=sys.stderr, flush=True)
            state["offline"] = True
            state["head"] = None
        time.sleep(slot_secs)


class Beacon(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        distance = int((time.time() - state["last"]) / slot_secs)
        if self.path == "/eth/v1/node/syncing":
            body = {"data": {"head_slot": str(state["slot"]), "sync_distance": str(distance), "is_syncing": False,
                             "is_optimistic": False, "el_offline": state["offline"]}}
        elif self.path == "/eth/v1/node/peer_count":
            body = {"data": {"disconnected": "0", "connecting": "0", "connected": "1", "disconnecting": "0"}}
        elif self.path == "/eth/v1/beacon/blinded_blocks/head":
            body = {"version": "capella", "execution_optimistic": False, "finalized": False,
                    "data": {"message": {"slot": str(state["slot"]),
                                         "body": {"execution_payload_header": {"block_number": str(state["number"])}}}}}
        else:
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(data)


threading.Thread(target=loop, daemon=True).start()
ThreadingHTTPServer(("127.0.0.1", port), Beacon).serve_forever()
