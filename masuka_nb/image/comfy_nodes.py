"""The input/output schema of the stock ComfyUI nodes MASUKA writes and reads, as data.

ComfyUI ships no schema file on PyPI (its node definitions live in the server's Python source and are
served at ``/object_info``), so the few stock nodes MASUKA uses are written out here by hand from the
source, read 2026-12-05:

- nodes.py (CLIPTextEncode, ConditioningZeroOut, VAEDecode, VAEEncode, CheckpointLoaderSimple, LoraLoader,
  LoraLoaderModelOnly, VAELoader, UNETLoader, CLIPLoader, DualCLIPLoader, CLIPSetLastLayer, EmptyLatentImage,
  KSampler, KSamplerAdvanced, SaveImage, LoadImage, ConditioningCombine):
  https://github.com/comfyanonymous/ComfyUI/blob/master/nodes.py
- comfy_extras/nodes_flux.py (CLIPTextEncodeFlux, FluxGuidance, Flux2Scheduler, EmptyFlux2LatentImage):
  https://github.com/comfyanonymous/ComfyUI/blob/master/comfy_extras/nodes_flux.py
- comfy_extras/nodes_sd3.py (TripleCLIPLoader, EmptySD3LatentImage, CLIPTextEncodeSD3):
  https://github.com/comfyanonymous/ComfyUI/blob/master/comfy_extras/nodes_sd3.py
- comfy_extras/nodes_model_advanced.py (ModelSamplingSD3, ModelSamplingFlux):
  https://github.com/comfyanonymous/ComfyUI/blob/master/comfy_extras/nodes_model_advanced.py
- comfy_extras/nodes_custom_sampler.py (KSamplerSelect, BasicScheduler, RandomNoise, CFGGuider, BasicGuider,
  SamplerCustomAdvanced, SamplerCustom):
  https://github.com/comfyanonymous/ComfyUI/blob/master/comfy_extras/nodes_custom_sampler.py
- comfy_extras/nodes_primitive.py (PrimitiveInt, PrimitiveFloat, PrimitiveString, PrimitiveStringMultiline):
  https://github.com/comfyanonymous/ComfyUI/blob/master/comfy_extras/nodes_primitive.py
- sampler and scheduler names: https://github.com/comfyanonymous/ComfyUI/blob/master/comfy/samplers.py
- the widget order in saved UI graphs (and the "control_after_generate" value the front end stores after a
  seed widget) matches the templates in the `comfyui-workflow-templates-json` package (0.1.123, 2026-10).

Each node: ``inputs`` in the order ComfyUI declares them (required, then optional) as
``(name, type, options)``; a type in capitals other than INT/FLOAT/STRING/BOOLEAN/COMBO is a link type.
Widget inputs are the INT/FLOAT/STRING/BOOLEAN/COMBO ones, in that order, which is the order of a UI
node's ``widgets_values``. ``choices`` None on a COMBO means "a file name from a model folder".
"""

from __future__ import annotations

from typing import Any

__all__ = ["NODES", "SAMPLERS", "SCHEDULERS", "WIDGET_TYPES", "widget_names"]

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")

SAMPLERS = (
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "dpm_2",
    "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp",
    "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
    "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm",
    "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp", "res_multistep_ancestral",
    "res_multistep_ancestral_cfg_pp", "gradient_estimation", "gradient_estimation_cfg_pp", "er_sde", "seeds_2",
    "seeds_3", "sa_solver", "sa_solver_pece", "ddim", "uni_pc", "uni_pc_bh2",
)
SCHEDULERS = ("simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal",
              "linear_quadratic", "kl_optimal")

_SEED = {"min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True}
_RES = {"min": 16, "max": 16384}
_DEVICE = ("device", "COMBO", {"choices": ("default", "cpu"), "optional": True})
_TEXT = ("text", "STRING", {"multiline": True})

NODES: dict[str, dict[str, Any]] = {
    # ---- loaders ----
    "CheckpointLoaderSimple": {"inputs": [("ckpt_name", "COMBO", {"choices": None})],
                               "outputs": ["MODEL", "CLIP", "VAE"]},
    "UNETLoader": {"inputs": [("unet_name", "COMBO", {"choices": None}),
                              ("weight_dtype", "COMBO", {"choices": ("default", "fp8_e4m3fn", "fp8_e4m3fn_fast",
                                                                     "fp8_e5m2")})],
                   "outputs": ["MODEL"]},
    "CLIPLoader": {"inputs": [("clip_name", "COMBO", {"choices": None}),
                              ("type", "COMBO", {"choices": ("stable_diffusion", "stable_cascade", "sd3",
                                                             "stable_audio", "mochi", "ltxv", "pixart", "cosmos",
                                                             "lumina2", "wan", "hidream", "chroma", "ace",
                                                             "omnigen2", "qwen_image", "hunyuan_image", "flux2",
                                                             "ovis")}),
                              _DEVICE],
                   "outputs": ["CLIP"]},
    "DualCLIPLoader": {"inputs": [("clip_name1", "COMBO", {"choices": None}),
                                  ("clip_name2", "COMBO", {"choices": None}),
                                  ("type", "COMBO", {"choices": ("sdxl", "sd3", "flux", "hunyuan_video", "hidream",
                                                                 "hunyuan_image", "hunyuan_video_15", "kandinsky5",
                                                                 "kandinsky5_image", "ltxv", "newbie")}),
                                  _DEVICE],
                       "outputs": ["CLIP"]},
    "TripleCLIPLoader": {"inputs": [("clip_name1", "COMBO", {"choices": None}),
                                    ("clip_name2", "COMBO", {"choices": None}),
                                    ("clip_name3", "COMBO", {"choices": None})],
                         "outputs": ["CLIP"]},
    "VAELoader": {"inputs": [("vae_name", "COMBO", {"choices": None})], "outputs": ["VAE"]},
    "LoraLoader": {"inputs": [("model", "MODEL", {}), ("clip", "CLIP", {}), ("lora_name", "COMBO", {"choices": None}),
                              ("strength_model", "FLOAT", {"min": -100.0, "max": 100.0}),
                              ("strength_clip", "FLOAT", {"min": -100.0, "max": 100.0})],
                   "outputs": ["MODEL", "CLIP"]},
    "LoraLoaderModelOnly": {"inputs": [("model", "MODEL", {}), ("lora_name", "COMBO", {"choices": None}),
                                       ("strength_model", "FLOAT", {"min": -100.0, "max": 100.0})],
                            "outputs": ["MODEL"]},
    "LoadImage": {"inputs": [("image", "COMBO", {"choices": None, "image_upload": True})],
                  "outputs": ["IMAGE", "MASK"]},
    # ---- model patches ----
    "ModelSamplingSD3": {"inputs": [("model", "MODEL", {}), ("shift", "FLOAT", {"min": 0.0, "max": 100.0})],
                         "outputs": ["MODEL"]},
    "ModelSamplingFlux": {"inputs": [("model", "MODEL", {}), ("max_shift", "FLOAT", {"min": 0.0, "max": 100.0}),
                                     ("base_shift", "FLOAT", {"min": 0.0, "max": 100.0}),
                                     ("width", "INT", _RES), ("height", "INT", _RES)],
                          "outputs": ["MODEL"]},
    "CLIPSetLastLayer": {"inputs": [("clip", "CLIP", {}), ("stop_at_clip_layer", "INT", {"min": -24, "max": -1})],
                         "outputs": ["CLIP"]},
    # ---- conditioning ----
    "CLIPTextEncode": {"inputs": [_TEXT, ("clip", "CLIP", {})], "outputs": ["CONDITIONING"]},
    "CLIPTextEncodeFlux": {"inputs": [("clip", "CLIP", {}), ("clip_l", "STRING", {"multiline": True}),
                                      ("t5xxl", "STRING", {"multiline": True}),
                                      ("guidance", "FLOAT", {"min": 0.0, "max": 100.0})],
                           "outputs": ["CONDITIONING"]},
    "CLIPTextEncodeSD3": {"inputs": [("clip", "CLIP", {}), ("clip_l", "STRING", {"multiline": True}),
                                     ("clip_g", "STRING", {"multiline": True}), ("t5xxl", "STRING", {"multiline": True}),
                                     ("empty_padding", "COMBO", {"choices": ("none", "empty_prompt")})],
                          "outputs": ["CONDITIONING"]},
    "FluxGuidance": {"inputs": [("conditioning", "CONDITIONING", {}), ("guidance", "FLOAT", {"min": 0.0, "max": 100.0})],
                     "outputs": ["CONDITIONING"]},
    "ConditioningZeroOut": {"inputs": [("conditioning", "CONDITIONING", {})], "outputs": ["CONDITIONING"]},
    "ConditioningCombine": {"inputs": [("conditioning_1", "CONDITIONING", {}), ("conditioning_2", "CONDITIONING", {})],
                            "outputs": ["CONDITIONING"]},
    # ---- latents ----
    "EmptyLatentImage": {"inputs": [("width", "INT", _RES), ("height", "INT", _RES),
                                    ("batch_size", "INT", {"min": 1, "max": 4096})],
                         "outputs": ["LATENT"]},
    "EmptySD3LatentImage": {"inputs": [("width", "INT", _RES), ("height", "INT", _RES),
                                       ("batch_size", "INT", {"min": 1, "max": 4096})],
                            "outputs": ["LATENT"]},
    "EmptyFlux2LatentImage": {"inputs": [("width", "INT", _RES), ("height", "INT", _RES),
                                         ("batch_size", "INT", {"min": 1, "max": 4096})],
                              "outputs": ["LATENT"]},
    "VAEEncode": {"inputs": [("pixels", "IMAGE", {}), ("vae", "VAE", {})], "outputs": ["LATENT"]},
    "VAEDecode": {"inputs": [("samples", "LATENT", {}), ("vae", "VAE", {})], "outputs": ["IMAGE"]},
    # ---- sampling ----
    "KSampler": {"inputs": [("model", "MODEL", {}), ("seed", "INT", _SEED),
                            ("steps", "INT", {"min": 1, "max": 10000}), ("cfg", "FLOAT", {"min": 0.0, "max": 100.0}),
                            ("sampler_name", "COMBO", {"choices": SAMPLERS}),
                            ("scheduler", "COMBO", {"choices": SCHEDULERS}),
                            ("positive", "CONDITIONING", {}), ("negative", "CONDITIONING", {}),
                            ("latent_image", "LATENT", {}), ("denoise", "FLOAT", {"min": 0.0, "max": 1.0})],
                 "outputs": ["LATENT"]},
    "KSamplerAdvanced": {"inputs": [("model", "MODEL", {}),
                                    ("add_noise", "COMBO", {"choices": ("enable", "disable")}),
                                    ("noise_seed", "INT", _SEED), ("steps", "INT", {"min": 1, "max": 10000}),
                                    ("cfg", "FLOAT", {"min": 0.0, "max": 100.0}),
                                    ("sampler_name", "COMBO", {"choices": SAMPLERS}),
                                    ("scheduler", "COMBO", {"choices": SCHEDULERS}),
                                    ("positive", "CONDITIONING", {}), ("negative", "CONDITIONING", {}),
                                    ("latent_image", "LATENT", {}), ("start_at_step", "INT", {"min": 0, "max": 10000}),
                                    ("end_at_step", "INT", {"min": 0, "max": 10000}),
                                    ("return_with_leftover_noise", "COMBO", {"choices": ("disable", "enable")})],
                         "outputs": ["LATENT"]},
    "KSamplerSelect": {"inputs": [("sampler_name", "COMBO", {"choices": SAMPLERS})], "outputs": ["SAMPLER"]},
    "BasicScheduler": {"inputs": [("model", "MODEL", {}), ("scheduler", "COMBO", {"choices": SCHEDULERS}),
                                  ("steps", "INT", {"min": 1, "max": 10000}),
                                  ("denoise", "FLOAT", {"min": 0.0, "max": 1.0})],
                       "outputs": ["SIGMAS"]},
    "Flux2Scheduler": {"inputs": [("steps", "INT", {"min": 1, "max": 4096}), ("width", "INT", _RES),
                                  ("height", "INT", _RES)],
                       "outputs": ["SIGMAS"]},
    "RandomNoise": {"inputs": [("noise_seed", "INT", _SEED)], "outputs": ["NOISE"]},
    "CFGGuider": {"inputs": [("model", "MODEL", {}), ("positive", "CONDITIONING", {}),
                             ("negative", "CONDITIONING", {}), ("cfg", "FLOAT", {"min": 0.0, "max": 100.0})],
                  "outputs": ["GUIDER"]},
    "BasicGuider": {"inputs": [("model", "MODEL", {}), ("conditioning", "CONDITIONING", {})], "outputs": ["GUIDER"]},
    "SamplerCustomAdvanced": {"inputs": [("noise", "NOISE", {}), ("guider", "GUIDER", {}), ("sampler", "SAMPLER", {}),
                                         ("sigmas", "SIGMAS", {}), ("latent_image", "LATENT", {})],
                              "outputs": ["LATENT", "LATENT"]},
    "SamplerCustom": {"inputs": [("model", "MODEL", {}), ("add_noise", "BOOLEAN", {}), ("noise_seed", "INT", _SEED),
                                 ("cfg", "FLOAT", {"min": 0.0, "max": 100.0}), ("positive", "CONDITIONING", {}),
                                 ("negative", "CONDITIONING", {}), ("sampler", "SAMPLER", {}),
                                 ("sigmas", "SIGMAS", {}), ("latent_image", "LATENT", {})],
                      "outputs": ["LATENT", "LATENT"]},
    # ---- output ----
    "SaveImage": {"inputs": [("images", "IMAGE", {}), ("filename_prefix", "STRING", {})], "outputs": []},
    # ---- primitives ----
    "PrimitiveInt": {"inputs": [("value", "INT", {"min": -(2**63), "max": 2**63 - 1, "control_after_generate": True})],
                     "outputs": ["INT"]},
    "PrimitiveFloat": {"inputs": [("value", "FLOAT", {})], "outputs": ["FLOAT"]},
    "PrimitiveString": {"inputs": [("value", "STRING", {})], "outputs": ["STRING"]},
    "PrimitiveStringMultiline": {"inputs": [("value", "STRING", {"multiline": True})], "outputs": ["STRING"]},
}


def widget_names(class_type: str) -> list[tuple[str, bool]] | None:
    """[(widget name, followed by a control_after_generate value)] in `widgets_values` order, or None if unknown."""
    node = NODES.get(class_type)
    if node is None:
        return None
    return [(name, bool(opts.get("control_after_generate"))) for name, kind, opts in node["inputs"]
            if kind in WIDGET_TYPES]
