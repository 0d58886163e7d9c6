"""Found by the differential-parsing review: vLLM's `return_token_ids` (ChatCompletionRequest
and CompletionRequest: "the result will include token IDs alongside the generated text. In
streaming mode ... token_ids contains the delta tokens for each chunk"; SGLang and LMDeploy
take the same field). Each choice then carries `token_ids`, the reply's tokens one by one:
the unmasked output, which any client detokenizes with the model's public tokenizer. The
gateway refuses a request for log probabilities on a route whose guards read replies, and a
reply that lists its tokens (`guards.side_texts.lists_tokens`) for the same reason, but reads
neither `return_token_ids` in the request nor `token_ids` in the reply (numbers in a field
it does not know are passed as they are)."""

from __future__ import annotations

from typing import Any

from extproc.policy import Reject
from tests.unit.test_guard_fields import EMAIL, whole
from tests.unit.test_unread_inputs import CHAT, config, run

#: the ids a Llama 3 tokenizer gives "mail jane.roe@example.org" (any ids do: they are the
#: unmasked text, whatever the tokenizer)
IDS = [3796, 57010, 13, 299, 31, 8858, 2726]


def test_a_request_for_token_ids_is_refused_on_a_route_whose_guards_read_replies() -> None:
    body = {"model": "llama3", "messages": [{"role": "user", "content": "hi"}],
            "return_token_ids": True}
    cfg = config()
    # the control: the same guard refuses a request for log probabilities
    asked = {**body, "return_token_ids": None, "logprobs": True}
    assert run(cfg, "openai", CHAT, asked)[1] is not None
    _, refused = run(cfg, "openai", CHAT, body)
    assert refused is not None and refused[0] == 400


def test_a_reply_listing_its_token_ids_is_not_passed_with_the_text_masked() -> None:
    body: dict[str, Any] = {"id": "c", "object": "chat.completion", "model": "llama3",
                            "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant",
                                                     "content": f"mail {EMAIL}"},
                                         "token_ids": IDS}],
                            "prompt_token_ids": [1, 2, 3],
                            "usage": {"prompt_tokens": 3, "completion_tokens": 7,
                                      "total_tokens": 10}}
    try:
        out = whole("openai", "mask", body)
    except Reject:
        return   # refused as unreadable, as a reply listing logprobs is
    assert b"3796" not in out, f"the reply's tokens went out beside the masked text: {out!r}"
