"""The code tree keeps its layers, read from the imports with `ast` (nothing is imported):

    image_ops/      image operations          imports only the pack's errors
    samplers/       the math of sampling      may import image_ops/
    model_patches/  networks, patches, files  may import samplers/ and image_ops/
    nodes/          thin ComfyUI nodes        may import everything, defines no tensor math

`clear_errors.py` (the error policy) is shared by all. A node file imports no torch (only
nodes/validation.py, to recognise a tensor and check it is finite) and calls no tensor method.
"""
import ast
import pathlib

import pytest

PACK = pathlib.Path(__file__).resolve().parents[1]
SHARED = {"clear_errors"}
MAY_IMPORT = {
    "image_ops": {"image_ops"},
    "samplers": {"samplers", "image_ops"},
    "model_patches": {"model_patches", "samplers", "image_ops"},
}
PACK_PARTS = {"image_ops", "samplers", "model_patches", "nodes", "clear_errors"}
TORCH_IN_NODES = {"validation.py": {"Tensor", "isfinite"}}  # recognising and checking inputs, no math
TENSOR_METHODS = {"expand", "movedim", "permute", "reshape", "view", "contiguous", "clamp", "interpolate", "cat",
                  "stack", "repeat", "flip", "zeros", "ones", "randn", "mean", "sum", "matmul", "pad", "unsqueeze"}


def pack_imports(path: pathlib.Path, source: str | None = None) -> list[tuple[int, str]]:
    """(line, top-level pack part) for every import of the pack's own code in one file, relative
    (`from ..samplers.x import y`) or absolute (`timeaware_sr.samplers`), at any depth of the file."""
    tree = ast.parse(path.read_text() if source is None else source)
    package = list(path.relative_to(PACK).parts[:-1])  # e.g. ["model_patches", "tss"]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
            target = base + (node.module.split(".") if node.module else [])
            if not target:  # `from .. import x` at the top: x is the part
                target = [alias.name for alias in node.names][:1]
            found.append((node.lineno, target[0]))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("timeaware_sr."):
            found.append((node.lineno, node.module.split(".")[1]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[1]) for a in node.names if a.name.startswith("timeaware_sr.")]
    return [(line, part) for line, part in found if part in PACK_PARTS]


def layer_violations(path: pathlib.Path, source: str | None = None) -> list[str]:
    layer = path.relative_to(PACK).parts[0]
    allowed = MAY_IMPORT.get(layer)
    if allowed is None:
        return []
    return [f"{path.relative_to(PACK)}:{line} imports {part}/ ({layer}/ may import {sorted(allowed | SHARED)})"
            for line, part in pack_imports(path, source) if part not in allowed | SHARED]


def tensor_math_in_node(path: pathlib.Path, source: str | None = None) -> list[str]:
    tree = ast.parse(path.read_text() if source is None else source)
    allowed_torch = TORCH_IN_NODES.get(path.name)
    problems = []
    for node in ast.walk(tree):
        imported = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        if any(name.split(".")[0] == "torch" for name in imported) and allowed_torch is None:
            problems.append(f"{path.name}:{node.lineno} imports torch")
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "torch":
            if allowed_torch is None or node.attr not in allowed_torch:
                problems.append(f"{path.name}:{node.lineno} uses torch.{node.attr}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in TENSOR_METHODS:
            problems.append(f"{path.name}:{node.lineno} calls .{node.func.attr}()")
    return problems


def product_files(*layers):
    return sorted(p for layer in layers for p in (PACK / layer).rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("layer", sorted(MAY_IMPORT))
def test_each_layer_imports_only_the_layers_below_it(layer):
    files = product_files(layer)
    assert files
    problems = [v for path in files for v in layer_violations(path)]
    assert not problems, "\n".join(problems)


def test_nodes_define_no_tensor_math():
    files = product_files("nodes")
    assert len(files) > 10
    problems = [p for path in files for p in tensor_math_in_node(path)]
    assert not problems, "\n".join(problems)


def test_the_checks_see_a_crossing_import_and_tensor_math():
    """The two checks above can fail: a sampler importing a patch, relative or absolute, at any depth."""
    sampler = PACK / "samplers" / "example.py"
    assert layer_violations(sampler, "from ..model_patches.tss import spatial_timestep\n")
    assert layer_violations(sampler, "def f():\n    from timeaware_sr.nodes import x\n")
    assert not layer_violations(sampler, "from ..image_ops.sds_map import to_latent_size\nfrom .ddpm import x\n")
    patch = PACK / "model_patches" / "tss" / "example.py"
    assert not layer_violations(patch, "from ...samplers.ddpm import SIGMA_MAP_KEY\n")
    assert layer_violations(patch, "from ...nodes.validation import check_inputs\n")
    node = PACK / "nodes" / "example.py"
    assert tensor_math_in_node(node, "import torch\n")
    assert tensor_math_in_node(node, "def f(v):\n    return v[..., None].expand(-1, 3)\n")
    assert not tensor_math_in_node(node, "def f(v):\n    return v.shape[1:3]\n")
