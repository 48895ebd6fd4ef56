"""ComfyUI graphs: the `prompt` + `workflow` pair MASUKA writes into each PNG, and reading other people's.

ComfyUI saves two JSON text chunks in a PNG: `prompt`, the API graph (node id → ``{class_type, inputs}``,
a link written ``[node_id, output_slot]``) that its server runs, and `workflow`, the editor's graph (nodes
with positions, ``widgets_values`` and numbered ``links``; newer files nest "subgraphs" in
``definitions.subgraphs``). Dropping such a PNG on ComfyUI opens the workflow.

    prompt, workflow = build_graphs(recipe)        # stock nodes for the recipe's model family
    problems = validate_prompt(prompt)             # [] when every node, input and link fits the schema
    api = workflow_to_prompt(foreign_workflow)     # an editor graph (subgraphs flattened) as an API graph

The schema of the stock nodes is data in `comfy_nodes` (written from ComfyUI's source, URLs there). The
editor-graph layout follows the ComfyUI front end's workflow format version 0.4
(https://github.com/Comfy-Org/ComfyUI_frontend, src/platform/workflow/validation/schemas/workflowSchema.ts,
read 2026-12-05). This module touches no model and no file: it turns dicts into dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from masuka_nb.image.comfy_nodes import NODES, WIDGET_TYPES, widget_names

__all__ = ["COMFY_FILES", "build_graphs", "lora_display_name", "validate_prompt", "validate_workflow", "workflow_to_prompt"]

# The file names ComfyUI's own examples and templates give each model (comfyanonymous.github.io/ComfyUI_examples
# flux/, sd3/, and the flux2 klein template in comfyui-workflow-templates-json 0.1.123; read 2026-12-05).
_FLUX_TE = ("clip_l.safetensors", "t5xxl_fp16.safetensors")
_SD3_TE = ("clip_l.safetensors", "clip_g.safetensors", "t5xxl_fp16.safetensors")
COMFY_FILES: dict[str, dict[str, Any]] = {
    "flux1-dev": {"unet": "flux1-dev.safetensors", "clip": _FLUX_TE, "vae": "ae.safetensors"},
    "flux1-schnell": {"unet": "flux1-schnell.safetensors", "clip": _FLUX_TE, "vae": "ae.safetensors"},
    "tiny-flux": {"unet": "tiny-flux.safetensors", "clip": _FLUX_TE, "vae": "ae.safetensors"},
    "sd35-large": {"ckpt": "sd3.5_large.safetensors", "clip": _SD3_TE},
    "sd35-large-turbo": {"ckpt": "sd3.5_large_turbo.safetensors", "clip": _SD3_TE},
    "sd35-medium": {"ckpt": "sd3.5_medium.safetensors", "clip": _SD3_TE},
    "tiny-sd3": {"ckpt": "tiny-sd3.safetensors", "clip": _SD3_TE},
    "flux2-klein": {"unet": "flux-2-klein-4b.safetensors", "clip": ("qwen_3_4b.safetensors",),
                    "vae": "flux2-vae.safetensors"},
    "tiny-flux2-klein": {"unet": "tiny-flux2-klein.safetensors", "clip": ("qwen_3_4b.safetensors",),
                         "vae": "flux2-vae.safetensors"},
}
SUBGRAPH_IN, SUBGRAPH_OUT = -10, -20  # the ids the front end gives a subgraph's input and output nodes
_UI_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}


# ---------------------------------------------------------------------------------------------------
# building MASUKA's pair

@dataclass
class _Graph:
    """Nodes in order; an input value that is a `_Ref` is a link."""

    nodes: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)

    def add(self, class_type: str, **inputs: Any) -> _Ref:
        node_id = len(self.nodes) + 1
        self.nodes.append((node_id, class_type, inputs))
        return _Ref(node_id, 0)


@dataclass(frozen=True)
class _Ref:
    node: int
    slot: int

    def __getitem__(self, slot: int) -> _Ref:
        return _Ref(self.node, slot)


def lora_display_name(source: str) -> str:
    """The name a LoRA goes by in A1111 text and ComfyUI graphs: its file or folder name without suffixes."""
    path = Path(str(source).rstrip("/"))
    name = path.parent.name if path.name == "pytorch_lora_weights.safetensors" else path.name
    for suffix in (".safetensors", ".kohya"):
        name = name.removesuffix(suffix)
    return name.replace(":", "_") or "lora"


def _lora_file(lora: dict[str, Any]) -> str:
    return lora_display_name(lora["source"]) + ".safetensors"


def build_graphs(recipe: dict[str, Any], *, index: int = 0) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(`prompt`, `workflow`) for image `index` of a MASUKA recipe, or None for a model or kind ComfyUI's
    stock nodes cannot express (edits, video)."""
    files = COMFY_FILES.get(str(recipe.get("model")))
    if files is None or recipe.get("kind") not in (None, "image"):
        return None
    seeds = recipe.get("seeds") or [recipe.get("seed") or 0]
    seed = int(seeds[min(index, len(seeds) - 1)])
    g = _Graph()
    image_name = recipe.get("image_path") and str(recipe["image_path"]).replace("\\", "/").rsplit("/", 1)[-1]
    strength = recipe.get("strength")
    if "ckpt" in files:  # SD3.5: the checkpoint holds MMDiT + VAE, the three text encoders load beside it
        ckpt = g.add("CheckpointLoaderSimple", ckpt_name=files["ckpt"])
        model, vae = ckpt[0], ckpt[2]
        clip = g.add("TripleCLIPLoader", clip_name1=files["clip"][0], clip_name2=files["clip"][1],
                     clip_name3=files["clip"][2])
    else:
        model = g.add("UNETLoader", unet_name=files["unet"], weight_dtype="default")
        if len(files["clip"]) == 2:
            clip = g.add("DualCLIPLoader", clip_name1=files["clip"][0], clip_name2=files["clip"][1], type="flux",
                         device="default")
        else:
            clip = g.add("CLIPLoader", clip_name=files["clip"][0], type="flux2", device="default")
        vae = g.add("VAELoader", vae_name=files["vae"])
    for lora in recipe.get("loras") or []:
        model = g.add("LoraLoaderModelOnly", model=model, lora_name=_lora_file(lora),
                      strength_model=float(lora.get("weight", 1.0)))
    family = "sd3" if "ckpt" in files else "flux2" if len(files["clip"]) == 1 else "flux"
    if family == "sd3":  # diffusers' SD3.5 scheduler config: shift 3.0
        model = g.add("ModelSamplingSD3", model=model, shift=3.0)
    positive = g.add("CLIPTextEncode", text=recipe["prompt"], clip=clip)
    if family == "sd3":
        negative = g.add("CLIPTextEncode", text=recipe.get("negative_prompt") or "", clip=clip)
    else:  # FLUX has no unconditional pass: ComfyUI's templates zero the conditioning out
        negative = g.add("ConditioningZeroOut", conditioning=positive)
    guidance = float(recipe.get("guidance") or 0.0)
    if family == "flux" and recipe.get("model") != "flux1-schnell":  # FLUX.1-dev: guidance is an input
        positive = g.add("FluxGuidance", conditioning=positive, guidance=guidance)
    w, h = int(recipe["width"]), int(recipe["height"])
    if image_name and strength is not None:
        pixels = g.add("LoadImage", image=image_name)
        latent = g.add("VAEEncode", pixels=pixels, vae=vae)
        denoise = float(strength)
    else:
        latent = g.add("EmptyFlux2LatentImage" if family == "flux2" else "EmptySD3LatentImage",
                       width=w, height=h, batch_size=1)
        denoise = 1.0
    if family == "flux2":  # the official FLUX.2 [klein] template's sampler chain
        noise = g.add("RandomNoise", noise_seed=seed)
        sampler = g.add("KSamplerSelect", sampler_name="euler")
        sigmas = g.add("Flux2Scheduler", steps=int(recipe["steps"]), width=w, height=h)
        guider = g.add("CFGGuider", model=model, positive=positive, negative=negative, cfg=guidance)
        samples = g.add("SamplerCustomAdvanced", noise=noise, guider=guider, sampler=sampler, sigmas=sigmas,
                        latent_image=latent)
    else:
        samples = g.add("KSampler", model=model, seed=seed, steps=int(recipe["steps"]),
                        cfg=guidance if family == "sd3" else 1.0, sampler_name="euler",
                        scheduler="sgm_uniform" if family == "sd3" else "simple", positive=positive,
                        negative=negative, latent_image=latent, denoise=denoise)
    decoded = g.add("VAEDecode", samples=samples, vae=vae)
    g.add("SaveImage", images=decoded, filename_prefix="masuka")
    return _as_prompt(g), _as_workflow(g, recipe)


def _as_prompt(g: _Graph) -> dict[str, Any]:
    out = {}
    for node_id, class_type, inputs in g.nodes:
        api = {k: ([str(v.node), v.slot] if isinstance(v, _Ref) else v) for k, v in inputs.items()}
        out[str(node_id)] = {"class_type": class_type, "inputs": api, "_meta": {"title": class_type}}
    return out


def _output_name(class_type: str, slot: int, kind: str) -> str:
    return ("output", "denoised_output")[slot] if class_type == "SamplerCustomAdvanced" else kind


def _as_workflow(g: _Graph, recipe: dict[str, Any]) -> dict[str, Any]:
    links: list[list[Any]] = []
    outputs: dict[tuple[int, int], list[int]] = {}
    ui_nodes = []
    for order, (node_id, class_type, inputs) in enumerate(g.nodes):
        schema = NODES[class_type]
        slots, widgets = [], []
        for name, kind, opts in schema["inputs"]:
            value = inputs.get(name)
            if kind in WIDGET_TYPES:
                widgets.append(value)
                if opts.get("control_after_generate"):
                    widgets.append("fixed")  # "fixed" keeps the seed when the graph is queued again
                continue
            link_id = None
            if isinstance(value, _Ref):
                link_id = len(links) + 1
                links.append([link_id, value.node, value.slot, node_id, len(slots), kind])
                outputs.setdefault((value.node, value.slot), []).append(link_id)
            slots.append({"name": name, "type": kind, "link": link_id})
        ui_nodes.append({"id": node_id, "type": class_type, "pos": [40 + 320 * (order % 6), 60 + 260 * (order // 6)],
                         "size": [300, 120], "flags": {}, "order": order, "mode": 0, "inputs": slots,
                         "properties": {"Node name for S&R": class_type}, "widgets_values": widgets})
    for node in ui_nodes:
        node["outputs"] = [{"name": _output_name(node["type"], slot, kind), "type": kind,
                            "links": outputs.get((node["id"], slot), []), "slot_index": slot}
                           for slot, kind in enumerate(NODES[node["type"]]["outputs"])]
    return {"last_node_id": len(ui_nodes), "last_link_id": len(links), "nodes": ui_nodes, "links": links,
            "groups": [], "config": {}, "version": 0.4,
            "extra": {"masuka": {"model": recipe.get("model"), "note": "Written by MASUKA from its recipe; "
                                 "ComfyUI's sampler noise differs from diffusers', so the image is close, "
                                 "not identical."}}}


# ---------------------------------------------------------------------------------------------------
# checking a graph against the schema

def validate_prompt(prompt: Any) -> list[str]:
    """Every way `prompt` (an API graph) breaks the stock-node schema; [] when it fits."""
    if not isinstance(prompt, dict) or not prompt:
        return ["the prompt is not a non-empty JSON object"]
    problems = []
    for node_id, node in prompt.items():
        where = f"node {node_id}"
        class_type = node.get("class_type") if isinstance(node, dict) else None
        schema = NODES.get(class_type)
        if schema is None:
            problems.append(f"{where}: {class_type!r} is not a stock node MASUKA knows")
            continue
        inputs = node.get("inputs") or {}
        declared = {name: (kind, opts) for name, kind, opts in schema["inputs"]}
        problems += [f"{where} ({class_type}): unknown input {k!r}" for k in inputs if k not in declared]
        for name, (kind, opts) in declared.items():
            if name not in inputs:
                if not opts.get("optional"):
                    problems.append(f"{where} ({class_type}): required input {name!r} is missing")
                continue
            problems += [f"{where} ({class_type}).{name}: {p}" for p in _check_input(prompt, inputs[name], kind, opts)]
    if not any(n.get("class_type") == "SaveImage" for n in prompt.values() if isinstance(n, dict)):
        problems.append("no output node (SaveImage): ComfyUI would refuse to queue it")
    return problems


def _check_input(prompt: dict[str, Any], value: Any, kind: str, opts: dict[str, Any]) -> list[str]:
    if kind not in WIDGET_TYPES:
        if not (isinstance(value, list) and len(value) == 2 and str(value[0]) in prompt and isinstance(value[1], int)):
            return [f"expected a link [node_id, slot] of type {kind}, got {value!r}"]
        origin = prompt[str(value[0])]
        outs = NODES.get(origin.get("class_type"), {}).get("outputs", [])
        if value[1] >= len(outs) or outs[value[1]] != kind:
            got = outs[value[1]] if value[1] < len(outs) else "nothing"
            return [f"linked to output {value[1]} of {origin.get('class_type')}, which is {got}, not {kind}"]
        return []
    if isinstance(value, list):  # a widget fed by a link (a primitive node)
        return _check_input(prompt, value, {"INT": "INT", "FLOAT": "FLOAT"}.get(kind, "STRING"), {}) \
            if kind in ("INT", "FLOAT", "STRING") else []
    if kind == "INT" and (isinstance(value, bool) or not isinstance(value, int)):
        return [f"expected a whole number, got {value!r}"]
    if kind == "FLOAT" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return [f"expected a number, got {value!r}"]
    if kind in ("STRING", "COMBO") and not isinstance(value, str):
        return [f"expected text, got {value!r}"]
    if kind == "BOOLEAN" and not isinstance(value, bool):
        return [f"expected true/false, got {value!r}"]
    if kind in ("INT", "FLOAT") and not opts.get("min", value) <= value <= opts.get("max", value):
        return [f"{value} is outside {opts.get('min')}..{opts.get('max')}"]
    choices = opts.get("choices")
    if kind == "COMBO" and choices is not None and value not in choices:
        return [f"{value!r} is not one of {', '.join(choices[:8])}…"]
    if kind == "COMBO" and choices is None and not value.strip():
        return ["an empty file name"]
    return []


def validate_workflow(workflow: Any) -> list[str]:
    """Every way an editor graph (format 0.4) breaks the schema: structure, widget counts, slot and link types,
    and the API graph it stands for."""
    if not isinstance(workflow, dict):
        return ["the workflow is not a JSON object"]
    problems = [f"missing {k!r}" for k in ("last_node_id", "last_link_id", "nodes", "links", "version")
                if k not in workflow]
    if problems:
        return problems
    nodes = {n["id"]: n for n in workflow["nodes"]}
    for node in workflow["nodes"]:
        schema, where = NODES.get(node.get("type")), f"node {node.get('id')} ({node.get('type')})"
        if schema is None:
            problems.append(f"{where}: not a stock node MASUKA knows")
            continue
        names = widget_names(node["type"]) or []
        expected = len(names) + sum(1 for _, control in names if control)
        if len(node.get("widgets_values") or []) != expected:
            problems.append(f"{where}: {len(node.get('widgets_values') or [])} widget values, expected {expected}")
        linkable = [(n, k) for n, k, _ in schema["inputs"] if k not in WIDGET_TYPES]
        got = [(s.get("name"), s.get("type")) for s in node.get("inputs") or [] if "widget" not in s]
        if got != linkable:
            problems.append(f"{where}: input slots {got} differ from the schema's {linkable}")
        outs = [o.get("type") for o in node.get("outputs") or []]
        if outs != schema["outputs"]:
            problems.append(f"{where}: outputs {outs} differ from the schema's {schema['outputs']}")
    for link in workflow["links"]:
        link_id, origin, o_slot, target, t_slot, kind = link
        src, dst = nodes.get(origin), nodes.get(target)
        if src is None or dst is None:
            problems.append(f"link {link_id}: joins a node that is not in the graph")
            continue
        o_kind = (src.get("outputs") or [{}] * (o_slot + 1))[o_slot].get("type")
        t_slots = dst.get("inputs") or []
        t_kind = t_slots[t_slot].get("type") if t_slot < len(t_slots) else None
        if not o_kind == t_kind == kind:
            problems.append(f"link {link_id}: {o_kind} → {t_kind} labelled {kind}")
        elif t_slots[t_slot].get("link") != link_id:
            problems.append(f"link {link_id}: the target slot does not name it")
    if not problems:
        problems += [f"as an API graph: {p}" for p in validate_prompt(workflow_to_prompt(workflow))]
    return problems


# ---------------------------------------------------------------------------------------------------
# reading an editor graph as an API graph

@dataclass
class _Level:
    """One graph level: the root, or one subgraph instance (its nodes get ids "<instance>:<node>")."""

    nodes: dict[Any, dict[str, Any]]
    links: dict[Any, tuple[Any, int, Any, int, str]]
    prefix: str = ""
    definition: dict[str, Any] | None = None
    parent: _Level | None = None
    instance: dict[str, Any] | None = None


def _links(raw: list[Any]) -> dict[Any, tuple[Any, int, Any, int, str]]:
    out = {}
    for link in raw or []:
        if isinstance(link, dict):
            out[link["id"]] = (link["origin_id"], link["origin_slot"], link["target_id"], link["target_slot"],
                               link.get("type"))
        elif isinstance(link, list) and len(link) >= 6:
            out[link[0]] = (link[1], link[2], link[3], link[4], link[5])
    return out


def workflow_to_prompt(workflow: dict[str, Any]) -> dict[str, Any]:
    """The API graph an editor graph runs: subgraphs flattened, reroutes, primitives and bypassed nodes
    resolved, widget values named by the schema (nodes the schema does not know keep ``_widgets_values``)."""
    subgraphs = {sg["id"]: sg for sg in (workflow.get("definitions") or {}).get("subgraphs") or []}
    root = _Level({n["id"]: n for n in workflow.get("nodes") or []}, _links(workflow.get("links")))
    out: dict[str, Any] = {}
    _emit(root, subgraphs, out, depth=0)
    return out


def _emit(level: _Level, subgraphs: dict[str, Any], out: dict[str, Any], depth: int) -> None:
    for node in level.nodes.values():
        kind = node.get("type")
        if kind in subgraphs:
            if depth < 8 and node.get("mode") not in (2, 4):  # a subgraph that contains itself would never end
                _emit(_enter(level, node, subgraphs[kind]), subgraphs, out, depth + 1)
            continue
        if kind in _UI_ONLY or node.get("mode") in (2, 4):  # 2 muted, 4 bypassed: neither runs
            continue
        inputs = _widget_inputs(node)
        for slot in node.get("inputs") or []:
            if slot.get("link") is None:
                continue
            ref = _resolve(level, slot["link"], subgraphs, depth)
            if ref is not None:
                inputs[slot["name"]] = ref[1] if ref[0] == "value" else [ref[1], ref[2]]
        out[f"{level.prefix}{node['id']}"] = {"class_type": kind, "inputs": inputs,
                                               "_meta": {"title": node.get("title") or kind}}


def _widget_inputs(node: dict[str, Any]) -> dict[str, Any]:
    values = node.get("widgets_values")
    if isinstance(values, dict):  # some custom nodes store widgets by name
        return {k: v for k, v in values.items() if not isinstance(v, dict)}
    names = widget_names(node.get("type"))
    if names is None:
        return {"_widgets_values": list(values or [])}
    inputs, i = {}, 0
    for name, control in names:
        if i >= len(values or []):
            break
        inputs[name] = values[i]
        i += 2 if control else 1
    return inputs


def _enter(level: _Level, instance: dict[str, Any], definition: dict[str, Any]) -> _Level:
    return _Level({n["id"]: n for n in definition.get("nodes") or []}, _links(definition.get("links")),
                  f"{level.prefix}{instance['id']}:", definition, level, instance)


def _resolve(level: _Level, link_id: Any, subgraphs: dict[str, Any], depth: int) -> tuple | None:
    """("node", api id, slot) or ("value", v) for what feeds link `link_id`; None when nothing does."""
    link = level.links.get(link_id)
    if link is None or depth > 16:
        return None
    origin, slot, _, _, kind = link
    if origin == SUBGRAPH_IN and level.definition is not None:
        sg_inputs = level.definition.get("inputs") or []
        if slot >= len(sg_inputs):
            return None
        name = sg_inputs[slot].get("name")
        outer = [s for s in level.instance.get("inputs") or [] if s.get("name") == name]
        if outer and outer[0].get("link") is not None:
            return _resolve(level.parent, outer[0]["link"], subgraphs, depth + 1)
        return None  # not fed from outside: the inner node's own widget value stands
    node = level.nodes.get(origin)
    if node is None:
        return None
    if node.get("type") in subgraphs:
        inner = _enter(level, node, subgraphs[node["type"]])
        outs = inner.definition.get("outputs") or []
        ids = outs[slot].get("linkIds") if slot < len(outs) else None
        return _resolve(inner, ids[0], subgraphs, depth + 1) if ids else None
    if node.get("type") == "PrimitiveNode":
        values = node.get("widgets_values") or [None]
        return ("value", values[0])
    if node.get("type") == "Reroute" or node.get("mode") == 4:  # bypassed: the same-typed input passes through
        for s in node.get("inputs") or []:
            if s.get("link") is not None and (node.get("type") == "Reroute" or s.get("type") == kind):
                return _resolve(level, s["link"], subgraphs, depth + 1)
        return None
    if node.get("mode") == 2:
        return None
    return ("node", f"{level.prefix}{node['id']}", slot)
