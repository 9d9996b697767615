"""A real ComfyUI server for tests and the demo: start it headless, queue prompts, read results.

`ComfyServer` runs `main.py --cpu` on a free loopback port with its own input/output/user
folders and an extra_model_paths.yaml; `ComfyClient` talks to it over the HTTP API;
`workflow_to_prompt` turns a saved UI workflow (what users share) into an API prompt using the
live server's /object_info, so shipped workflow files are tested as they are.
"""
import json
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

PACK_DIR = pathlib.Path(__file__).resolve().parents[2]
PACK_FOLDER_NAME = "ComfyUI-TimeAwareSR"
TEST_PLUGIN = pathlib.Path(__file__).resolve().parent / "comfy_test_plugin"


def comfyui_dir() -> pathlib.Path:
    """COMFYUI_DIR if set (a user's own ComfyUI), else the bootstrapped .comfyui/."""
    path = pathlib.Path(os.environ.get("COMFYUI_DIR") or PACK_DIR / ".comfyui").resolve()
    if not (path / "main.py").is_file():
        raise RuntimeError(f"no ComfyUI at {path} (main.py missing): run `make bootstrap` or set COMFYUI_DIR")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PromptRejected(Exception):
    """The server refused the prompt at validation (HTTP 400)."""

    def __init__(self, body: dict):
        self.body = body
        self.node_errors = body.get("node_errors", {})
        super().__init__(json.dumps(body, indent=1)[:4000])

    def messages(self) -> str:
        """All error texts, top-level and per node, as one string to search in."""
        parts = [json.dumps(self.body.get("error", {}))]
        for node in self.node_errors.values():
            parts += [json.dumps(e) for e in node.get("errors", [])]
        return "\n".join(parts)


class ExecutionFailed(Exception):
    """The prompt was accepted but a node raised while running."""

    def __init__(self, status: dict):
        self.status = status
        self.exception_message = ""
        for kind, data in status.get("messages", []):
            if kind == "execution_error":
                self.exception_message = data.get("exception_message", "")
                self.node_type = data.get("node_type")
        super().__init__(f"{self.exception_message}\n{json.dumps(status, indent=1)[:4000]}")


class Watched:
    """What the server's websocket said about one prompt (ComfyClient.run_watched)."""

    def __init__(self):
        self.prompt_id, self.messages, self.frames = None, [], 0
        # time.monotonic() when POST /interrupt was sent, when the prompt's last message came, and when each message came
        self.interrupted_at = self.ended_at = None
        self.received = []

    def stop_latency(self) -> float | None:
        """Seconds from sending POST /interrupt to the prompt's execution_interrupted (or other end)."""
        if self.interrupted_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.interrupted_at

    def of_type(self, kind: str) -> list[dict]:
        return [m["data"] for m in self.messages if m.get("type") == kind]

    def node_ended_at(self, node_id: str) -> float | None:
        """time.monotonic() when the node was done: the first `executing` message of another node after it."""
        started = False
        for message, at in zip(self.messages, self.received):
            if message.get("type") == "executing":
                node = str((message.get("data") or {}).get("node"))
                if started and node != str(node_id):
                    return at
                started = started or node == str(node_id)
        return None

    def progress(self, node_id: str) -> list[tuple[int, int]]:
        """(value, max) of the progress messages for one node."""
        return [(d["value"], d["max"]) for d in self.of_type("progress") if str(d.get("node")) == str(node_id)]


class ComfyClient:
    def __init__(self, base_url: str, output_dir: pathlib.Path, input_dir: pathlib.Path):
        self.base_url = base_url
        self.output_dir = output_dir
        self.input_dir = input_dir
        self.client_id = uuid.uuid4().hex
        self._object_info = None
        self._queued_at = {}  # prompt_id -> time.monotonic() when this client queued or first waited on it

    def get(self, path: str):
        with urllib.request.urlopen(self.base_url + path, timeout=60) as r:
            return json.loads(r.read())

    def object_info(self) -> dict:
        if self._object_info is None:
            self._object_info = self.get("/object_info")
        return self._object_info

    def queue(self, prompt: dict) -> str:
        data = json.dumps({"prompt": prompt, "client_id": self.client_id}).encode()
        req = urllib.request.Request(self.base_url + "/prompt", data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                prompt_id = json.loads(r.read())["prompt_id"]
                self._queued_at[prompt_id] = time.monotonic()
                return prompt_id
        except urllib.error.HTTPError as e:
            if e.code == 400:
                raise PromptRejected(json.loads(e.read())) from None
            raise

    def post(self, path: str, body: dict):
        req = urllib.request.Request(self.base_url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=60).read()

    def drop_cached_results(self):
        """POST /free as the page's "unload models and execution cache" does: the server forgets the
        node results it cached, so a graph queued again really runs again. Needed since ComfyUI's
        default cache keeps earlier prompts' results (0.33's RAM-pressure cache; 0.3.75's classic
        cache kept only the last prompt's). The server applies it once it is idle or after its current prompt."""
        self.post("/free", {"unload_models": True, "free_memory": True})

    def wait(self, prompt_id: str, timeout: float = 600) -> dict:
        """The prompt's history entry once it has finished. Past `timeout` the server is made idle
        (give_up) before TimeoutError, so one slow prompt does not make the next tests time out too."""
        self._queued_at.setdefault(prompt_id, time.monotonic())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            history = self.get(f"/history/{prompt_id}")
            if prompt_id in history and history[prompt_id].get("status", {}).get("completed") is not None:
                entry = history[prompt_id]
                if entry["status"].get("status_str") == "error":
                    raise ExecutionFailed(entry["status"])
                return entry
            time.sleep(0.1)  # a history poll: the answer is the event waited on
        raise TimeoutError(self.give_up(f"prompt {prompt_id} did not finish within {timeout:g} s"))

    def queue_state(self) -> tuple[list, list]:
        """(running, pending) queue items as GET /queue lists them: [number, prompt_id, prompt, extra, outputs]."""
        queue = self.get("/queue")
        return queue["queue_running"], queue["queue_pending"]

    def _last_finish(self) -> float | None:
        """time.monotonic() of the newest execution_{success,error,interrupted} in the history."""
        for entry in self.get("/history?max_items=1").values():
            stamps = [data.get("timestamp") for kind, data in entry.get("status", {}).get("messages", [])
                      if kind in ("execution_success", "execution_error", "execution_interrupted")]
            if stamps and stamps[-1]:
                return time.monotonic() - (time.time() - stamps[-1] / 1000)
        return None

    def describe_queue(self) -> str:
        """What the server is running, since when, and how many prompts wait behind it, in words."""
        running, pending = self.queue_state()
        if not running and not pending:
            return "the server was idle"
        parts = []
        for item in running:
            prompt_id, prompt = item[1], item[2]
            kinds = sorted({node.get("class_type", "?") for node in prompt.values()})
            started = [t for t in (self._queued_at.get(prompt_id), self._last_finish()) if t is not None]
            since = f" for about {time.monotonic() - max(started):.0f} s" if started else ""
            parts.append(f"the server was running prompt {prompt_id}{since} (nodes: {', '.join(kinds)})")
        parts.append(f"{len(pending)} more prompt(s) waited behind it")
        return "; ".join(parts)

    def give_up(self, what: str, idle_within: float = 300) -> str:
        """Make the server idle again: interrupt the running prompt, clear the queue and drop the cached
        results (POST /interrupt, /queue clear, /free), then wait until nothing runs. Returns the
        message for the failure: what was awaited, what the server was running and for how long, and
        whether it is idle now."""
        described = self.describe_queue()
        self.post("/queue", {"clear": True})
        self.post("/interrupt", {})
        self.drop_cached_results()
        deadline = time.monotonic() + idle_within
        while time.monotonic() < deadline:
            running, pending = self.queue_state()
            if not running and not pending:
                return f"{what}; {described}. Interrupted it and cleared the queue: the server is idle again."
            time.sleep(0.2)  # a /queue poll
        return f"{what}; {described}. Interrupted it and cleared the queue, but it was still busy {idle_within:g} s later."

    def ensure_idle(self) -> str | None:
        """Before a test: if an earlier one left prompts running or queued, stop them (give_up) and say so."""
        running, pending = self.queue_state()
        if running or pending:
            return self.give_up("an earlier test left the server busy")
        return None

    def run(self, prompt: dict, timeout: float = 600) -> dict:
        """Queue, wait, return {node_id: outputs}; raises PromptRejected or ExecutionFailed."""
        return self.wait(self.queue(prompt), timeout)["outputs"]

    def run_watched(self, prompt: dict, interrupt_at_step: int | None = None, timeout: float = 600,
                    interrupt_in_node: str | None = None, interrupt_after: float = 0.0,
                    stop_within: float | None = None) -> "Watched":
        """Queue over this client's websocket, as the browser does, and record what the server sends
        for the prompt: its JSON messages and the count of binary (preview image) frames. With
        interrupt_at_step, POST /interrupt once a progress message reaches that step. With
        interrupt_in_node, POST /interrupt `interrupt_after` seconds after the `executing` message that
        names that node id (the node is then busy, unless it finished within the delay: check
        execution_interrupted's node_id). Watched.interrupted_at / ended_at time the stop. With
        stop_within, stop watching once the prompt still runs that many seconds after the interrupt
        (ended_at stays None; the server is left busy, for the caller to report and give_up)."""
        import asyncio

        import aiohttp

        watched = Watched()

        async def watch():
            ws_url = self.base_url.replace("http://", "ws://") + f"/ws?clientId={self.client_id}"
            async with aiohttp.ClientSession() as session, session.ws_connect(ws_url) as ws:
                watched.prompt_id = await asyncio.to_thread(self.queue, prompt)
                interrupted = False
                pending = []  # the delayed interrupt, kept referenced while it waits

                async def interrupt(delay: float = 0.0):
                    await asyncio.sleep(delay)
                    watched.interrupted_at = time.monotonic()
                    async with session.post(self.base_url + "/interrupt") as r:
                        r.raise_for_status()

                while True:
                    if (stop_within is not None and watched.interrupted_at is not None
                            and time.monotonic() > watched.interrupted_at + stop_within):
                        break
                    try:  # with stop_within, wake up twice a second to look at the clock
                        msg = await ws.receive(timeout=0.5 if stop_within is not None else None)
                    except asyncio.TimeoutError:
                        continue
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        watched.frames += 1
                        continue
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                    message = json.loads(msg.data)
                    data = message.get("data") or {}
                    if data.get("prompt_id") not in (None, watched.prompt_id):
                        continue
                    watched.messages.append(message)
                    watched.received.append(time.monotonic())
                    kind = message.get("type")
                    if kind == "progress" and interrupt_at_step and data["value"] >= interrupt_at_step and not interrupted:
                        interrupted = True
                        await interrupt()
                    if (kind == "executing" and interrupt_in_node is not None and not interrupted
                            and str(data.get("node")) == str(interrupt_in_node)):
                        interrupted = True
                        pending.append(asyncio.create_task(interrupt(interrupt_after)))
                    if kind in ("execution_success", "execution_error", "execution_interrupted"):
                        watched.ended_at = time.monotonic()
                        break
                for task in pending:  # the prompt ended first: no interrupt is left to land on a later prompt
                    if not task.done():
                        task.cancel()
                    elif not task.cancelled() and task.exception() is not None:
                        raise task.exception()
            return watched

        # Its own thread and event loop: a caller may already run one (playwright's sync API does).
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            try:
                return pool.submit(asyncio.run, asyncio.wait_for(watch(), timeout)).result()
            except (TimeoutError, asyncio.TimeoutError):
                raise TimeoutError(self.give_up(f"prompt {watched.prompt_id} did not finish within {timeout:g} s")) from None

    def output_images(self, outputs: dict, node_id: str) -> list[pathlib.Path]:
        """Saved images (type 'output') of one node; previews go to the temp folder and are left out."""
        return [self.output_dir / im.get("subfolder", "") / im["filename"]
                for im in outputs[str(node_id)].get("images", []) if im.get("type", "output") == "output"]

    def fetch_image_bytes(self, image: dict) -> bytes:
        """Read an output image back through /view, as the browser does."""
        query = urllib.parse.urlencode({k: image.get(k, "") for k in ("filename", "subfolder", "type")})
        with urllib.request.urlopen(f"{self.base_url}/view?{query}", timeout=60) as r:
            return r.read()


def fresh_object_info() -> dict:
    """/object_info of a throwaway ComfyUI with the pack and no model files: what the tools build files from."""
    import tempfile

    with tempfile.TemporaryDirectory() as work:
        server = ComfyServer(pathlib.Path(work), {})
        try:
            return server.start().object_info()
        finally:
            server.stop()


class ComfyServer:
    """ComfyUI's main.py as a child process; always stopped by stop() (also on failure)."""

    def __init__(self, workdir: pathlib.Path, model_folders: dict[str, pathlib.Path], comfy_dir: pathlib.Path | None = None,
                 test_models: bool = True, extra_args: list[str] | None = None, env: dict[str, str] | None = None):
        """test_models: load comfy_test_plugin, so stock loaders accept the factories' tiny SD files
        (support/test_size_models.py); the demo runs without it, as a user's ComfyUI does.
        extra_args: more main.py flags (e.g. ["--cache-none"]), appended after the harness's own; env: more
        environment variables for the server (e.g. a test plugin's setting)."""
        self.comfy_dir = comfy_dir or comfyui_dir()
        self.test_models = test_models
        self.extra_args = list(extra_args or [])
        self.extra_env = dict(env or {})
        self.workdir = pathlib.Path(workdir)
        self.model_folders = model_folders
        self.log_path = self.workdir / "server.log"
        self.proc = None
        self.client = None

    def _write_extra_model_paths(self) -> pathlib.Path:
        lines = ["timeaware_sr_tests:"]
        lines += [f"    {name}: {path}" for name, path in self.model_folders.items()]
        links = {}
        if (self.comfy_dir / "custom_nodes" / PACK_FOLDER_NAME).resolve() != PACK_DIR:
            links[PACK_FOLDER_NAME] = PACK_DIR  # this ComfyUI does not have the pack installed: a private folder
        if self.test_models:
            links[TEST_PLUGIN.name] = TEST_PLUGIN
        if links:
            custom_nodes = self.workdir / "custom_nodes"
            custom_nodes.mkdir(exist_ok=True)
            for name, target in links.items():
                if not (custom_nodes / name).exists():
                    (custom_nodes / name).symlink_to(target, target_is_directory=True)
            lines.append(f"    custom_nodes: {custom_nodes}")
        path = self.workdir / "extra_model_paths.yaml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, timeout: float = 300):
        for d in ("input", "output", "user", "temp"):
            (self.workdir / d).mkdir(parents=True, exist_ok=True)
        port = free_port()
        cmd = [
            sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
            "--input-directory", str(self.workdir / "input"), "--output-directory", str(self.workdir / "output"),
            "--user-directory", str(self.workdir / "user"), "--temp-directory", str(self.workdir / "temp"),
            "--extra-model-paths-config", str(self._write_extra_model_paths()),
            "--disable-auto-launch", "--preview-method", "latent2rgb",
            *self.extra_args,
        ]
        self._log = open(self.log_path, "w")
        env = dict(os.environ, PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="", **self.extra_env)
        self.proc = subprocess.Popen(cmd, cwd=self.comfy_dir, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        self.client = ComfyClient(f"http://127.0.0.1:{port}", self.workdir / "output", self.workdir / "input")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode} while starting:\n{self.log_tail()}")
            try:
                self.client.get("/system_stats")
                return self.client
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"ComfyUI did not answer within {timeout} s:\n{self.log_tail()}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, chars: int = 20000) -> str:
        return self.log_text()[-chars:]

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()


# --- UI workflow (as saved and shared) -> API prompt -------------------------------------------

FRONTEND_ONLY_NODES = {"Note", "MarkdownNote"}
_WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def _is_widget(spec) -> bool:
    kind = spec[0]
    return isinstance(kind, list) or kind in _WIDGET_TYPES


def _has_control_widget(spec) -> bool:
    """INT seeds carry a hidden 'control_after_generate' value in widgets_values."""
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return spec[0] == "INT" and bool(opts.get("control_after_generate"))


def workflow_to_prompt(workflow: dict, object_info: dict, overrides: dict | None = None) -> dict:
    """Convert a UI-format workflow into an API prompt.

    overrides: {(node_id, input_name): value} applied after conversion (e.g. the image to load).
    """
    nodes = {n["id"]: n for n in workflow["nodes"]}
    links = {l[0]: l for l in workflow["links"]}  # [id, from_node, from_slot, to_node, to_slot, type]

    def source(link_id):
        _, from_node, from_slot, *_ = links[link_id]
        node = nodes[from_node]
        if node["type"] == "Reroute":
            return source(node["inputs"][0]["link"])
        return [str(from_node), from_slot]

    prompt = {}
    for node in workflow["nodes"]:
        kind = node["type"]
        if kind in FRONTEND_ONLY_NODES or kind == "Reroute" or node.get("mode", 0) in (2, 4):
            continue  # notes, reroutes, muted (2) and bypassed (4) nodes do not run
        if kind not in object_info:
            raise KeyError(f"workflow node {node['id']} has type {kind!r}, which this server does not know")
        info = object_info[kind]["input"]
        by_name = {**info.get("required", {}), **info.get("optional", {})}
        order = object_info[kind].get("input_order", {})
        names = order.get("required", []) + order.get("optional", []) if order else list(by_name)
        specs = [(name, by_name[name]) for name in names]
        linked = {i["name"]: i["link"] for i in node.get("inputs", []) if i.get("link") is not None}
        values = list(node.get("widgets_values") or [])
        inputs = {}
        for name, spec in specs:
            if _is_widget(spec):
                if values:
                    inputs[name] = values.pop(0)
                if _has_control_widget(spec) and values:
                    values.pop(0)
            if name in linked:
                inputs[name] = source(linked[name])
        prompt[str(node["id"])] = {"class_type": kind, "inputs": inputs}
    for (node_id, name), value in (overrides or {}).items():
        prompt[str(node_id)]["inputs"][name] = value
    return prompt


def load_workflow(path) -> dict:
    return json.loads(pathlib.Path(path).read_text())
