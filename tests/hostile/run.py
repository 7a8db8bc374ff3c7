#!/usr/bin/env python3
"""imgd hostile-input suite.

Starts `imgd serve` on 127.0.0.1 (restarting it if a request kills it, so every case still runs
and each crash is counted), uploads Pillow's Tests/images and generated bombs, asks for
originals and variants (the largest sizes with every fit included), fires concurrent batches of
the worst requests and a few slow clients, then asserts:

  * no 5xx and no request without an answer;
  * every 4xx carries a JSON body whose `code` is one of the README's stable codes;
  * no response larger than --max-response-bytes (default 50 MB);
  * uploads that must be refused are refused (huge headers, too many frames);
  * the server never died (crashes == 0) and /livez answers 200 at the end;
  * its peak RSS (VmHWM of /proc/<pid>/status) stays under --max-rss-mib (default 512).

One case per request, plus three closing checks (crashes, /livez, VmHWM). Prints figures, writes
a per-case log (TSV) and the server log to --out, and ends with the line
`hostile: N passed, M failed`; exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures as cf
import hashlib
import http.client
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bombs as bomb_mod  # noqa: E402
import corpus as corpus_mod  # noqa: E402

# ------------------------------------------------------------------ configuration


def env_int(name: str, default: int) -> int:
    v = os.environ.get(name)
    return int(v) if v not in (None, "") else default


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--imgd", required=True, help="path to the imgd binary")
    p.add_argument("--listen", required=True, help="127.0.0.1:PORT")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--out", required=True, help="directory for cases.tsv, server.log, generated files")
    p.add_argument("--max-rss-mib", type=int, default=env_int("HOSTILE_MAX_RSS_MIB", 512))
    p.add_argument("--max-response-bytes", type=int, default=env_int("HOSTILE_MAX_RESPONSE_BYTES", 50_000_000))
    p.add_argument("--request-timeout", type=float, default=env_int("HOSTILE_REQUEST_TIMEOUT_S", 60),
                   help="a request unanswered by then fails, and the (wedged) server is restarted")
    p.add_argument("--conn-timeout", type=float, default=env_int("HOSTILE_CONN_TIMEOUT_S", 60),
                   help="a stalled client must be disconnected within this many seconds")
    p.add_argument("--deadline", type=float, default=env_int("HOSTILE_DEADLINE_S", 1800),
                   help="whole-suite budget in seconds; cases not started by then fail as 'not run'")
    p.add_argument("--max-restarts", type=int, default=env_int("HOSTILE_MAX_RESTARTS", 25))
    p.add_argument("--concurrency", type=int, default=env_int("HOSTILE_CONCURRENCY", 16))
    p.add_argument("--pillow-limit", type=int, default=env_int("HOSTILE_PILLOW_LIMIT", 0),
                   help="upload only the first N Pillow files (0: all)")
    p.add_argument("--groups", default=os.environ.get("HOSTILE_GROUPS", "bombs,strips,pillow,concurrent,slow"),
                   help="comma-separated subset of bombs,strips,pillow,concurrent,slow")
    p.add_argument("--readme", default=str(HERE.parent.parent / "README.md"))
    return p.parse_args()


# ------------------------------------------------------------------ stable codes


def stable_codes(readme: Path) -> set[str]:
    """Every code of the README's error table (`| code | status | meaning |`, generated from
    crates/core/src/code.rs between `<!-- error-codes -->` markers): its first column."""
    codes: set[str] = set()
    in_table = False
    for line in readme.read_text().splitlines():
        if line.strip() == "<!-- error-codes -->":
            in_table = True
            continue
        if in_table:
            if not line.startswith("|"):
                break
            first = line.split("|")[1]
            codes.update(re.findall(r"`([a-z_]+)`", first))
    if not codes:
        raise SystemExit(f"no error codes found in {readme}'s error-codes table")
    return codes


# ------------------------------------------------------------------ server


def die_with_parent() -> None:
    """In the child: SIGKILL when the suite dies, so no server outlives it (Linux prctl)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Server:
    def __init__(self, imgd: str, listen: str, data_dir: str, log_path: Path):
        self.imgd, self.listen, self.data_dir = imgd, listen, data_dir
        self.host, port = listen.rsplit(":", 1)
        self.port = int(port)
        assert self.host == "127.0.0.1", "loopback only"
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.hwm_kib = 0  # highest VmHWM seen over every incarnation
        self.cur_hwm_kib = 0  # VmHWM of the current incarnation
        self.incarnations: list[dict] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._monitor: threading.Thread | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        log.write(f"\n===== start {time.strftime('%H:%M:%S')} =====\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [self.imgd, "serve", "--listen", self.listen, "--data-dir", self.data_dir],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent,
        )
        log.close()
        self.cur_hwm_kib = 0
        self.incarnations.append({"pid": self.proc.pid, "started": time.time(), "exit": None, "hwm_kib": 0})
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"imgd exited with {self.proc.returncode} on start; see {self.log_path}")
            try:
                c = http.client.HTTPConnection(self.host, self.port, timeout=2)
                c.request("GET", "/readyz")
                r = c.getresponse()
                r.read()
                c.close()
                if r.status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError("imgd not ready within 120 s")
        self._stop.clear()
        self._monitor = threading.Thread(target=self._watch, args=(self.proc,), daemon=True)
        self._monitor.start()

    def _read_hwm(self, pid: int) -> int | None:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except (OSError, ValueError):
            return None
        return None

    def _watch(self, proc: subprocess.Popen) -> None:
        while not self._stop.is_set() and proc.poll() is None:
            self.sample()
            time.sleep(0.02)

    def sample(self) -> int:
        proc = self.proc
        if proc is None:
            return 0
        v = self._read_hwm(proc.pid)
        if v is not None and proc.poll() is None:
            with self._lock:
                self.cur_hwm_kib = max(self.cur_hwm_kib, v)
                self.hwm_kib = max(self.hwm_kib, v)
                self.incarnations[-1]["hwm_kib"] = self.cur_hwm_kib
        return self.cur_hwm_kib

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_description(self) -> str:
        rc = self.proc.returncode if self.proc else None
        if rc is None:
            return "running"
        if rc < 0:
            try:
                return f"killed by {signal.Signals(-rc).name}"
            except ValueError:
                return f"killed by signal {-rc}"
        return f"exit status {rc}"

    def reap(self) -> None:
        self._stop.set()
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            self.incarnations[-1]["exit"] = self.exit_description()

    def kill(self) -> None:
        """SIGKILL a wedged server (the suite restarts it)."""
        self._stop.set()
        if self.proc is not None and self.proc.poll() is None:
            self.sample()
            self.proc.kill()
            self.proc.wait(timeout=30)
        if self.proc is not None:
            self.incarnations[-1]["exit"] = "killed by the suite: wedged (a request got no answer in time)"

    def stop(self) -> None:
        self._stop.set()
        if self.proc is None or self.proc.poll() is not None:
            self.reap()
            return
        self.sample()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.incarnations[-1]["exit"] = self.exit_description() + " (stopped by the suite)"


# ------------------------------------------------------------------ HTTP


@dataclass
class Reply:
    status: int | None = None
    headers: dict = field(default_factory=dict)
    nbytes: int = 0
    head: bytes = b""
    sha256: str = ""
    seconds: float = 0.0
    error: str = ""
    truncated: bool = False  # stopped reading: larger than the cap


def http_request(host: str, port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                 timeout: float = 120, cap: int = 50_000_000) -> Reply:
    r = Reply()
    t0 = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        try:
            conn.request(method, path, body=body, headers=headers or {})
        except (BrokenPipeError, ConnectionResetError) as e:
            # The server may answer (413) and close before reading the whole body.
            r.error = f"send: {type(e).__name__}"
        resp = conn.getresponse()
        r.status = resp.status
        r.error = ""
        r.headers = {k.lower(): v for k, v in resp.getheaders()}
        h = hashlib.sha256()
        head = bytearray()
        while True:
            chunk = resp.read(1 << 20)
            if not chunk:
                break
            r.nbytes += len(chunk)
            h.update(chunk)
            if len(head) < 65536:
                head += chunk[: 65536 - len(head)]
            if r.nbytes > cap:
                r.truncated = True
                break
        r.head = bytes(head)
        r.sha256 = h.hexdigest()
        if r.truncated and "content-length" in r.headers:
            r.nbytes = max(r.nbytes, int(r.headers["content-length"]))
    except socket.timeout:
        r.status, r.error = None, f"timeout after {timeout:.0f}s"
    except (OSError, http.client.HTTPException) as e:
        r.status, r.error = None, f"{type(e).__name__}: {e}"[:200]
    finally:
        conn.close()
        r.seconds = time.monotonic() - t0
    return r


# ------------------------------------------------------------------ cases


class GiveUp(Exception):
    """Too many restarts, or the server would not start again: the remaining cases are skipped."""

MAGIC = {
    "image/png": (b"\x89PNG",),
    "image/jpeg": (b"\xFF\xD8",),
    "image/gif": (b"GIF8",),
    "image/webp": (b"RIFF",),
    "image/avif": (b"\0\0\0",),
}


@dataclass
class Case:
    group: str
    file: str
    method: str
    target: str
    kind: str  # upload | original | variant | probe
    expect: frozenset[int] | None = None
    expect_code: str | None = None
    status: int | None = None
    code: str = ""
    nbytes: int = 0
    seconds: float = 0.0
    hwm_mib: float = 0.0
    hwm_delta_mib: float = 0.0
    ok: bool = True
    backpressure: bool = False  # 503 overloaded with Retry-After
    reasons: list[str] = field(default_factory=list)

    def fail(self, why: str) -> None:
        self.ok = False
        self.reasons.append(why)


class Suite:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.codes = stable_codes(Path(args.readme))
        self.server = Server(args.imgd, args.listen, args.data_dir, self.out / "server.log")
        self.key = os.environ["IMGD_ADMIN_KEY"]
        self.cases: list[Case] = []
        self.crashes: list[str] = []
        self.hangs: list[str] = []
        self.t_start = time.monotonic()
        self.log = open(self.out / "cases.tsv", "w")
        self.log.write("n\tgroup\tfile\tmethod\ttarget\tstatus\tcode\tbytes\tseconds\tvmhwm_mib\tvmhwm_delta_mib\tverdict\treason\n")
        self.log_lock = threading.Lock()
        self.uniq = 0

    # -- bookkeeping

    def over_deadline(self) -> bool:
        return time.monotonic() - self.t_start > self.args.deadline

    def record(self, c: Case) -> None:
        with self.log_lock:
            self.cases.append(c)
            n = len(self.cases)
            self.log.write("\t".join(str(x) for x in (
                n, c.group, c.file, c.method, c.target, c.status if c.status is not None else "-", c.code or "-",
                c.nbytes, f"{c.seconds:.2f}", f"{c.hwm_mib:.0f}", f"{c.hwm_delta_mib:.0f}",
                "ok" if c.ok else "FAIL", "; ".join(c.reasons))) + "\n")
            self.log.flush()
            if not c.ok:
                print(f"  FAIL {c.group} {c.file} {c.method} {c.target} -> "
                      f"{c.status if c.status is not None else '-'} {c.code} {c.nbytes} B: {'; '.join(c.reasons)}",
                      flush=True)

    def check_alive(self, cases: list[Case]) -> None:
        """After a request (or a batch). A request without an answer either killed the server
        (a crash: counted, the server restarted) or found it wedged (a hang: counted, the server
        killed and restarted), so the next case is judged on its own and not behind renders
        nobody waits for."""
        unanswered = [c for c in cases if c.status is None and not any(r.startswith("not run") for r in c.reasons)]
        if unanswered and self.server.alive():
            # A crash takes a moment to show (an abort unmapping gigabytes): let it finish.
            try:
                self.server.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self.server.alive():
            if not unanswered:
                return
            names = ", ".join(f"{c.file} {c.target}" for c in unanswered)
            self.hangs.append(names)
            print(f"  HANG: no answer to {names}; killing and restarting imgd", flush=True)
            for c in unanswered:
                c.fail("server alive but not answering (killed and restarted)")
            self.server.kill()
        else:
            self.server.reap()
            desc = self.server.exit_description()
            names = ", ".join(f"{c.file} {c.target}" for c in (unanswered or cases)) or "(between requests)"
            self.crashes.append(f"{desc} during: {names}")
            print(f"  CRASH: imgd {desc} during {names}", flush=True)
            for c in unanswered:
                c.fail(f"server crashed ({desc})")
        if len(self.crashes) + len(self.hangs) > self.args.max_restarts:
            raise GiveUp(f"imgd restarted {len(self.crashes) + len(self.hangs)} times; giving up")
        self.server.start()

    def judge(self, c: Case, r: Reply, original_sha: str | None = None) -> None:
        c.status, c.nbytes, c.seconds = r.status, r.nbytes, r.seconds
        if r.status is None:
            c.fail(f"no answer: {r.error}")
            return
        body_json = None
        if r.head[:1] == b"{":
            try:
                body_json = json.loads(r.head)
            except ValueError:
                body_json = None
        if isinstance(body_json, dict) and isinstance(body_json.get("code"), str):
            c.code = body_json["code"]
        # 503 `overloaded` with Retry-After is the documented backpressure of the memory budget
        # and the render queue (issue 9: "over budget is 503 overloaded with Retry-After, never
        # an OOM"); it is counted apart, not as a failure. Every other 5xx fails.
        if r.status == 503 and c.code == "overloaded" and "retry-after" in r.headers:
            c.backpressure = True
        elif r.status >= 500:
            c.fail(f"5xx ({c.code or 'no code'})")
        if 400 <= r.status < 500:
            if not isinstance(body_json, dict) or "code" not in body_json:
                c.fail("4xx without a JSON code")
            elif c.code not in self.codes:
                c.fail(f"4xx code {c.code!r} is not a documented stable code")
        if r.nbytes > self.args.max_response_bytes:
            c.fail(f"response of {r.nbytes} bytes > {self.args.max_response_bytes}")
        if c.expect is not None and r.status not in c.expect:
            c.fail(f"expected {describe(c.expect)}")
        if c.expect_code and r.status is not None and r.status >= 400 and c.code != c.expect_code:
            c.fail(f"expected code {c.expect_code}")
        if c.kind in ("variant", "original") and r.status == 200 and not r.truncated:
            ctype = r.headers.get("content-type", "")
            magic = MAGIC.get(ctype.split(";")[0].strip())
            if magic is None:
                c.fail(f"content-type {ctype!r}")
            elif not any(r.head.startswith(m) for m in magic):
                c.fail(f"body does not start like {ctype}")
        if c.kind == "original" and r.status == 200 and original_sha and r.sha256 != original_sha:
            c.fail("original bytes differ from the upload")

    def run_one(self, c: Case, body: bytes | None = None, headers: dict | None = None,
                original_sha: str | None = None, check: bool = True) -> Reply:
        if self.over_deadline():
            c.fail("not run: suite deadline")
            self.record(c)
            return Reply(error="deadline")
        before = self.server.sample()
        r = http_request(self.server.host, self.server.port, c.method, c.target, body, headers,
                         timeout=self.args.request_timeout, cap=self.args.max_response_bytes)
        after = self.server.sample()
        c.hwm_mib, c.hwm_delta_mib = after / 1024, max(0, after - before) / 1024
        self.judge(c, r, original_sha)
        if check:
            self.check_alive([c])
        self.record(c)
        return r

    # -- building blocks

    def upload(self, group: str, name: str, data: bytes, expect=None, expect_code=None) -> str | None:
        q = urllib.parse.urlencode({"filename": name[:200]})
        c = Case(group, name, "POST", f"/v1/images?{q}", "upload", expect, expect_code)
        r = self.run_one(c, data, {"Authorization": f"Bearer {self.key}", "Content-Type": "application/octet-stream"})
        if r.status == 201:
            try:
                return json.loads(r.head)["id"]
            except (ValueError, KeyError):
                c.fail("201 without an id")
        return None

    def exercise(self, group: str, name: str, data: bytes, variants, expect=None, expect_code=None) -> str | None:
        image_id = self.upload(group, name, data, expect, expect_code)
        if image_id is None:
            return None
        self.run_one(Case(group, name, "GET", f"/i/{image_id}", "original"),
                     original_sha=hashlib.sha256(data).hexdigest())
        for v in variants:
            self.run_one(Case(group, name, "GET", f"/i/{image_id}/{v}", "variant"))
        return image_id

    # -- groups

    def group_bombs(self, items) -> dict[str, str]:
        print(f"== bombs: {len(items)} generated files", flush=True)
        gen = self.out / "gen"
        gen.mkdir(exist_ok=True)
        ids = {}
        for b in items:
            (gen / b.name).write_bytes(b.data)
            image_id = self.exercise("bombs", b.name, b.data, b.variants, b.expect, b.expect_code)
            if image_id:
                ids[b.name] = image_id
        # Declared too large, and streamed too large without a length.
        c = Case("bombs", "declared-60MB", "POST", "/v1/images?filename=big", "upload", frozenset({413}),
                 "payload_too_large")
        self.run_one(c, b"\0" * 1024, {"Authorization": f"Bearer {self.key}", "Content-Length": str(60_000_000),
                                       "Content-Type": "application/octet-stream"})
        c = Case("bombs", "chunked-60MB", "POST", "/v1/images?filename=big-chunked", "upload", frozenset({413}),
                 "payload_too_large")
        chunk = b"\0" * (1 << 20)
        # No Content-Length: http.client sends an iterable body chunked.
        self.run_one(c, iter([chunk] * 60), {"Authorization": f"Bearer {self.key}",
                                              "Content-Type": "application/octet-stream"})
        return ids

    def group_strips(self, items) -> dict[str, str]:
        print(f"== strips and panoramas: {len(items)} files", flush=True)
        gen = self.out / "gen"
        gen.mkdir(exist_ok=True)
        ids = {}
        for b in items:
            (gen / b.name).write_bytes(b.data)
            image_id = self.exercise("strips", b.name, b.data, b.variants, b.expect, b.expect_code)
            if image_id:
                ids[b.name] = image_id
        return ids

    def group_pillow(self) -> None:
        files = corpus_mod.files()
        if self.args.pillow_limit:
            files = files[: self.args.pillow_limit]
        print(f"== Pillow Tests/images ({corpus_mod.PILLOW_VERSION}): {len(files)} files", flush=True)
        root = corpus_mod.pillow_images()
        for i, p in enumerate(files):
            data = p.read_bytes()
            if len(data) == 0:
                continue
            self.exercise("pillow", str(p.relative_to(root)), data, bomb_mod.DEFAULT_VARIANTS)
            if (i + 1) % 100 == 0:
                print(f"   {i + 1}/{len(files)} files, {len(self.cases)} requests, "
                      f"{time.monotonic() - self.t_start:.0f}s", flush=True)

    def next_q(self) -> int:
        # Distinct qualities keep each concurrent request a cache miss.
        self.uniq += 1
        return 1 + (self.uniq % 100)

    def batch(self, group: str, jobs: list[tuple[Case, bytes | None, dict | None]]) -> None:
        if self.over_deadline():
            for c, _, _ in jobs:
                c.fail("not run: suite deadline")
                self.record(c)
            return
        before = self.server.sample()

        def go(job):
            c, body, headers = job
            return c, http_request(self.server.host, self.server.port, c.method, c.target, body, headers,
                                   timeout=self.args.request_timeout, cap=self.args.max_response_bytes)

        with cf.ThreadPoolExecutor(len(jobs)) as pool:
            results = list(pool.map(go, jobs))
        after = self.server.sample()
        for c, r in results:
            c.hwm_mib, c.hwm_delta_mib = after / 1024, max(0, after - before) / 1024
            self.judge(c, r)
        self.check_alive([c for c, _ in results])
        for c, _ in results:
            self.record(c)

    def group_concurrent(self, ids: dict[str, str], items_by_name: dict) -> None:
        n = self.args.concurrency
        print(f"== concurrent: batches of {n}", flush=True)
        worst = [
            ("png_tiny_16x16.png", "w=8192,h=8192,fit=fill,f=webp,q={q}"),
            ("png_tiny_16x16.png", "w=8192,h=8192,fit=cover,f=jpeg,q={q}"),
            ("png_strip_1x10000.png", "w=8192,h=8192,fit=cover,f=webp,q={q}"),
            ("png_strip_10000x1.png", "w=8192,h=8192,fit=fill,f=jpeg,q={q}"),
            ("jpeg_panorama_6000x1000.jpg", "w=8192,h=8192,fit=contain,f=jpeg,q={q}"),
            ("png_iccp_bomb_256mib.png", "w=16,f=webp,q={q}"),
            ("png_idat_bomb_7000x7000_rgba16.png", "w=100,f=webp,q={q}"),
            ("png_idat_bomb_7000x7000_adam7.png", "w=100,f=jpeg,q={q}"),
            ("gif_1000_frames_4000x4000_screen.gif", "w=8192,f=jpeg,q={q}"),
            ("webp_anim_1000_frames_4000x4000.webp", "w=8192,h=8192,fit=fill,f=jpeg,q={q}"),
            ("jpeg_progressive_1024px_many_scans.jpg", "w=1000,f=webp,q={q}"),
            ("jpeg_icc_16mib.jpg", "f=webp,w=8192,h=8192,fit=fill,q={q}"),
        ]
        targets = [(name, tmpl) for name, tmpl in worst if name in ids]
        if not targets:
            print("   (no accepted image to render)")
        for round_no in range(2):
            jobs = []
            for i in range(n):
                name, tmpl = targets[(i + round_no * n) % len(targets)] if targets else (None, None)
                if name is None:
                    break
                v = tmpl.format(q=self.next_q())
                jobs.append((Case("concurrent", name, "GET", f"/i/{ids[name]}/{v}", "variant"), None, None))
            if jobs:
                self.batch("concurrent", jobs)
        # Uploads of bombs at once, each made unique so no dedup short-circuits the inspection.
        ups = ["png_iccp_bomb_256mib.png", "png_ztxt_100x16mib.png", "png_idat_bomb_7000x7000_rgba16.png",
               "png_itxt_xmp_bomb_256mib.png", "jpeg_progressive_1024px_many_scans.jpg",
               "gif_1000_frames_4000x4000_screen.gif", "webp_anim_1000_frames_4000x4000.webp", "png_ihdr_7000x7000_lying.png"]
        jobs = []
        for i in range(n):
            name = ups[i % len(ups)]
            data = items_by_name[name].data
            data = unique_copy(name, data, i)
            q = urllib.parse.urlencode({"filename": f"concurrent-{i}-{name}"})
            jobs.append((Case("concurrent", name, "POST", f"/v1/images?{q}", "upload"), data,
                         {"Authorization": f"Bearer {self.key}", "Content-Type": "application/octet-stream"}))
        self.batch("concurrent", jobs)

    def group_slow(self) -> None:
        """Stalled clients: the server must keep answering others, and disconnect them in time."""
        bound = self.args.conn_timeout
        print(f"== slow clients (must be disconnected within {bound:.0f}s)", flush=True)
        host, port = self.server.host, self.server.port
        socks: dict[str, list[socket.socket]] = {"slowloris": [], "slow-body": [], "idle": []}
        opened = {}
        try:
            for _ in range(64):
                s = socket.create_connection((host, port), timeout=5)
                s.sendall(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                socks["slowloris"].append(s)
            for _ in range(8):
                s = socket.create_connection((host, port), timeout=5)
                s.sendall(b"POST /v1/images?filename=slow HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Authorization: Bearer " + self.key.encode() + b"\r\n"
                          b"Content-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n\x89PNG\r\n")
                socks["slow-body"].append(s)
            for _ in range(8):
                socks["idle"].append(socket.create_connection((host, port), timeout=5))
        except OSError as e:
            c = Case("slow", "open", "CONNECT", "80 connections", "probe")
            c.fail(f"could not open connections: {e}")
            self.record(c)
        t0 = time.monotonic()
        for k, v in socks.items():
            opened[k] = len(v)
        # While they hang: another client must still be served.
        c = Case("slow", "while-stalled", "GET", "/livez", "probe", frozenset({200}))
        self.run_one(c)
        if c.ok and c.seconds > 5:
            c.fail(f"/livez took {c.seconds:.1f}s while clients stall")
        # Wait (bounded) until the server has closed every stalled connection.
        closed_at: dict[socket.socket, float] = {}
        every = [s for v in socks.values() for s in v]
        while time.monotonic() - t0 < bound and len(closed_at) < len(every):
            live = [s for s in every if s not in closed_at]
            readable, _, _ = select.select(live, [], [], 1.0)
            for s in readable:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data or data.startswith(b"HTTP/1.1 408") or data.startswith(b"HTTP/1.1 4"):
                    closed_at[s] = time.monotonic() - t0
        for kind, v in socks.items():
            c = Case("slow", kind, "HOLD", f"{opened.get(kind, 0)} connections", "probe")
            shut = [closed_at[s] for s in v if s in closed_at]
            c.seconds = max(shut) if shut else time.monotonic() - t0
            c.status = len(shut)
            if len(shut) < len(v):
                c.fail(f"{len(v) - len(shut)} of {len(v)} still open after {bound:.0f}s")
            self.record(c)
        for s in every:
            try:
                s.close()
            except OSError:
                pass
        self.check_alive([])

    def finish(self) -> None:
        c = Case("final", "-", "GET", "/livez", "probe", frozenset({200}))
        self.run_one(c, check=False)
        c = Case("final", "-", "CHECK", "crashes == 0", "probe")
        c.status = len(self.crashes)
        if self.crashes or not self.server.alive():
            c.fail(f"{len(self.crashes)} crash(es); alive at the end: {self.server.alive()}")
        self.record(c)
        self.server.sample()
        c = Case("final", "-", "CHECK", f"VmHWM <= {self.args.max_rss_mib} MiB", "probe")
        c.hwm_mib = self.server.hwm_kib / 1024
        if c.hwm_mib > self.args.max_rss_mib:
            c.fail(f"peak RSS {c.hwm_mib:.0f} MiB > {self.args.max_rss_mib} MiB")
        self.record(c)

    # -- report

    def report(self) -> int:
        cases = [c for c in self.cases]
        hist = collections.Counter(str(c.status) if c.status is not None else "no-answer"
                                   for c in cases if c.kind != "probe" or c.method == "GET")
        n_req = sum(hist.values())
        fivexx = sum(1 for c in cases if c.method in ("GET", "POST") and c.status is not None and c.status >= 500
                     and not getattr(c, "backpressure", False))
        backpressure = sum(1 for c in cases if getattr(c, "backpressure", False))
        bad_codes = [c for c in cases if c.status and 400 <= c.status < 500 and any("code" in r for r in c.reasons)]
        big = max(cases, key=lambda c: c.nbytes if c.kind != "probe" else -1, default=None)
        print()
        print("== figures")
        print(f"requests: {n_req}  (+ {len(cases) - n_req} probe/check cases)")
        print("status histogram: " + ", ".join(f"{k}: {v}" for k, v in sorted(hist.items())))
        print(f"5xx: {fivexx}  (besides {backpressure} x 503 overloaded with Retry-After: backpressure)")
        print(f"4xx without a stable code: {len(bad_codes)}")
        print(f"server crashes: {len(self.crashes)}")
        for cr in self.crashes:
            print(f"   {cr}")
        print(f"server hangs (alive but no answer within {self.args.request_timeout:.0f}s; killed and restarted): "
              f"{len(self.hangs)}")
        for h in self.hangs:
            print(f"   {h}")
        print(f"peak server RSS (VmHWM, max over {len(self.server.incarnations)} process(es)): "
              f"{self.server.hwm_kib / 1024:.0f} MiB (bound {self.args.max_rss_mib} MiB)")
        for inc in self.server.incarnations:
            print(f"   pid {inc['pid']}: VmHWM {inc['hwm_kib'] / 1024:.0f} MiB, {inc['exit']}")
        if big is not None:
            print(f"largest response: {big.nbytes} bytes ({big.file} {big.target})")
        grew = sorted((c for c in cases if c.hwm_delta_mib > 0), key=lambda c: -c.hwm_delta_mib)[:8]
        if grew:
            print("cases that raised VmHWM most:")
            for c in grew:
                print(f"   +{c.hwm_delta_mib:.0f} MiB -> {c.hwm_mib:.0f} MiB  {c.group} {c.file} {c.target} ({c.status})")
        slow = sorted((c for c in cases if c.kind != "probe"), key=lambda c: -c.seconds)[:8]
        print("slowest requests:")
        for c in slow:
            print(f"   {c.seconds:6.1f}s  {c.file} {c.method} {c.target} -> {c.status}")
        failed = [c for c in cases if not c.ok]
        if failed:
            print(f"failures by reason:")
            why = collections.Counter(re.sub(r"\d+ bytes", "N bytes", r.split(":")[0]) for c in failed for r in c.reasons)
            for k, v in why.most_common():
                print(f"   {v:5}  {k}")
        print(f"elapsed: {time.monotonic() - self.t_start:.0f}s; per-case log: {self.out / 'cases.tsv'}; "
              f"server log: {self.out / 'server.log'}")
        passed = sum(1 for c in cases if c.ok)
        print(f"hostile: {passed} passed, {len(failed)} failed", flush=True)
        return 0 if not failed else 1


def unique_copy(name: str, data: bytes, i: int) -> bytes:
    """The same image with a few different bytes (a tEXt chunk / a COM segment / trailing byte)."""
    tag = f"hostile-{i}-{time.time_ns()}".encode()
    if data.startswith(bomb_mod.PNG_SIG):
        return data[:33] + bomb_mod.png_chunk(b"tEXt", b"n\0" + tag) + data[33:]
    if data.startswith(b"\xFF\xD8"):
        return data[:2] + b"\xFF\xFE" + (len(tag) + 2).to_bytes(2, "big") + tag + data[2:]
    if data.startswith(b"GIF8"):
        # A comment extension right after the global colour table (2 colours here).
        pos = 13 + 6
        return data[:pos] + b"\x21\xFE" + bytes([len(tag)]) + tag + b"\0" + data[pos:]
    return data + tag


def describe(s: frozenset[int]) -> str:
    if s == bomb_mod.REJECT:
        return "a 4xx refusal"
    return "/".join(str(x) for x in sorted(s))


def run_groups(suite: Suite, groups: list[str], items, strips) -> None:
    ids: dict[str, str] = {}
    try:
        if "bombs" in groups:
            ids.update(suite.group_bombs(items))
        if "strips" in groups:
            ids.update(suite.group_strips(strips))
        if "pillow" in groups:
            suite.group_pillow()
        if "concurrent" in groups:
            suite.group_concurrent(ids, {b.name: b for b in items + strips})
        if "slow" in groups:
            suite.group_slow()
    except (GiveUp, RuntimeError) as e:
        c = Case("final", "-", "ABORT", "suite", "probe")
        c.fail(f"suite aborted: {e}")
        suite.record(c)
        if not suite.server.alive():
            try:
                suite.server.start()
            except RuntimeError:
                pass


def main() -> int:
    args = parse_args()
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    suite = Suite(args)
    print(f"stable error codes from README: {len(suite.codes)}", flush=True)
    t = time.monotonic()
    items = bomb_mod.generate()
    strips = bomb_mod.strips()
    print(f"generated {len(items) + len(strips)} hostile files in {time.monotonic() - t:.0f}s", flush=True)
    if "pillow" in groups:
        corpus_mod.pillow_images()  # download/extract before the server starts
    suite.server.start()
    print(f"imgd pid {suite.server.proc.pid} on {args.listen}", flush=True)
    try:
        run_groups(suite, groups, items, strips)
        suite.finish()
    finally:
        suite.server.stop()
        suite.log.close()
    return suite.report()


if __name__ == "__main__":
    sys.exit(main())
