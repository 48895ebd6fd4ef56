"""The ComfyUI pair in every MASUKA PNG: both graphs fit ComfyUI's node schema for the stock nodes used (written
from ComfyUI's source, masuka_nb/image/comfy_nodes.py), the editor graph stands for the same API graph, and the
checker itself catches what ComfyUI would refuse. The real templates' node shapes agree with the schema."""

from __future__ import annotations

import copy
import json

import pytest
from PIL import Image

import masuka_nb as mk
from masuka_nb.image.comfy import build_graphs, validate_prompt, validate_workflow, workflow_to_prompt
from masuka_nb.image.comfy_nodes import NODES, widget_names


def _strip(graph):
    return {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in graph.items()}


def test_a_masuka_png_carries_a_comfy_pair_that_fits_the_schema(flux_lora):
    res = mk.generate("a paper crane", model="tiny-flux", seed=11, width=32, height=32, steps=2, loras=[(flux_lora, 0.7)])
    with Image.open(res.paths[0]) as im:
        prompt, workflow = json.loads(im.info["prompt"]), json.loads(im.info["workflow"])
    assert validate_prompt(prompt) == [] and validate_workflow(workflow) == []
    assert _strip(workflow_to_prompt(workflow)) == _strip(prompt)
    kinds = {n["class_type"] for n in prompt.values()}
    assert {"UNETLoader", "DualCLIPLoader", "LoraLoaderModelOnly", "FluxGuidance", "KSampler", "SaveImage"} <= kinds
    sampler = next(n["inputs"] for n in prompt.values() if n["class_type"] == "KSampler")
    assert (sampler["seed"], sampler["steps"], sampler["sampler_name"]) == (11, 2, "euler")
    lora = next(n["inputs"] for n in prompt.values() if n["class_type"] == "LoraLoaderModelOnly")
    assert lora["strength_model"] == 0.7 and lora["lora_name"] == "flux-style.safetensors"


@pytest.mark.parametrize("model", ["flux1-dev", "flux1-schnell", "sd35-large", "sd35-medium", "flux2-klein",
                                   "tiny-sd3", "tiny-flux2-klein"])
def test_each_family_builds_a_graph_that_fits(model):
    recipe = {"model": model, "prompt": "a fox", "negative_prompt": "blur", "width": 1024, "height": 768,
              "steps": 20, "guidance": 4.0, "seeds": [3, 4], "loras": []}
    prompt, workflow = build_graphs(recipe, index=1)
    assert validate_prompt(prompt) == [] and validate_workflow(workflow) == []
    again = mk.read_recipe(text=json.dumps(prompt))  # and MASUKA reads its own graph back
    assert (again.model, again.seed, again.steps, again.width, again.height) == (model, 4, 20, 1024, 768)


def test_image_to_image_uses_load_image_and_the_strength_as_denoise():
    recipe = {"model": "flux1-dev", "prompt": "x", "width": 512, "height": 512, "steps": 10, "guidance": 3.5,
              "seeds": [1], "loras": [], "strength": 0.4, "image_path": "/content/in/cat.png"}
    prompt, workflow = build_graphs(recipe)
    assert validate_workflow(workflow) == []
    load = next(n for n in prompt.values() if n["class_type"] == "LoadImage")
    sampler = next(n for n in prompt.values() if n["class_type"] == "KSampler")
    assert load["inputs"]["image"] == "cat.png" and sampler["inputs"]["denoise"] == 0.4
    assert build_graphs({**recipe, "kind": "edit"}) is None and build_graphs({**recipe, "model": "wan2.1-t2v-1.3b"}) is None


def test_the_checker_catches_what_comfyui_refuses():
    prompt, workflow = build_graphs({"model": "flux1-dev", "prompt": "x", "width": 512, "height": 512, "steps": 10,
                                     "guidance": 3.5, "seeds": [1], "loras": []})
    sampler = next(k for k, n in prompt.items() if n["class_type"] == "KSampler")
    decode = next(k for k, n in prompt.items() if n["class_type"] == "VAEDecode")
    cases = {
        "not one of": ("sampler_name", "euler_magic"),
        "outside": ("steps", 0),
        "expected a whole number": ("seed", "7"),
        "which is IMAGE, not MODEL": ("model", [decode, 0]),
        "required input 'cfg' is missing": ("cfg", None),
    }
    for expected, (name, value) in cases.items():
        bad = copy.deepcopy(prompt)
        if value is None:
            del bad[sampler]["inputs"][name]
        else:
            bad[sampler]["inputs"][name] = value
        assert any(expected in p for p in validate_prompt(bad)), (expected, validate_prompt(bad))
    bad = copy.deepcopy(prompt)
    bad["99"] = {"class_type": "MyCustomNode", "inputs": {}}
    assert any("not a stock node" in p for p in validate_prompt(bad))
    bad = copy.deepcopy(workflow)
    bad["nodes"][0]["widgets_values"].append("extra")
    assert any("widget values" in p for p in validate_workflow(bad))
    bad = copy.deepcopy(workflow)
    bad["links"][0][5] = "VAE"
    assert any("labelled VAE" in p for p in validate_workflow(bad))


def test_the_schema_agrees_with_the_real_templates_node_shapes():
    """Every stock node in the template graphs has the schema's output types, link inputs and widget count."""
    templates = pytest.importorskip("comfyui_workflow_templates_core", reason="dev extra")
    from pathlib import Path

    seen: dict[str, int] = {}
    for entry in templates.iter_templates():
        text = Path(templates.get_asset_path(entry.template_id, f"{entry.template_id}.json")).read_text()
        graph = json.loads(text)
        if not isinstance(graph, dict):
            continue
        nodes = list(graph.get("nodes") or [])
        for sg in (graph.get("definitions") or {}).get("subgraphs") or []:
            nodes += sg.get("nodes") or []
        for node in nodes:
            kind = node.get("type")
            if kind not in NODES or not isinstance(node.get("widgets_values"), list):
                continue
            outs = [o.get("type") for o in node.get("outputs") or []]
            # SaveImage is an output node; some template files show it a pass-through IMAGE slot, others none
            if kind != "SaveImage":
                assert outs == NODES[kind]["outputs"], (entry.template_id, kind, outs)
            names = widget_names(kind)
            count = len(names) + sum(1 for _, c in names if c)
            values = node["widgets_values"]
            # the front end may store one trailing extra (LoadImage's upload button) but never fewer
            assert count <= len(values) <= count + 1, (entry.template_id, kind, values)
            seen[kind] = seen.get(kind, 0) + 1
    assert {"KSampler", "CLIPTextEncode", "UNETLoader", "DualCLIPLoader", "VAELoader", "EmptySD3LatentImage",
            "SaveImage", "CheckpointLoaderSimple", "EmptyFlux2LatentImage", "Flux2Scheduler", "RandomNoise",
            "CFGGuider", "KSamplerSelect", "CLIPLoader", "ConditioningZeroOut"} <= set(seen)
