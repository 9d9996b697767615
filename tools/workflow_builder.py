"""Write UI-format workflow JSON (what ComfyUI saves and users share) from a compact graph spec,
using a live server's /object_info for widget order, so the files load in the editor as they are.

    nodes = {1: ("LoadImage", {"image": "x.png"}), 2: ("ImageScaleBy", {"image": (1, 0), "scale_by": 4.0})}
    build_workflow(nodes, object_info, titles={2: "Upscale"}, note="# What this does", model_files={...})

A tuple (node_id, slot) is a link; anything else is a widget value. Used to author workflows/ (by
tools/make_workflows.py) and by the tests that check their shape; needs tests/ on sys.path (support/).

Every graph gets the same readable shape, derived from the nodes themselves so a new workflow needs
no coordinates: three groups left to right, "load" (loaders and the chain that turns the input
image into the sampler's start latent), "sample" (everything else the sampler needs) and "finish"
(what comes after the sampler), each laid out in columns by link depth, plus a Markdown note on the
far left. Model-loading widgets get `properties.models` entries, the form the frontend reads to
offer a download when a file is missing.
"""
from support.comfy_live import _has_control_widget, _is_widget

GROUPS = ("load", "sample", "finish")
GROUP_COLORS = {"load": "#3f5159", "sample": "#3f593f", "finish": "#593f59"}
MODEL_EXTENSIONS = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin", ".gguf")
MODEL_FILE_KEYS = ("url", "directory", "hash", "hash_type")  # the frontend's ModelFile schema, besides name

# Layout constants in canvas pixels. LiteGraph draws a node's title bar above its `pos`.
TITLE_H, SLOT_H, WIDGET_H, MULTILINE_H, IMAGE_UPLOAD_H = 30, 22, 26, 90, 240  # upload button + preview
NODE_W, NOTE_W, COL_GAP, ROW_GAP, GROUP_PAD, GROUP_TITLE_H = 320, 440, 70, 50, 20, 50
CHAR_W = 8.5  # the title font's width per character, so long titles fit the node


def is_model_value(value) -> bool:
    return isinstance(value, str) and value.lower().endswith(MODEL_EXTENSIONS)


def _links_of(nodes: dict) -> dict:
    """{node_id: [(input name, (source id, slot)), ...]}"""
    return {nid: [(name, v) for name, v in inputs.items() if isinstance(v, tuple)] for nid, (_, inputs) in nodes.items()}


def _ancestors(start, links: dict) -> set:
    seen, todo = set(), [start]
    while todo:
        nid = todo.pop()
        if nid not in seen:
            seen.add(nid)
            todo += [src for _, (src, _) in links[nid]]
    return seen


def node_groups(nodes: dict, object_info: dict) -> dict:
    """{node_id: "load" | "sample" | "finish"}, from the graph's shape:
    a sampler is a node that takes a LATENT link and returns a LATENT; "finish" is everything
    downstream of a sampler; "load" is the loaders (category or name says so) plus everything the
    sampler's LATENT input is made from; "sample" is the rest. An output node that is not after a
    sampler (a preview of a map) joins its source's group."""
    links = _links_of(nodes)
    out_types = {nid: object_info[kind]["output"] for nid, (kind, _) in nodes.items()}
    samplers = [nid for nid in nodes if "LATENT" in out_types[nid]
                and any(out_types[src][slot] == "LATENT" for _, (src, slot) in links[nid])]
    children = {nid: [] for nid in nodes}
    for nid, ins in links.items():
        for _, (src, _) in ins:
            children[src].append(nid)
    finish, todo = set(), [c for s in samplers for c in children[s]]
    while todo:
        nid = todo.pop()
        if nid not in finish:
            finish.add(nid)
            todo += children[nid]
    load = set()
    for s in samplers:
        for _, (src, slot) in links[s]:
            if out_types[src][slot] == "LATENT":
                load |= _ancestors(src, links)
    for nid, (kind, _) in nodes.items():
        category = object_info[kind].get("category", "").lower()
        if "loader" in category or kind.startswith("Load") or kind.endswith("Loader"):
            load.add(nid)
    groups = {}
    for nid in nodes:  # insertion order of a spec is its reading order, sources first
        if nid in finish:
            groups[nid] = "finish"
        elif nid in load:
            groups[nid] = "load"
        elif object_info[nodes[nid][0]].get("output_node") and links[nid]:
            groups[nid] = None  # decided below, from its source
        else:
            groups[nid] = "sample"
    for nid, group in groups.items():
        if group is None:
            groups[nid] = groups[links[nid][0][1][0]] or "sample"
    return groups


def node_height(widget_specs: list, n_slots: int) -> int:
    """The body height the editor gives a node (checked against the page by the browser tests)."""
    height = SLOT_H * n_slots + 16
    for spec in widget_specs:
        opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
        height += MULTILINE_H if opts.get("multiline") else WIDGET_H
        height += WIDGET_H * _has_control_widget(spec) + IMAGE_UPLOAD_H * bool(opts.get("image_upload"))
    return height


def note_height(text: str, width: int = NOTE_W) -> int:
    chars_per_line = int(width / 7.5)
    lines = sum(max(1, -(-len(line) // chars_per_line)) for line in text.splitlines())
    return 40 + 20 * lines


def _columns(members: list, links: dict) -> list[list]:
    """Members of one group in columns: a node's column is its longest link path within the group."""
    inside, depth = set(members), {}

    def depth_of(nid):
        if nid not in depth:
            depth[nid] = max([depth_of(src) + 1 for _, (src, _) in links[nid] if src in inside] or [0])
        return depth[nid]

    for nid in members:
        depth_of(nid)
    return [[nid for nid in members if depth[nid] == d] for d in range(max(depth.values()) + 1)] if depth else []


def layout(nodes: dict, sizes: dict, groups: dict, note_size: tuple | None) -> tuple[dict, list]:
    """Positions {node_id: [x, y]} and UI groups; left to right: note, load, sample, finish."""
    links = _links_of(nodes)
    positions, ui_groups = {}, []
    x, top = 40, 80
    if note_size:
        positions["note"] = [x, top + GROUP_TITLE_H]
        x += note_size[0] + COL_GAP
    for group in GROUPS:
        members = [nid for nid in nodes if groups[nid] == group]
        if not members:
            continue
        left, bottom = x, top + GROUP_TITLE_H
        x += GROUP_PAD
        for column in _columns(members, links):
            y = top + GROUP_TITLE_H + TITLE_H
            for nid in column:
                positions[nid] = [x, y]
                y += sizes[nid][1] + TITLE_H + ROW_GAP
            bottom = max(bottom, y - ROW_GAP)
            x += max(sizes[nid][0] for nid in column) + COL_GAP
        right = x - COL_GAP + GROUP_PAD
        ui_groups.append({"title": group, "bounding": [left, top, right - left, bottom + GROUP_PAD - top],
                          "color": GROUP_COLORS[group], "font_size": 24, "flags": {}})
        x = right + COL_GAP
    return positions, ui_groups


def model_entries(values: list, model_files: dict) -> list[dict]:
    entries = []
    for value in values:
        if is_model_value(value) and value in model_files:
            entry = {"name": value, **{k: model_files[value][k] for k in MODEL_FILE_KEYS if k in model_files[value]}}
            entries.append(entry)
    return entries


def build_workflow(nodes: dict, object_info: dict, titles: dict | None = None, note: str | None = None,
                   model_files: dict | None = None) -> dict:
    titles, model_files = titles or {}, model_files or {}
    links, ui_nodes, sizes = [], {}, {}
    out_links = {}  # (node_id, slot) -> [link ids]
    for node_id, (kind, inputs) in nodes.items():
        for name, value in inputs.items():
            if isinstance(value, tuple):
                links.append([len(links) + 1, value[0], value[1], node_id, None, None])
                out_links.setdefault(value, []).append(len(links))
    for order, (node_id, (kind, inputs)) in enumerate(nodes.items()):
        info = object_info[kind]
        specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        names = info["input_order"].get("required", []) + info["input_order"].get("optional", [])
        ui_inputs, widgets, widget_specs = [], [], []
        for name in names:
            spec, value = specs[name], inputs.get(name)
            kind_name = "COMBO" if isinstance(spec[0], list) else spec[0]
            if isinstance(value, tuple):
                link = next(l for l in links if l[3] == node_id and nodes[node_id][1].get(name) == (l[1], l[2]) and l[4] is None)
                link[4] = len(ui_inputs)
                link[5] = object_info[nodes[value[0]][0]]["output"][value[1]]
                entry = {"name": name, "type": kind_name, "link": link[0]}
                if _is_widget(spec):
                    entry["widget"] = {"name": name}
                ui_inputs.append(entry)
            if _is_widget(spec):
                widget_specs.append(spec)
                if value is None or isinstance(value, tuple):
                    value = spec[1].get("default") if len(spec) > 1 else None
                    if value is None and kind_name == "COMBO":
                        options = spec[0] if isinstance(spec[0], list) else spec[1].get("options", [])
                        value = options[0] if options else ""
                widgets.append(value)
                if _has_control_widget(spec):
                    widgets.append("fixed")
                if len(spec) > 1 and isinstance(spec[1], dict) and spec[1].get("image_upload"):
                    widgets.append("image")  # the upload button's value, as the editor saves it
        outputs = [{"name": name, "type": kind_out, "links": out_links.get((node_id, slot)) or None, "slot_index": slot}
                   for slot, (name, kind_out) in enumerate(zip(info["output_name"], info["output"]))]
        title = titles.get(node_id, info.get("display_name") or kind)
        sizes[node_id] = [max(NODE_W, int(CHAR_W * len(title)) + 60),
                          node_height(widget_specs, max(len([i for i in ui_inputs if "widget" not in i]), len(outputs)))]
        node = {"id": node_id, "type": kind, "pos": None, "size": sizes[node_id], "flags": {}, "order": order,
                "mode": 0, "inputs": ui_inputs, "outputs": outputs, "properties": {"Node name for S&R": kind},
                "widgets_values": widgets}
        models = model_entries(widgets, model_files)
        if models:
            node["properties"]["models"] = models
        if node_id in titles:
            node["title"] = titles[node_id]
        ui_nodes[node_id] = node
    note_size = (NOTE_W, note_height(note)) if note else None
    positions, groups = layout(nodes, sizes, node_groups(nodes, object_info), note_size)
    for node_id, node in ui_nodes.items():
        node["pos"] = positions[node_id]
    last_id = max(nodes)
    if note:
        last_id += 1
        ui_nodes[last_id] = {"id": last_id, "type": "MarkdownNote", "title": "Read me", "pos": positions["note"],
                             "size": list(note_size), "flags": {}, "order": len(ui_nodes), "mode": 0, "inputs": [],
                             "outputs": [], "properties": {}, "widgets_values": [note.strip() + "\n"],
                             "color": "#432", "bgcolor": "#653"}
    return {"last_node_id": last_id, "last_link_id": len(links), "nodes": list(ui_nodes.values()), "links": links,
            "groups": groups, "config": {}, "extra": {"ds": {"scale": 0.75, "offset": [0, 0]}}, "version": 0.4}
