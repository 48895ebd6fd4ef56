"""Everything that talks to a paid service, for video and for cloud LoRA training alike.

- `http`: the client factory (`ProviderClient`), retry rules honouring Retry-After, the error map,
  and the one resumable, size-capped, checked downloader (`download`) every URL fetch goes through.
- `store` and `runner`: the job records, and carrying a job on (submit once, poll, download, resume).
- `providers`: one module per hosted API; `pricing`: estimates, `max_cost` and the session budget;
  `catalog`: the dated, sourced models and prices (``catalog.json``).

This layer sits under `masuka_nb.video` and `masuka_nb.lora.cloud` and imports neither (a test checks);
kinds of job register themselves with the runner instead of being named here.
"""
