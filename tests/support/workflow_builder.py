"""Write UI-format workflow JSON (what ComfyUI saves and users share) from a compact graph spec,
using a live server's /object_info for widget order, so the files load in the editor as they are.

    nodes = {1: ("LoadImage", {"image": "x.png"}), 2: ("ImageScaleBy", {"image": (1, 0), "scale_by": 4.0})}
    build_workflow(nodes, object_info, titles={2: "Upscale"})

A tuple (node_id, slot) is a link; anything else is a widget value. Used to author workflows/.
"""
from .comfy_live import _has_control_widget, _is_widget


def build_workflow(nodes: dict, object_info: dict, titles: dict | None = None, column_width: int = 340) -> dict:
    links, ui_nodes = [], []
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
        ui_inputs, widgets = [], []
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
                if value is None or isinstance(value, tuple):
                    value = spec[1].get("default") if len(spec) > 1 else None
                    if value is None and kind_name == "COMBO":
                        options = spec[0] if isinstance(spec[0], list) else spec[1].get("options", [])
                        value = options[0] if options else ""
                widgets.append(value)
                if _has_control_widget(spec):
                    widgets.append("fixed")
        outputs = [{"name": name, "type": kind_out, "links": out_links.get((node_id, slot)) or None, "slot_index": slot}
                   for slot, (name, kind_out) in enumerate(zip(info["output_name"], info["output"]))]
        node = {"id": node_id, "type": kind, "pos": [40 + column_width * (order // 3), 60 + 260 * (order % 3)],
                "size": [320, 140], "flags": {}, "order": order, "mode": 0, "inputs": ui_inputs, "outputs": outputs,
                "properties": {"Node name for S&R": kind}, "widgets_values": widgets}
        if titles and node_id in titles:
            node["title"] = titles[node_id]
        ui_nodes.append(node)
    return {"last_node_id": max(nodes), "last_link_id": len(links), "nodes": ui_nodes, "links": links, "groups": [],
            "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4}
