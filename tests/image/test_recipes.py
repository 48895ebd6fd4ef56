"""read_recipe: a corpus written here in every dialect (A1111 PNG/JPEG/WebP, ComfyUI prompt+workflow in PNG and
WebP, SwarmUI, InvokeAI, a Civitai post's text) read field by field, and the refusals with their reasons."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

import masuka_nb as mk
from masuka_nb.errors import InvalidRequestError, RecipeUnsupportedError

A1111 = ("a pixel-art fox in the snow, <lora:pixel-fox:0.8> golden hour\n"
         "Negative prompt: blurry, lowres\n"
         "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 1, Distilled CFG Scale: 3.5, "
         "Seed: 1234567, Size: 768x512, Model hash: 4610115bb0, Model: flux1-dev-fp8, "
         'Lora hashes: "pixel-fox: 0a1b2c3d4e5f", Hires upscale: 2, Version: f2.0.1v1.10.1')

CIVITAI_POST = ("cinematic photo of a lighthouse at dawn <lora:dawn-light:0.7>\n"
                "Steps: 20, Sampler: Euler, CFG scale: 3.5, Seed: 42, Size: 832x1216, Clip skip: 2, "
                'Civitai resources: [{"type":"checkpoint","modelVersionId":691639,"modelName":"FLUX",'
                '"modelVersionName":"Dev"},{"type":"lora","weight":0.7,"modelVersionId":2222,'
                '"modelName":"Dawn Light","modelVersionName":"v1"}], Civitai metadata: {"remixOfId":5}')

COMFY_PROMPT = {
    "10": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev-fp8.safetensors", "weight_dtype": "default"}},
    "11": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "clip_l.safetensors",
                                                      "clip_name2": "t5xxl_fp8_e4m3fn.safetensors", "type": "flux"}},
    "12": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
    "13": {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["10", 0], "lora_name": "styles\\ink.safetensors",
                                                           "strength_model": 0.6}},
    "20": {"class_type": "PrimitiveStringMultiline", "inputs": {"value": "an ink drawing of a heron"}},
    "21": {"class_type": "CLIPTextEncode", "inputs": {"text": ["20", 0], "clip": ["11", 0]}},
    "22": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["21", 0], "guidance": 2.5}},
    "23": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["21", 0]}},
    "30": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 896, "height": 1152, "batch_size": 1}},
    "31": {"class_type": "KSampler", "inputs": {"model": ["13", 0], "seed": 8589934592 + 7, "steps": 24, "cfg": 1.0,
                                                "sampler_name": "euler", "scheduler": "simple", "positive": ["22", 0],
                                                "negative": ["23", 0], "latent_image": ["30", 0], "denoise": 1.0}},
    "32": {"class_type": "VAEDecode", "inputs": {"samples": ["31", 0], "vae": ["12", 0]}},
    "33": {"class_type": "SaveImage", "inputs": {"images": ["32", 0], "filename_prefix": "ComfyUI"}},
}

SWARM = {"sui_image_params": {"prompt": "a glass whale", "negativeprompt": "text", "model": "sd3.5_large",
                              "seed": 99, "steps": 30, "cfgscale": 4.5, "width": 1024, "height": 768,
                              "sampler": "euler", "scheduler": "sgm_uniform", "loras": ["glassy"],
                              "loraweights": ["0.9"], "aspectratio": "4:3", "swarm_version": "0.9.6.1",
                              "refinercontrolpercentage": 0.2},
         "sui_models": [{"name": "sd3.5_large.safetensors", "param": "model", "hash": "0x" + "ab" * 32},
                        {"name": "glassy.safetensors", "param": "loras", "hash": "0x" + "cd" * 32}]}

INVOKE = {"app_version": "5.6.0", "generation_mode": "flux_txt2img", "positive_prompt": "a brass robot reading",
          "negative_prompt": "", "width": 1024, "height": 1024, "seed": 3141, "steps": 30, "guidance": 4.0,
          "scheduler": "euler", "model": {"key": "k1", "hash": "blake3:00ff", "name": "FLUX Dev (Quantized)",
                                          "base": "flux", "type": "main"},
          "loras": [{"model": {"key": "k2", "hash": "blake3:11ee", "name": "brass-style", "base": "flux",
                               "type": "lora"}, "weight": 0.75}]}


def png(chunks: dict[str, str]) -> bytes:
    info = PngInfo()
    for k, v in chunks.items():
        info.add_text(k, v)
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (40, 60, 90)).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def exif_image(fmt: str, *, comment: str | None = None, make: str | None = None, model: str | None = None) -> bytes:
    """What A1111 writes into JPEG/WebP (UserComment, "UNICODE" + UTF-16 BE, as piexif does) and ComfyUI into WebP."""
    exif = Image.Exif()
    if comment is not None:
        exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + comment.encode("utf-16-be")
    if make is not None:
        exif[0x010F] = make
    if model is not None:
        exif[0x0110] = model
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (40, 60, 90)).save(buf, fmt, exif=exif)
    return buf.getvalue()


@pytest.fixture
def corpus(tmp_path):
    files = {"a1111.png": png({"parameters": A1111}), "a1111.jpg": exif_image("JPEG", comment=A1111),
             "a1111.webp": exif_image("WEBP", comment=A1111),
             "comfy.png": png({"prompt": json.dumps(COMFY_PROMPT), "workflow": json.dumps({"nodes": [], "links": []})}),
             "comfy.webp": exif_image("WEBP", make="workflow:" + json.dumps({"nodes": [], "links": []}),
                                      model="prompt:" + json.dumps(COMFY_PROMPT)),
             "swarm.png": png({"parameters": json.dumps(SWARM)}),
             "invoke.png": png({"invokeai_metadata": json.dumps(INVOKE)}),
             "plain.png": png({})}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return tmp_path


@pytest.mark.parametrize("name", ["a1111.png", "a1111.jpg", "a1111.webp"])
def test_a1111_in_png_jpeg_and_webp_reads_field_by_field(corpus, name):
    r = mk.read_recipe(corpus / name)
    assert r.dialect == "a1111"
    assert r.prompt == "a pixel-art fox in the snow, golden hour" and r.negative_prompt == "blurry, lowres"
    assert (r.model, r.model_name, r.model_hash) == ("flux1-dev", "flux1-dev-fp8", "4610115bb0")
    assert (r.width, r.height, r.steps, r.seed, r.cfg, r.guidance) == (768, 512, 28, 1234567, 1.0, 3.5)
    assert (r.sampler, r.scheduler) == ("DPM++ 2M", "Karras")
    [lora] = r.loras
    assert (lora.name, lora.weight, lora.hash) == ("pixel-fox", 0.8, "0a1b2c3d4e5f")
    assert any("sampler DPM++ 2M" in u for u in r.unmapped) and any(u.startswith("Hires upscale") for u in r.unmapped)
    kwargs = r.generate_kwargs()
    assert kwargs["model"] == "flux1-dev" and kwargs["guidance"] == 3.5 and "loras" not in kwargs  # no source yet


@pytest.mark.parametrize("name", ["comfy.png", "comfy.webp"])
def test_comfyui_prompt_graph_reads_through_primitives_loras_and_guidance(corpus, name):
    r = mk.read_recipe(corpus / name)
    assert r.dialect == "comfyui" and r.model == "flux1-dev" and r.model_name == "flux1-dev-fp8.safetensors"
    assert r.prompt == "an ink drawing of a heron" and r.negative_prompt is None
    assert (r.width, r.height, r.steps, r.seed, r.guidance, r.sampler, r.scheduler) == \
        (896, 1152, 24, 8589934599, 2.5, "euler", "simple")
    [lora] = r.loras
    assert (lora.name, lora.weight) == ("ink", 0.6)


def test_swarmui_and_invokeai(corpus):
    s = mk.read_recipe(corpus / "swarm.png")
    assert (s.dialect, s.model, s.prompt, s.negative_prompt) == ("swarmui", "sd35-large", "a glass whale", "text")
    assert (s.width, s.height, s.steps, s.seed, s.cfg, s.guidance, s.scheduler) == (1024, 768, 30, 99, 4.5, 4.5,
                                                                                    "sgm_uniform")
    assert s.model_hash == "ab" * 32 and [(lr.name, lr.weight, lr.hash) for lr in s.loras] == [("glassy", 0.9, "cd" * 32)]
    assert s.unmapped == ["refinercontrolpercentage: 0.2"]
    i = mk.read_recipe(corpus / "invoke.png")
    assert (i.dialect, i.model, i.prompt, i.negative_prompt) == ("invokeai", "flux1-dev", "a brass robot reading", None)
    assert (i.width, i.height, i.steps, i.seed, i.guidance) == (1024, 1024, 30, 3141, 4.0)
    assert [(lr.name, lr.weight) for lr in i.loras] == [("brass-style", 0.75)]


def test_a_civitai_posts_generation_data_names_its_resources():
    r = mk.read_recipe(text=CIVITAI_POST)
    assert r.dialect == "civitai" and r.prompt == "cinematic photo of a lighthouse at dawn"
    assert (r.model, r.model_civitai_version, r.width, r.height, r.seed) == (None, 691639, 832, 1216, 42)
    [lora] = r.loras
    assert (lora.name, lora.weight, lora.civitai_version) == ("dawn-light", 0.7, 2222)
    assert "Clip skip: 2" in r.unmapped and not any("Civitai" in u for u in r.unmapped)


def test_a_masuka_png_reads_as_masuka_and_its_comfy_pair_as_comfyui(tmp_path):
    res = mk.generate("a red kite", model="tiny-flux", seed=7, width=32, height=32, steps=2)
    r = mk.read_recipe(res.paths[0])
    assert (r.dialect, r.model, r.prompt, r.seed, r.steps) == ("masuka", "tiny-flux", "a red kite", 7, 2)
    with Image.open(res.paths[0]) as im:
        only_comfy = png({"prompt": im.info["prompt"], "workflow": im.info["workflow"]})
    c = mk.read_recipe(only_comfy)
    assert (c.dialect, c.model, c.prompt, c.seed, c.steps, c.width, c.height) == \
        ("comfyui", "tiny-flux", "a red kite", 7, 2, 32, 32)


def test_refusals_say_why(corpus):
    with pytest.raises(RecipeUnsupportedError, match="no generation metadata") as err:
        mk.read_recipe(corpus / "plain.png")
    assert err.value.code == "RECIPE_UNSUPPORTED" and "original file" in err.value.hint
    with pytest.raises(RecipeUnsupportedError, match="SDXL"):
        mk.read_recipe(text=A1111.replace("flux1-dev-fp8", "sd_xl_base_1.0"))
    video = {"1": {"class_type": "WanImageToVideo", "inputs": {}}, "2": {"class_type": "SaveVideo", "inputs": {}}}
    with pytest.raises(RecipeUnsupportedError, match="video"):
        mk.read_recipe(png({"prompt": json.dumps(video)}))
    with pytest.raises(RecipeUnsupportedError, match="Steps"):
        mk.read_recipe(text="just a prompt, no settings")
    with pytest.raises(InvalidRequestError, match="No image"):
        mk.read_recipe(corpus / "missing.png")
    with pytest.raises(InvalidRequestError, match="exactly one"):
        mk.read_recipe()


def test_a_recipe_from_a_url_comes_through_the_downloader(corpus):
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(corpus)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        r = mk.read_recipe(f"http://127.0.0.1:{server.server_address[1]}/swarm.png")
    finally:
        server.shutdown()
    assert r.dialect == "swarmui" and r.seed == 99
