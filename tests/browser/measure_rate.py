#!/usr/bin/env python3
"""Measures the lab's training speed (steps/s of the default `tiny` preset) in a given Chromium.

The browser tests measure it on SwiftShader; this script exists for machines where the browser
should find a real GPU, which may have no Node.js. It uses the standard library only: it serves
`dist/`, drives Chromium over `--remote-debugging-pipe` (the DevTools protocol on fds 3 and 4,
messages separated by NUL bytes), presses Play, and samples the page's step counter.

Chromium's WebGPU flags differ by platform and version, so it tries a few flag sets and measures
with the first one whose page reports a WebGPU backend on a hardware adapter (or, with
`--accept-software`, on any adapter); `--cpu` hides WebGPU from the page to time the CPU backend.
Figures go to stdout and to OUT/figures.json, a screenshot of the page after training to
OUT/lab-trained.png; `--profile` adds where the page's thread spent its time while training.
Every run also counts what each training step asks of WebGPU (`webgpu_counter.js`: dispatches,
submissions, bind groups, pipelines, read-back bytes); `--attribute` sorts the dispatches into
the model's parts and counts them per kernel (pipeline label). `--probe recorded-pass` instead
times the training pass eager against recorded and replayed in the page (`app/src/probe.rs`).

    python3 tests/browser/measure_rate.py --chrome /usr/bin/chromium --dist dist --out /tmp/rate
"""

import argparse
import base64
import collections
import fcntl
import functools
import gzip
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

# Cheapest failures first: a set that finds only SwiftShader is rejected in seconds, while ANGLE on
# a Vulkan driver that cannot composite can hang the page until a reply times out.
FLAG_SETS = [
    ["--enable-features=Vulkan"],
    ["--use-angle=vulkan", "--enable-features=Vulkan", "--disable-vulkan-surface"],
    [],
]
LOG_TAIL_BYTES = 256 * 1024
COMMON_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--remote-debugging-pipe",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--enable-unsafe-webgpu",
    "--ignore-gpu-blocklist",
]
SOFTWARE_ADAPTERS = ("swiftshader", "llvmpipe", "lavapipe")
# Wraps the WebGPU API to count dispatches, submissions, bind groups, pipelines and read-backs
# per training step (shared with the browser tests).
COUNTER_JS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "webgpu_counter.js")


class Timeout(Exception):
    pass


class Browser:
    """One Chromium process and a DevTools session on one page."""

    def __init__(self, chrome, flags, log_path):
        self.commands_r, self.commands_w = os.pipe()
        self.replies_r, self.replies_w = os.pipe()
        self.profile = tempfile.mkdtemp(prefix="prunelab-chrome-")
        self.log = open(log_path, "wb")

        def wire_pipes():
            # Chromium reads commands on fd 3 and writes replies on fd 4. Both ends are first
            # moved above 10, so that neither is already 3 or 4 (dup2 onto itself would keep
            # the close-on-exec flag); dup2 then makes 3 and 4 inheritable.
            commands = fcntl.fcntl(self.commands_r, fcntl.F_DUPFD, 10)
            replies = fcntl.fcntl(self.replies_w, fcntl.F_DUPFD, 10)
            os.dup2(commands, 3)
            os.dup2(replies, 4)

        # Its own process group, so that a browser that hangs is killed with its GPU and
        # renderer processes.
        self.process = subprocess.Popen(
            [chrome, *COMMON_FLAGS, *flags, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=wire_pipes,
            close_fds=False,
            start_new_session=True,
        )
        os.close(self.commands_r)
        os.close(self.replies_w)
        self.next_id = 0
        self.replies = {}
        self.events = []
        self.arrived = threading.Condition()
        threading.Thread(target=self._read_replies, daemon=True).start()
        try:
            target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            self.call("Runtime.enable", session=True)
            self.call("Page.enable", session=True)
        except Exception:
            self.close()
            raise

    def _read_replies(self):
        pending = b""
        while True:
            try:
                chunk = os.read(self.replies_r, 1 << 20)
            except OSError:  # closed by `close`
                break
            if not chunk:
                break
            pending += chunk
            *messages, pending = pending.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                with self.arrived:
                    if "id" in message:
                        self.replies[message["id"]] = message
                    else:
                        self.events.append(message)
                    self.arrived.notify_all()
        with self.arrived:
            self.arrived.notify_all()

    def call(self, method, params=None, session=False, timeout=60):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        try:
            os.write(self.commands_w, json.dumps(message).encode() + b"\0")
        except OSError as error:  # the browser has exited (a missing font aborts it, say)
            raise Timeout(f"{method}: the browser is gone ({error}; exit code {self.process.poll()})")
        deadline = time.monotonic() + timeout
        with self.arrived:
            while self.next_id not in self.replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise Timeout(f"{method}: no reply (browser exit code {self.process.poll()})")
                self.arrived.wait(min(left, 1.0))
            reply = self.replies.pop(self.next_id)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def evaluate(self, expression, timeout=60):
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            session=True,
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # A page that stops answering is as stuck as one that never gets there.
            if self.evaluate(expression, timeout=max(1.0, min(30.0, deadline - time.monotonic()))):
                return
            time.sleep(0.25)
        raise Timeout(f"waited {timeout} s for {what}")

    def page_errors(self):
        with self.arrived:
            events = list(self.events)
        errors = []
        for event in events:
            if event.get("method") == "Runtime.exceptionThrown":
                errors.append(event["params"]["exceptionDetails"].get("text", "exception"))
            elif event.get("method") == "Runtime.consoleAPICalled" and event["params"]["type"] == "error":
                errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in event["params"]["args"]))
        return errors

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for fd in (self.commands_w, self.replies_r):
            os.close(fd)
        self.log.close()
        keep_tail(self.log.name, LOG_TAIL_BYTES)
        shutil.rmtree(self.profile, ignore_errors=True)


def keep_tail(path, size):
    """Cuts a log to its last `size` bytes: a GPU process that keeps failing logs megabytes."""
    with open(path, "rb") as file:
        file.seek(0, os.SEEK_END)
        file.seek(max(0, file.tell() - size))
        tail = file.read()
    with open(path, "wb") as file:
        file.write(tail)


ADAPTER_PROBE = """(async () => {
  if (!navigator.gpu) return {found: false, why: 'navigator.gpu is missing'};
  const adapter = await navigator.gpu.requestAdapter({powerPreference: 'high-performance'});
  if (!adapter) return {found: false, why: 'requestAdapter returned null'};
  const info = adapter.info ?? {};
  return {found: true, vendor: info.vendor, architecture: info.architecture, device: info.device,
          description: info.description};
})()"""


def text_of(selector):
    return f"document.querySelector({json.dumps(selector)})?.textContent ?? null"


def serve(dist):
    handler = functools.partial(QuietHandler, directory=dist)
    server = QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A browser closed mid-download (between flag sets) is expected; anything else is not.
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".wasm": "application/wasm"}

    def log_message(self, *args):
        pass


def open_lab(browser, origin, load_timeout):
    started = time.monotonic()
    browser.call("Page.navigate", {"url": origin}, session=True)
    browser.wait_for("!!document.querySelector('#backend')", load_timeout, "the backend badge")
    badge_s = time.monotonic() - started
    backend = browser.evaluate(text_of("#backend"))
    webgpu = browser.evaluate("document.querySelector('#backend').dataset.webgpu === 'true'")
    adapter = browser.evaluate(ADAPTER_PROBE)
    return {"backend": backend, "webgpu": webgpu, "adapter": adapter, "badge_s": round(badge_s, 2)}


def wait_for_probe(browser, stall_timeout):
    """Until the page's probe reports, failing only when its progress (timed passes done,
    `window.__prunelabProbeProgress`; the recording before them counts as one wait) stands still
    for `stall_timeout` seconds, so a slower machine only takes longer."""
    last, since = None, time.monotonic()
    while not browser.evaluate("!!window.__prunelabProbe"):
        done = browser.evaluate("window.__prunelabProbeProgress ?? 0")
        if done != last:
            last, since = done, time.monotonic()
        elif time.monotonic() - since > stall_timeout:
            raise Timeout(f"the probe made no progress for {stall_timeout} s (after {done} steps)")
        time.sleep(1.0)


def is_hardware(adapter):
    """A found adapter that names its vendor and is not a known software one."""
    described = json.dumps(adapter).lower()
    return bool(adapter.get("found") and adapter.get("vendor")) and not any(
        name in described for name in SOFTWARE_ADAPTERS
    )


# Frames whose share of the main thread's time the profile summary reports (substrings of the
# wasm function names): where a training step's time goes on the page's one thread.
PROFILED_FRAMES = {
    "training step": "driver::step",
    "backward pass": "AutodiffTensor<B>::backward",
    "optimiser update": "apply_update",
    "kernel launches (cubecl)": "Client::launch",
    "bind groups (wgpu → WebGPU)": "create_bind_group",
}


def summarise_profile(profile):
    """Share of samples in which the page's main thread was busy, and in each `PROFILED_FRAMES`."""
    nodes = {node["id"]: node for node in profile["nodes"]}
    parent = {child: node["id"] for node in profile["nodes"] for child in node.get("children", [])}
    total = idle = 0
    inclusive = collections.Counter()
    for node in profile["nodes"]:
        hits = node.get("hitCount", 0)
        if not hits:
            continue
        total += hits
        if node["callFrame"]["functionName"] == "(idle)":
            idle += hits
            continue
        stack, at = [], node["id"]
        while at is not None:
            stack.append(nodes[at]["callFrame"]["functionName"])
            at = parent.get(at)
        for label, fragment in PROFILED_FRAMES.items():
            if any(fragment in name for name in stack):
                inclusive[label] += hits
    share = lambda hits: round(hits / total, 3) if total else None
    return {
        "samples": total,
        "main_thread_busy": share(total - idle),
        "share_of_time": {label: share(inclusive[label]) for label in PROFILED_FRAMES},
    }


def measure_training(browser, seconds, max_steps, load_timeout, profile_to=None, attribute=False):
    step = "Number(document.querySelector('#step-count')?.dataset.step ?? -1)"
    browser.wait_for(f"{step} >= 0", load_timeout, "the step counter")
    browser.wait_for(
        "!(document.querySelector('#frame-label')?.textContent ?? 'no snapshot').startsWith('no snapshot')",
        load_timeout,
        "the first heatmap",
    )
    browser.wait_for(
        "!(document.querySelector('#params')?.textContent ?? 'not scored').startsWith('not scored')",
        load_timeout,
        "the dense model's first score",
    )
    browser.evaluate(f"window.__webgpuCounter?.watchSteps({'true' if attribute else 'false'})")
    browser.evaluate("document.querySelector('#play').click()")
    clicked = time.monotonic()
    samples = []

    def sample():
        # The page answers only between steps (training holds its one thread), so the time is
        # taken when the answer arrives, not when the question was sent.
        done = browser.evaluate(step, timeout=max(60.0, seconds))
        samples.append((time.monotonic() - clicked, done))

    sample()
    profiling = False
    while time.monotonic() - clicked < seconds and samples[-1][1] < max_steps:
        time.sleep(0.25)
        sample()
        if profile_to and not profiling and samples[-1][1] >= 1:
            # From the end of the first step. Steps with new batch shapes still compile kernels
            # (the second step takes several seconds on a GPU), so that is in the profile too.
            browser.call("Profiler.enable", session=True)
            browser.call("Profiler.setSamplingInterval", {"interval": 1000}, session=True)
            browser.call("Profiler.start", session=True)
            profiling = True
    rate_label = browser.evaluate(text_of("#rate"))
    browser.evaluate("document.querySelector('#play').click()")
    figures = summarise(samples, rate_label)
    # Compute dispatches, submissions, bind groups, pipelines and read-back bytes per step.
    figures["webgpu_per_step"] = browser.evaluate("JSON.stringify(window.__webgpuCounter?.perStep() ?? null)")
    figures["webgpu_per_step"] = json.loads(figures["webgpu_per_step"])
    if profiling:
        profile = browser.call("Profiler.stop", session=True, timeout=180)["profile"]
        with gzip.open(profile_to, "wt") as file:
            json.dump(profile, file)
        figures["cpu_profile"] = summarise_profile(profile)
    return figures


def summarise(samples, rate_label, warm_step=5):
    """Overall steps/s from Play, and steps/s after `warm_step` (first kernels compiled by then)."""
    elapsed, last = samples[-1]
    first = next((t for t, s in samples if s >= 1), None)
    warm = next(((t, s) for t, s in samples if s >= warm_step), None)
    figures = {
        "steps": last,
        "seconds": round(elapsed, 2),
        "steps_per_s": round(last / elapsed, 3) if elapsed > 0 else None,
        "first_step_s": round(first, 2) if first is not None else None,
        "page_rate_label": rate_label,
        # [seconds after Play, steps done] whenever the counter moved: warm-up and slow-downs.
        # Steps that end between two samples share one entry.
        "steps_over_time": [[round(t, 2), s] for (t, s), (_, before) in zip(samples[1:], samples) if s > before],
    }
    if warm and last > warm[1]:
        # The steps from the first sample at or past `warm_step` to the end, over their time.
        figures["warm_steps_per_s"] = round((last - warm[1]) / (elapsed - warm[0]), 3)
        figures["warm_from_step"] = warm[1]
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chrome", required=True, help="the Chromium (or chrome-headless-shell) binary")
    parser.add_argument("--dist", required=True, help="the lab as `trunk build` writes it")
    parser.add_argument("--out", required=True, help="folder for figures.json, the screenshot and browser logs")
    parser.add_argument("--seconds", type=float, default=60, help="how long to train once Play is pressed")
    parser.add_argument("--max-steps", type=int, default=500, help="stop early after this many steps")
    parser.add_argument("--load-timeout", type=float, default=180, help="seconds allowed for each loading stage")
    parser.add_argument("--profile", action="store_true", help="sample the page's main thread while it trains")
    parser.add_argument(
        "--attribute",
        action="store_true",
        help="sort each step's dispatches into the model's parts by call stack (slows steps a little)",
    )
    parser.add_argument("--cpu", action="store_true", help="disable WebGPU: measure the CPU backend in wasm")
    parser.add_argument("--hash", default="", help="the lab's settings, e.g. '#dev=4' (scores on 4 dev utterances)")
    parser.add_argument("--flag-set", type=int, choices=range(len(FLAG_SETS)), help="try only this flag set")
    parser.add_argument("--accept-software", action="store_true", help="measure on a software adapter too")
    parser.add_argument(
        "--probe",
        choices=["recorded-pass"],
        help="instead of training, take this measurement in the page (app/src/probe.rs) and report it",
    )
    args = parser.parse_args()

    os.makedirs(args.out, exist_ok=True)
    server, origin = serve(args.dist)
    report = {"attempts": []}
    try:
        if args.cpu:
            candidates = [(0, ["--disable-webgpu"])]
        elif args.flag_set is not None:
            candidates = [(args.flag_set, FLAG_SETS[args.flag_set])]
        else:
            candidates = list(enumerate(FLAG_SETS))
        for index, flags in candidates:
            attempt = {"flags": flags}
            report["attempts"].append(attempt)
            browser = None
            try:
                browser = Browser(args.chrome, flags, os.path.join(args.out, f"chrome-{index}.log"))
                with open(COUNTER_JS) as counter:
                    browser.call("Page.addScriptToEvaluateOnNewDocument", {"source": counter.read()}, session=True)
                if args.cpu:
                    # chrome-headless-shell ignores --disable-webgpu; hiding the API works in any build.
                    hide = "Object.defineProperty(Navigator.prototype, 'gpu', {get: () => undefined});"
                    browser.call("Page.addScriptToEvaluateOnNewDocument", {"source": hide}, session=True)
                query = f"?probe={args.probe}" if args.probe else ""
                attempt.update(open_lab(browser, origin + query + args.hash, args.load_timeout))
                print(json.dumps(attempt), flush=True)
                wanted = not attempt["webgpu"] if args.cpu else attempt["webgpu"]
                if not wanted or not (args.cpu or args.accept_software or is_hardware(attempt["adapter"])):
                    continue
                if args.probe:
                    wait_for_probe(browser, args.load_timeout)
                    attempt["probe"] = json.loads(browser.evaluate("JSON.stringify(window.__prunelabProbe)"))
                    attempt["page_errors"] = browser.page_errors()
                    if "error" in attempt["probe"]:
                        raise RuntimeError(f"the probe failed: {attempt['probe']['error']}")
                    report["measured"] = attempt
                    break
                profile_to = os.path.join(args.out, "cpu-profile.json.gz") if args.profile else None
                attempt["training"] = measure_training(
                    browser, args.seconds, args.max_steps, args.load_timeout, profile_to, args.attribute
                )
                if attempt["training"]["steps"] == 0:
                    raise Timeout(f"no training step finished in {args.seconds} s")
                shot = browser.call("Page.captureScreenshot", session=True)["data"]
                with open(os.path.join(args.out, "lab-trained.png"), "wb") as file:
                    file.write(base64.b64decode(shot))
                attempt["page_errors"] = browser.page_errors()
                report["measured"] = attempt
                break
            except (Timeout, RuntimeError) as error:
                attempt["error"] = str(error)
                attempt["page_errors"] = browser.page_errors() if browser else []
                print(json.dumps(attempt), flush=True)
            finally:
                if browser:
                    browser.close()
    finally:
        server.shutdown()
        with open(os.path.join(args.out, "figures.json"), "w") as file:
            json.dump(report, file, indent=2)
    print(json.dumps(report.get("measured", {"measured": None}), indent=2))
    return 0 if "measured" in report else 1


if __name__ == "__main__":
    sys.exit(main())
