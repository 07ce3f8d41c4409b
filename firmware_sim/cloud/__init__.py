"""The simulated operator cloud (`firmware-sim cloud`): device-grant sign-in, a change journal
over a library directory, content downloads with Range, and switchable faults.

`command` is the CLI, `app` the aiohttp application; `auth`, `journal`, `store`, `content`,
`content_hash`, `http_semantics`, `faults` and `probe` hold one concern each; `media_seed` makes
a demo library; `testing` runs the cloud inside a test. Nothing is imported here, so the CLI
loads only what it runs.
"""
