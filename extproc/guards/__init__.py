"""Prompt guards: reject or mask sensitive content in prompts and responses (issue #6).

Modules: `detectors` (the detector contract and the built-ins), `custom` (RE2 patterns and
deny-lists from config), `scanner` (detectors combined), `stream` (the streaming masker),
`reframe` (masked text re-framed as each provider's stream events; `reframe_responses` and
`reframe_completions` for OpenAI's Responses and legacy Completions streams), `settings` (the
config schema), `policy` (the `Guards` route policy; `reply_side` picks what a reply goes
through). Tool-call arguments are read and masked as JSON source text by `codecs.jsontext`.
"""
