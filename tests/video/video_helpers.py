"""Constants shared by the hosted-API tests."""

KEY_NAMES = {"cometapi": ("COMETAPI_KEY",), "runway": ("RUNWAYML_API_SECRET",), "fal": ("FAL_KEY",),
             "replicate": ("REPLICATE_API_TOKEN",), "kling": ("KLING_ACCESS_KEY", "KLING_SECRET_KEY")}

# provider -> (model, needs an image) used to drive each provider through VideoGenerator
VIDEO_ROUTES = {"cometapi": ("sora-2", False), "runway": ("gen4.5", False), "kling": ("kling-v2.1", False),
                "fal": ("kling-v2.1", True), "replicate": ("kling-v2.1", True)}
