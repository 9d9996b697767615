"""ComfyUI's own web page in headless Chromium, driven by the `playwright` package: what a user does
with a workflow file (drop it on the canvas, look at it, press Queue), done by the test suite.

The browser is Debian's `chromium` package, never a `playwright install` download: its real binary
(not the /usr/bin wrapper script) is found with `dpkg -L chromium`, or taken from $CHROMIUM_PATH.
`.ci/bootstrap.sh` installs both; where they are missing, `launch()` raises with how to install them.
"""
import json
import os
import pathlib
import shutil
import subprocess
import urllib.request

INSTALL_HINT = ("install them with `apt-get install -y chromium` (as root) and "
                "`.venv/bin/python -m pip install playwright` (never `playwright install`), or run `make bootstrap` "
                "as root; set CHROMIUM_PATH to use another Chromium binary")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu"]
VIEWPORT = {"width": 1800, "height": 1000}


class BrowserMissing(RuntimeError):
    pass


def chromium_path() -> pathlib.Path:
    if os.environ.get("CHROMIUM_PATH"):
        return pathlib.Path(os.environ["CHROMIUM_PATH"])
    if shutil.which("dpkg"):
        listed = subprocess.run(["dpkg", "-L", "chromium"], capture_output=True, text=True).stdout.split()
        # The package's real ELF binary; /usr/bin/chromium is a shell wrapper around it.
        for path in listed:
            if path.endswith("/chromium") and "/lib/" in path and pathlib.Path(path).is_file():
                return pathlib.Path(path)
    raise BrowserMissing(f"Debian's chromium package is not installed: {INSTALL_HINT}")


def launch():
    """(playwright, browser): one headless Chromium for a whole test session. Stop with close()."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise BrowserMissing(f"the playwright Python package is not installed: {INSTALL_HINT}") from None
    executable = chromium_path()
    playwright = sync_playwright().start()
    try:
        return playwright, playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
    except Exception:
        playwright.stop()
        raise


def close(playwright, browser):
    browser.close()
    playwright.stop()


# Stored before the page opens. Without the first, the page opens the template browser over the
# canvas; the others keep screenshots plain: no minimap, and full node drawing when zoomed out.
PAGE_SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.Minimap.Visible": False, "Comfy.Graph.CanvasInfo": False,
                 "LiteGraph.Canvas.MinFontSizeForLOD": 0}


def store_settings(base_url: str, settings: dict = PAGE_SETTINGS):
    for key, value in settings.items():
        req = urllib.request.Request(f"{base_url}/settings/{key}", data=json.dumps(value).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=30).read()


def open_page(browser, base_url: str, timeout_ms: int = 120_000):
    """A fresh page on the server's editor, waited on until the app and its node definitions are ready."""
    page = browser.new_page(viewport=VIEWPORT)
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.add_init_script("localStorage.setItem('vueNodesBannerDismissed', 'true')")  # the "Nodes 2.0" banner
    page.goto(base_url, timeout=timeout_ms)
    page.wait_for_function("() => window.app && window.app.graph && window.app.canvas && "
                           "window.LiteGraph && Object.keys(LiteGraph.registered_node_types).length > 50",
                           timeout=timeout_ms)
    return page


def rendered(page, frames: int = 2):
    """Wait until the page has drawn `frames` more animation frames: what a change of state (a dialog
    opened, a canvas moved) needs to reach the screen, without a fixed sleep."""
    page.evaluate("""n => new Promise(done => {
      const next = k => k ? requestAnimationFrame(() => next(k - 1)) : done();
      next(n);
    })""", frames)


def load_workflow(page, workflow: dict, name: str):
    """As a drag-and-drop of the file does: app.loadGraphData with the workflow's own name. The
    promise settles after the frontend has opened its missing-nodes/models reports; then they render."""
    page.evaluate("([wf, name]) => window.app.loadGraphData(wf, true, true, name)", [workflow, name])
    rendered(page)


VISIBLE_DIALOGS_JS = """() => [...document.querySelectorAll('.p-dialog, .comfy-modal, [role=dialog]')]
    .filter(d => d.offsetParent !== null || getComputedStyle(d).display !== 'none' && d.getClientRects().length)
    .map(d => d.innerText.slice(0, 2000))"""

GRAPH_STATE_JS = """() => {
  const g = window.app.graph;
  return {
    nodes: g._nodes.map(n => ({
      id: n.id, type: n.type, title: n.title,
      registered: n.type in LiteGraph.registered_node_types,
      has_errors: !!n.has_errors,
      widgets_values: n.serialize().widgets_values ?? [],  // as the page would save them
      out_of_range: (n.widgets || []).filter(w => typeof w.value === "number" &&
          (w.value < (w.options?.min ?? -Infinity) || w.value > (w.options?.max ?? Infinity)))
        .map(w => `${w.name} = ${w.value} is outside the widget's range ${w.options.min}..${w.options.max}`),
      bounding: Array.from(n.getBounding()),
    })),
    links: Object.values(g.links ?? {}).filter(Boolean).map(l => [l.origin_id, l.target_id]),
    groups: (g._groups || []).map(gr => ({title: gr.title, bounding: Array.from(gr._bounding ?? gr.bounding)})),
  };
}"""


# Newer frontends (1.49) report a loaded workflow's problems (missing node types, media, models) in
# an error overlay instead of a dialog; its "View details" opens the side panel's error groups, which
# name what is wrong. Located by the frontend's own data-testid attributes.
ERROR_OVERLAY = "[data-testid=error-overlay]"
ERROR_OVERLAY_DETAILS = "[data-testid=error-overlay-see-errors]"
ERROR_GROUPS_JS = """() => [...document.querySelectorAll('[data-testid^=error-group-]')]
    .filter(g => g.getClientRects().length && !g.parentElement.closest('[data-testid^=error-group-]'))
    .map(g => g.innerText.slice(0, 2000))"""


def visible_dialogs(page) -> list[str]:
    """The texts of the dialogs open on the page."""
    return page.evaluate(VISIBLE_DIALOGS_JS)


def shown_errors(page) -> list[str]:
    """Every problem report the page shows a user: open dialogs (frontends up to 1.3x) and the error
    overlay with its details (newer frontends; opening the details is what the user would do)."""
    texts = visible_dialogs(page)
    overlay = page.locator(ERROR_OVERLAY)
    if overlay.count() and overlay.first.is_visible():
        summary = overlay.first.inner_text()
        if page.locator(ERROR_OVERLAY_DETAILS).count():
            page.locator(ERROR_OVERLAY_DETAILS).first.click()
            page.locator("[data-testid^=error-group-]").first.wait_for(state="visible", timeout=30_000)
        details = page.evaluate(ERROR_GROUPS_JS)
        texts += [f"{summary.splitlines()[0]}: {d}" for d in details] or [summary]
    return texts


def graph_state(page) -> dict:
    return page.evaluate(GRAPH_STATE_JS)


def graph_to_prompt(page) -> dict:
    """The API prompt the page would queue, as app.graphToPrompt builds it (UI-only fields dropped)."""
    output = page.evaluate("async () => (await window.app.graphToPrompt()).output")
    return {nid: {"class_type": n["class_type"], "inputs": n["inputs"]} for nid, n in output.items()}


def queue_from_page(page, timeout_ms: int = 60_000) -> dict:
    """Press Queue the way the page does (app.queuePrompt) and return the server's answer to the
    POST /prompt it sends: {"prompt_id": ...} or, when refused, {"status": 400, "error": ...}."""
    with page.expect_response(lambda r: r.url.endswith("/prompt") and r.request.method == "POST",
                              timeout=timeout_ms) as answer:
        page.evaluate("() => { window.app.queuePrompt(0, 1); }")
    response = answer.value
    body = json.loads(response.text() or "{}")
    return body if response.ok else {"status": response.status, **body}


def fit_view(page, margins=(70, 110, 20, 20)):
    """Zoom and pan so the whole graph (nodes and groups) fills the canvas between the page's menus
    (margins: left, top, right, bottom in CSS pixels), for a screenshot."""
    page.evaluate("""([ml, mt, mr, mb]) => {
      const c = window.app.canvas, g = window.app.graph;
      const boxes = g._nodes.map(n => Array.from(n.getBounding()))
        .concat((g._groups || []).map(gr => Array.from(gr._bounding ?? gr.bounding)));
      const x0 = Math.min(...boxes.map(b => b[0])), y0 = Math.min(...boxes.map(b => b[1]));
      const x1 = Math.max(...boxes.map(b => b[0] + b[2])), y1 = Math.max(...boxes.map(b => b[1] + b[3]));
      const w = window.innerWidth - ml - mr, h = window.innerHeight - mt - mb;
      const scale = Math.min(w / (x1 - x0), h / (y1 - y0));
      c.ds.scale = scale;
      c.ds.offset[0] = ml / scale - x0;
      c.ds.offset[1] = mt / scale - y0;
      c.setDirty(true, true);
    }""", list(margins))
    rendered(page)


def show_box(page, box, scale: float, margin: int = 12, left: int = 70, top: int = 110) -> dict:
    """Zoom to `scale` and pan so the canvas box (x, y, w, h) sits `margin` px inside the canvas, right of the
    page's side bar and below its top menus; returns the screenshot clip (CSS px) around it. The viewport must be
    large enough."""
    page.evaluate("""([box, scale, margin, left, top]) => {
      const c = window.app.canvas;
      c.ds.scale = scale;
      c.ds.offset[0] = (left + margin) / scale - box[0];
      c.ds.offset[1] = (top + margin) / scale - box[1];
      c.setDirty(true, true);
    }""", [list(box), scale, margin, left, top])
    rendered(page)
    return {"x": left, "y": top, "width": box[2] * scale + 2 * margin, "height": box[3] * scale + 2 * margin}
