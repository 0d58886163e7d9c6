"""The unified front's Gemini API / Vertex AI backend: OpenAI Chat Completions in front,
``generateContent`` / ``streamGenerateContent?alt=sse`` behind (sans-IO; `translate.base`
gives the interface). The work is in `google_messages` (messages), `google_request` (the
rest of the request), `google_parts` (reading Gemini responses) and `google_reply` (the
reply translators); this module is their public face.

Request paths: Gemini ``/v1beta/models/{model}:generateContent`` (stream:
``:streamGenerateContent?alt=sse``, never the JSON-array stream); Vertex
``/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:...``. A model
name outside ``[A-Za-z0-9][A-Za-z0-9._@-]*`` is refused (`Unsupported("model")`); a Vertex
backend without a valid project and location is a config error (ValueError).

Request choices (each field is translated, accepted at its default value, or refused with
`Unsupported`; with ``drop_unsupported`` the refusable options and message metadata are left
out and listed, never conversation content, malformed values or the legacy function fields):

* system / developer messages -> ``systemInstruction.parts`` (text, all of them, in order).
* user text -> text parts; ``image_url``: a base64 data URL -> ``inlineData``, an http(s)
  URL -> ``fileData {mimeType, fileUri}`` with the type from the path's extension (png,
  jpeg/jpg, webp, gif, heic, heif; else refused). The Gemini API fetches public and signed
  http(s) URLs given as ``fileUri`` (Google, "Increased file size limits and expanded inputs
  support in Gemini API"); Vertex's reference allows a publicly readable HTTP URL as
  ``fileUri`` (with per-request file limits). Google fetches the URL, not the gateway.
  ``detail`` other than auto and ``prompt_cache_breakpoint`` are refused (droppable).
  ``input_audio`` wav/mp3 -> inlineData audio/wav|audio/mp3; ``file.file_data`` (a base64
  data URL) -> inlineData with its type (``filename`` has no place in inlineData: left out
  and listed as dropped in either mode; ``file_id`` is refused).
* assistant -> a ``model`` turn: text (content, text and refusal parts, ``refusal``) and
  ``functionCall {name, args}`` parts (arguments must be a JSON object whose numbers are
  written back as the client wrote them, `exact_json`). A tool call id holding
  ``__thought__<signature>`` (as this translator makes them) sends the signature back as the
  part's ``thoughtSignature``, which Gemini 3 requires in function-calling turns (base64 of
  at most `google_messages.MAX_SIGNATURE` characters, else refused).
  ``reasoning_content`` is refused (droppable); ``audio`` and ``function_call`` are refused.
* tool -> ``functionResponse {name, response: {"content": X}}`` in a ``user`` turn, the name
  taken from the assistant tool call with that id (unknown id: refused); X is the tool's
  text parsed as JSON when it is a JSON object that reads as its text does (no escape, its
  numbers written back as written), else the text itself.
* consecutive turns of one role are merged (Gemini alternates user and model).
* ``name`` on any message: refused (droppable; Gemini has no participant names).
* tools (function only) -> ``tools[{functionDeclarations[{name, description,
  parametersJsonSchema}]}]``: ``parametersJsonSchema`` takes full JSON Schema (``parameters``
  takes only Google's OpenAPI subset). ``strict: true`` on any tool makes the ``auto`` mode
  ``VALIDATED`` (calls constrained to the schema, text still allowed).
* tool_choice: auto -> AUTO (VALIDATED with strict tools), none -> NONE, required -> ANY,
  a named function -> ANY + allowedFunctionNames, allowed_tools -> VALIDATED (auto) or ANY
  (required) + allowedFunctionNames. ``parallel_tool_calls: false`` is refused (Gemini has no
  switch). ``functions`` / ``function_call`` (legacy) are refused.
* response_format: text -> nothing, json_object -> ``responseMimeType: application/json``,
  json_schema -> that + ``responseJsonSchema`` (full JSON Schema; ``responseSchema`` takes
  only the OpenAPI subset). name and strict are not sent; description is refused
  (droppable: OpenAI shows it to the model, Gemini has no place for it).
* generationConfig: temperature, top_p -> topP, stop -> stopSequences, max_tokens /
  max_completion_tokens (the latter wins) -> maxOutputTokens, n -> candidateCount, seed,
  presence_penalty -> presencePenalty, frequency_penalty -> frequencyPenalty (a 0 penalty,
  the default, is not sent: some Gemini models refuse any penalty field),
  reasoning_effort -> ``thinkingConfig {thinkingBudget, includeThoughts: true}`` with the
  budgets of `THINKING_BUDGETS` (none -> 0 and no thoughts); xhigh and max are refused
  (droppable: then sent as high).
* refused unless at their default: logprobs / top_logprobs (not translated back),
  logit_bias, metadata, store, service_tier (auto), modalities ([text]), verbosity
  (medium), audio, prediction, web_search_options, moderation, prompt_cache_key,
  prompt_cache_options, prompt_cache_retention, user, safety_identifier; unknown fields.
* stream -> the stream path; stream_options (only with stream): include_usage is read by
  the reply translator (`ReplyContext.include_usage`), include_obfuscation is accepted and
  no obfuscation is added.

Reply choices: see `google_reply` (finish reasons in `FINISH_REASONS`, a blocked prompt is
a ``content_filter`` choice with no content, thought parts -> ``reasoning_content``,
function calls -> tool calls whose id carries the thoughtSignature). Each reply translator
has a ``status`` attribute: the HTTP status the client must get (a 200 whose body cannot be
translated becomes a 502 error object for a whole request; a stream request keeps its 200 and
gets a final error event).
"""

from __future__ import annotations

from extproc.translate.google_messages import THOUGHT_SEP
from extproc.translate.google_reply import FINISH_REASONS, MAX_BODY, reply_translator
from extproc.translate.google_request import (
    THINKING_BUDGETS,
    max_output_tokens,
    translate_request,
)

__all__ = ["FINISH_REASONS", "MAX_BODY", "THINKING_BUDGETS", "THOUGHT_SEP",
           "max_output_tokens", "reply_translator", "translate_request"]
