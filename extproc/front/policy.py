"""The unified front's two route policies (sans-IO, on the `Context`).

`FrontModels` runs right after authentication. It answers `GET /v1/models` from the config,
refuses any endpoint but Chat Completions, and resolves the request's model to its backend
before any budget is spent on it (an unknown model is a 404 in OpenAI's format naming the
models served). Limits and spend then price the request at the backend's model
(`spend.cost.priced_as` reads the `backend_provider` and `backend_model` it leaves in
`ex.state`) and reserve what the translated request lets the backend generate (the
`max_output` it leaves there: the backend module's `max_output_tokens`, e.g. the
`max_tokens` Anthropic is sent, thinking budget included). On the way back it is the first
transform of the reply: the backend's reply is translated into OpenAI's format before usage
metering, the reply guards and the stream cut read it, so masking happens on the text the
client sees.

`FrontRequest` runs last, on the request as every other policy left it (masked, with the
usage option added): it translates it into the backend's API, points it at the backend (the
`x-extproc-backend` header the Envoy route table matches, the backend's path, a cleared route
cache) and injects the backend's credential.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, partial
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..auth.credentials import (
    ANTHROPIC_VERSION,
    CLIENT_CREDENTIAL_HEADERS,
    CREDENTIAL_SCOPE_HEADERS,
    USER_SESSION_HEADERS,
    USER_SESSION_PREFIXES,
    CredentialRefused,
    credential_transform,
    fold_header,
    spellings_of,
    strip_account_reply_headers,
)
from ..codecs.jsoncap import SourceTooLarge, check_sources
from ..codecs.jsontext import JsonSource
from ..context import succeeded
from ..limits.bound import WRITE_MAX
from ..limits.policy import MAX_OUTPUT
from ..llm.policy import USAGE_UNREAD, USAGE_UNREAD_KIND
from ..llm.transforms import NO_USAGE, UNTRANSLATED
from ..policy import Answer, BodyTransform, Policy, Reject, TransformChain, sources_too_large
from ..providers import adapter_for, read_request
from ..providers.endpoints import adapter_of
from ..providers.values import as_dict, as_list
from ..translate import Backend, ReplyContext, ReplyTranslator, Unsupported, module_for
from .settings import FrontConfig

if TYPE_CHECKING:
    from ..context import Context

log = logging.getLogger("extproc.front")
#: a dropped field as the logs and the metadata may name it: a field's path, not a value
#: a plain field path: identifiers and `[n]` indices joined by dots
_FIELD_NAME = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]*|\[\d{1,6}\])"
                         r"(?:\.?(?:[A-Za-z_][A-Za-z0-9_]*|\[\d{1,6}\]))*")
#: what no field name of an API holds: a run of digits (a card, an account, a phone), or
#: as many digits in groups (`card_4111_1111_...`, `a[4111][1111]...`)
_DIGIT_RUN = re.compile(r"\d{5}|(?:\d\D*){7}")
#: the most dropped fields named in one log line and metadata value
_MAX_SHOWN = 16
#: the request header Envoy's route table matches to send a request to its backend's cluster
BACKEND_HEADER = "x-extproc-backend"
_STATE = "front"
CHAT = "chat.completions"
#: request headers no backend gets from a client (folded: see `fold_header`)
_CLIENT_ONLY = frozenset(fold_header(h) for h in (
    *CLIENT_CREDENTIAL_HEADERS, *USER_SESSION_HEADERS, *CREDENTIAL_SCOPE_HEADERS,
    "anthropic-beta"))


@dataclass
class FrontState:
    """One request's front: the model asked for, the backend serving it, its translator."""

    model: str
    backend: Backend
    module: ModuleType
    reply: ReplyContext | None = None
    translator: ReplyTranslator | None = None
    #: Anthropic JSON mode: the forced tool whose input is the answer (translate.anthropic)
    json_tool: str | None = None


class _Translating(BodyTransform):
    """A reply translator as the first response transform. A whole 200 reply is translated
    with its headers held (`whole_body`: Envoy buffers it), so one the translator cannot read
    is answered with a clean 502 in OpenAI's format instead of a 200 carrying an error."""

    def __init__(self, translator: ReplyTranslator, whole: bool, upstream: int,
                 state: dict[str, Any], guarded: bool = False) -> None:
        self.translator = translator
        #: the route's guards read replies: a refusal made of the backend's text (which
        #: they never see: it is answered at once) does not carry that text
        self.guarded = guarded
        self.whole_body = whole
        self.parts_ok = not whole   # (an error or a stream: translated as it comes)
        self.upstream = upstream
        self.state: dict[str, Any] | None = state if upstream == 200 else None

    def feed(self, chunk: bytes) -> bytes:
        out = self.translator.feed(chunk)
        self._unread()
        return out

    def _unread(self) -> None:
        """Mark a backend's 2xx reply whose usage the gateway will not read, so budgets
        charge their worst case (unless the usage was read already):

        * one the front could not translate (an error event, a finish reason it cannot
          express, a JSON-mode answer cut short): the backend generated and billed it, but
          the translator stops before its usage;
        * one whose backend reported no usage count at all (`usage_unread`): the translator
          made up no zeros, and an OpenAI stream without a usage chunk would otherwise be
          charged only what the gateway counted of it, as a report of nothing would be."""
        if self.translator.failed:
            why, kind = "a reply the unified front could not translate", UNTRANSLATED
        elif self.translator.usage_unread:
            why, kind = "a reply without its usage report", NO_USAGE
        else:
            return
        state, self.state = self.state, None
        if state is not None and "usage" not in state and USAGE_UNREAD not in state:
            state[USAGE_UNREAD] = why
            state[USAGE_UNREAD_KIND] = kind

    def finish(self) -> bytes:
        out = self.translator.finish()
        self._unread()
        self.state = None
        if self.whole_body:
            status = self.translator.status or self.upstream
            if self.translator.failed and status == 200:
                status = 502
            if status != self.upstream:
                message = _message(out) if not self.guarded else (
                    f"the backend's reply could not be translated (it answered {status}); "
                    "its message is withheld, as the route's reply guards cannot read it")
                raise Reject(status, message, details="extproc_front_untranslatable")
        return out

    @property
    def held_bytes(self) -> int:
        return self.translator.held_bytes


class _FrontPolicy(Policy):
    """What both front policies share: the route's front, and the request read as Chat
    Completions (parsed once per body: `read_request` keeps the parse in `ex.state`)."""

    needs_request_body = True
    reads_json = True

    def __init__(self, front: FrontConfig, route: str) -> None:
        super().__init__({})
        self.front = front
        self.route = route
        self.adapter = adapter_for("openai")

    def _read(self, ex: Context, body: bytes) -> dict[str, Any] | None:
        read = read_request(adapter_of(ex, self.adapter), ex.request_headers.get(":path", ""),
                            body, ex.state)
        return read[0] if read is not None else None


class FrontModels(_FrontPolicy):
    needs_response_body = True

    def __init__(self, front: FrontConfig, route: str, guarded: bool = False) -> None:
        super().__init__(front, route)
        self.created = int(time.time())
        #: the route's guards read replies (`_Translating.guarded`)
        self.guarded = guarded

    async def on_request_headers(self, ex: Context) -> None:
        endpoint = ex.endpoint
        if endpoint is not None and endpoint.passthrough:   # GET /v1/models
            raise Answer(200, self.front.models.listing(self.created),
                         details="extproc_models")
        if endpoint is None or endpoint.name != CHAT:
            raise Reject(404, "this endpoint is not served by the unified front, which "
                         "serves POST /v1/chat/completions and GET /v1/models; other "
                         "endpoints are on each provider's own route",
                         details="extproc_unknown_endpoint", code="unknown_url")

    async def on_request_body(self, ex: Context, body: bytes) -> bytes | None:
        doc = self._read(ex, body)
        model = doc.get("model") if doc is not None else None
        if not isinstance(model, str) or not model:
            raise Reject(400, "model is required: a string naming one of the models this "
                         f"route serves ({', '.join(self.front.models.served())})",
                         details="extproc_front_no_model", code="missing_model")
        backend = self.front.models.resolve(model)
        if backend is None:
            raise Reject(404, f"The model `{model}` is not served by this gateway route. "
                         f"It serves: {', '.join(self.front.models.served())}",
                         kind="invalid_request_error", details="extproc_front_unknown_model",
                         code="model_not_found")
        module = module_for(backend.provider)
        ex.state[_STATE] = FrontState(model, backend, module)
        # what one choice of the translated request may generate (Anthropic: the max_tokens
        # the translation sends, thinking included), for the budgets that reserve it
        ex.state[MAX_OUTPUT] = partial(module.max_output_tokens, doc or {})
        ex.state["backend_provider"] = backend.provider
        ex.state["backend_model"] = backend.model
        ex.state["front_model"] = model
        ex.metadata.update({"front_model": model, "backend": backend.provider,
                            "backend_model": backend.model})
        return None

    async def on_response_headers(self, ex: Context) -> None:
        st: FrontState | None = ex.state.get(_STATE)
        if st is not None and st.backend.provider in self.front.credentials:
            strip_account_reply_headers(ex)     # the account the backend's key bills
        if st is None or st.reply is None:
            return
        headers = ex.response_headers
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise Reject(502, f"the {st.backend.provider} backend's reply is "
                         f"{encoding}-encoded and cannot be translated",
                         details="extproc_front_encoded_reply")
        ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        extra = {"json_tool": st.json_tool} if st.json_tool else {}
        # (a backend's 201 or 203 is its reply, translated as a 200's is)
        status = 200 if succeeded(ex.status) else ex.status
        translator = st.module.reply_translator(status, ctype, st.reply, **extra)
        if translator is None:
            return
        st.translator = translator
        ex.set_response_header("content-type", translator.content_type)
        ex.remove_response_header("content-length")
        # what Envoy and later policies read is the translated reply
        headers["content-type"] = translator.content_type
        headers.pop("content-length", None)

    def response_transform(self, ex: Context) -> BodyTransform | None:
        st: FrontState | None = ex.state.get(_STATE)
        credential = self.front.credentials.get(st.backend.provider) if st is not None \
            else None
        # an error to the key the front injects: a 401's body withheld (it names the key),
        # another's withheld if it names it, before it is translated (`credential_transform`)
        named = credential_transform(ex.status, credential.secret.value(),
                                     credential.provider) if credential is not None else None
        if isinstance(named, CredentialRefused):
            return named
        if st is None or st.translator is None:
            return named
        assert st.reply is not None
        status = 200 if succeeded(ex.status) else ex.status
        translating = _Translating(st.translator, not st.reply.stream and status == 200,
                                   status, ex.state, self.guarded)
        return translating if named is None else TransformChain([named, translating])


def _message(body: bytes) -> str:
    """The message of the OpenAI error a translator produced."""
    try:
        message = json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = None
    return message if isinstance(message, str) and message else \
        "the backend's reply could not be translated"


class FrontRequest(_FrontPolicy):
    def __init__(self, front: FrontConfig, route: str,
                 max_event_bytes: int = 16 << 20) -> None:
        super().__init__(front, route)
        #: the route's streams.max_event_bytes: the largest backend event held to translate
        self.max_event_bytes = max_event_bytes

    async def on_request_body(self, ex: Context, body: bytes) -> bytes | None:
        st: FrontState | None = ex.state.get(_STATE)
        doc = self._read(ex, body)
        if st is None or doc is None:   # FrontModels refused it, or nothing to read
            raise Reject(400, "the request could not be read as Chat Completions",
                         details="extproc_front_unreadable")
        backend = st.backend
        # a request naming no max, on a route with budgets: the bound they reserved
        # (`limits.bound`; the Anthropic backend is always sent one)
        written = ex.state.pop(WRITE_MAX, None)
        if written is not None and backend.provider != "anthropic":   # (a 0 max_tokens goes)
            doc = {**{k: v for k, v in doc.items() if k != "max_tokens" or v},
                   "max_completion_tokens": written}
        try:   # the texts a translation parses as JSON: the body's cap, as the guards'
            check_sources(_parsed_texts(doc, backend.provider in ("gemini", "vertex")),
                          numbers=True)   # (`exact_json` reads each number in Python)
        except SourceTooLarge:
            raise sources_too_large(True) from None
        try:
            t = st.module.translate_request(doc, backend,
                                            drop_unsupported=self.front.drop_unsupported)
        except Unsupported as exc:
            raise Reject(400, f"{backend.provider} cannot honour {exc.field}: {exc.reason}",
                         details="extproc_front_unsupported",
                         code="unsupported_parameter", param=exc.field) from None
        except RecursionError:   # (a value nested deeper than Python walks)
            raise Reject(400, f"the request cannot be translated for {backend.provider}: "
                         "it nests deeper than the gateway reads",
                         details="extproc_front_untranslatable") from None
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise Reject(400, f"the request cannot be translated for {backend.provider}: "
                         f"{exc}", details="extproc_front_untranslatable") from None
        if t.dropped:
            shown = shown_fields(t.dropped)
            log.info("front dropped %s for %s (route=%s request_id=%s)", ", ".join(shown),
                     backend.provider, self.route, ex.request_id)
            ex.metadata["dropped_fields"] = ",".join(shown)
        options = doc.get("stream_options")
        usage = isinstance(options, dict) and options.get("include_usage") is True
        st.json_tool = getattr(t, "json_tool", None)
        st.reply = ReplyContext(model=backend.model, stream=t.stream,
                                include_usage=t.stream and usage, created=int(time.time()),
                                max_event_bytes=self.max_event_bytes,
                                thinking=getattr(t, "thinking", False))
        headers = ex.request_headers
        # the client's credentials, the account they bill, and a backend's own feature
        # switches (the front speaks OpenAI's API: what it translates is all a backend gets),
        # in any spelling with `_` for `-` (`x_api_key`), as a CGI-style backend reads them
        for name in spellings_of(tuple(headers), _CLIENT_ONLY, USER_SESSION_PREFIXES):
            ex.remove_request_header(name)
        credential = self.front.credentials.get(backend.provider)
        if credential is not None:
            for name, value in credential.headers().items():
                ex.set_request_header(name, value)
        if backend.provider == "anthropic":
            ex.set_request_header("anthropic-version", ANTHROPIC_VERSION)
        for name, value in t.headers.items():
            ex.set_request_header(name, value)
        ex.set_request_header(":path", t.path)
        ex.set_request_header(BACKEND_HEADER, backend.provider)
        ex.clear_route_cache = True
        return t.body


def _plain(name: str) -> bool:
    """A field path as APIs name fields: at most 64 characters of identifiers and indices,
    no run of five digits nor seven digits in all, nothing a built-in detector finds (an
    AWS key is an identifier; found by review: a card number, dashed, glued to `card_` or
    in groups, and an API key were shown)."""
    return len(name) <= 64 and _FIELD_NAME.fullmatch(name) is not None \
        and _DIGIT_RUN.search(name) is None and not _secret_scanner().find(name)


@cache
def _secret_scanner() -> Any:
    """Every built-in detector, made once (the guards' own patterns)."""
    from ..guards.scanner import BUILTIN_NAMES, Scanner, builtin
    return Scanner(builtin(list(BUILTIN_NAMES)))


def shown_fields(dropped: Sequence[str]) -> list[str]:
    """The dropped fields as the log line and the `dropped_fields` metadata name them. An
    unknown field's name is the client's to choose (a card number, a 5,000-character key),
    and no guard reads key names: a name that is no plain field path is shown as
    `<unknown field>`, and past `_MAX_SHOWN` the rest are counted, not named."""
    out = [name if _plain(name) else "<unknown field>" for name in dropped[:_MAX_SHOWN]]
    if len(dropped) > _MAX_SHOWN:
        out.append(f"<{len(dropped) - _MAX_SHOWN} more>")
    return out


def _parsed_texts(doc: dict[str, Any], results: bool) -> list[JsonSource]:
    """What a backend's translation parses as JSON in a Chat Completions request: each tool
    call's `arguments`, and with `results` (Gemini's function response is the object a
    tool message spells) each tool message's text. An unguarded front has no other cap on
    them (found by review: one call's 2.6 M objects took 212 MiB while it was translated)."""
    out: list[JsonSource] = []
    for msg in as_list(doc.get("messages")):
        if not isinstance(msg, dict):
            continue
        for call in as_list(msg.get("tool_calls")):
            args = as_dict(as_dict(call).get("function")).get("arguments")
            if isinstance(args, str):
                out.append(JsonSource(args))
        if results and msg.get("role") == "tool":
            content = msg.get("content")
            parts = [content] if isinstance(content, str) else [
                as_dict(part).get("text") for part in as_list(content)]
            out.extend(JsonSource(text) for text in parts if isinstance(text, str))
    return out
