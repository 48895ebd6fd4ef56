"""Constants shared by the hosted-API tests."""

KEY_NAMES = {"cometapi": ("COMETAPI_KEY",), "runway": ("RUNWAYML_API_SECRET",), "fal": ("FAL_KEY",),
             "replicate": ("REPLICATE_API_TOKEN",), "kling": ("KLING_ACCESS_KEY", "KLING_SECRET_KEY")}

# provider -> (model, needs an image) used to drive each provider through VideoGenerator
VIDEO_ROUTES = {"cometapi": ("sora-2", False), "runway": ("gen4.5", False), "kling": ("kling-v2.1", False),
                "fal": ("kling-v2.1", True), "replicate": ("kling-v2.1", True)}

# Short hosted-API timing for tests, set through `configure()` (and passed to child processes as MASUKA_* variables).
FAST = {"poll_interval": 0.02, "http_backoff": 0.01, "http_backoff_max": 0.05, "http_timeout": 0.5,
        "http_retries": 4, "job_not_found_grace": 0.3}


def fast_env() -> dict[str, str]:
    return {f"MASUKA_{key.upper()}": str(value) for key, value in FAST.items()}
