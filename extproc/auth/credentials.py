"""The upstream provider's own credential, injected in the provider's header.

Clients never hold provider keys: the gateway strips whatever credential the client sent and
sets the provider's (OpenAI and Vertex `Authorization: Bearer`, Azure `api-key`, Anthropic
`x-api-key` plus `anthropic-version`, Gemini `x-goog-api-key`), and removes from the reply
the headers that name the provider account the key belongs to. A 401 from the provider can
only be about that key (the client's own credential was the gateway's to check), and its
body names it (OpenAI quotes its last characters): it is replaced by a 502 that says the
gateway's credential was refused (`CredentialRefused`). The value is read from an
environment variable or a file named in the config, never from the config itself; a file is
re-read when it changes (mounted secrets rotate, Vertex access tokens expire hourly), and
followed through a Kubernetes volume's `..data` symlink swap (see `Secret`).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from .. import filewatch
from ..filewatch import FileId
from ..policy import BodyTransform, Reject

if TYPE_CHECKING:
    from ..context import Context

log = logging.getLogger("extproc.auth")

#: every header a client may carry a credential in; all are removed before going upstream
#: (`ocp-apim-subscription-key`: Azure API Management's key, never the client's to send)
CLIENT_CREDENTIAL_HEADERS = ("authorization", "x-api-key", "api-key", "x-goog-api-key",
                             "ocp-apim-subscription-key")
#: the user's own credentials for the gateway's side of the world, which a provider has no
#: use for: a browser's cookies for the gateway's origin, a proxy's credential, and the
#: identity provider's tokens that authenticating front proxies attach to every request
#: (oauth2-proxy, AWS ALB with OIDC, Google IAP, Azure App Service authentication); removed
#: wherever the gateway authenticates the client or injects its own credential
USER_SESSION_HEADERS = (
    "cookie", "proxy-authorization",
    "x-forwarded-access-token", "x-auth-request-access-token", "x-forwarded-id-token",
    "x-amzn-oidc-accesstoken", "x-amzn-oidc-data",
    "x-goog-iap-jwt-assertion",
    "x-ms-client-principal",
    "cf-access-jwt-assertion",                  # Cloudflare Access
    "x-pomerium-jwt-assertion",                 # Pomerium
)
#: prefixes of the same: Azure App Service authentication's token store, one header per
#: token of each identity provider it signs users in with (`x-ms-token-aad-id-token`,
#: `x-ms-token-twitter-access-token-secret`, a custom OpenID Connect provider's)
USER_SESSION_PREFIXES = ("x-ms-token-",)
#: headers that pick which account the provider bills a key to, and how (an OpenAI
#: organization or project, a Google quota project or quota user, Vertex's Provisioned
#: Throughput or pay-as-you-go and its priority or flex tier: found by review, a client's
#: `x-vertex-ai-llm-shared-request-type: priority` was billed at the dearer rate): with the
#: gateway's credential, the operator's choice, removed from what the client sent wherever
#: the gateway injects its credential
CREDENTIAL_SCOPE_HEADERS = ("openai-organization", "openai-project", "x-goog-user-project",
                            "x-goog-quota-user", "x-vertex-ai-llm-request-type",
                            "x-vertex-ai-llm-shared-request-type")
#: reply headers that name the account a provider key belongs to (OpenAI's organization
#: and project, Anthropic's organization id): where the gateway injects its credential, the
#: operator's account, removed from what the client gets
ACCOUNT_REPLY_HEADERS = ("openai-organization", "openai-project", "anthropic-organization-id")
#: the header each provider reads its key from, and the value's format
PROVIDER_HEADER: dict[str, tuple[str, str]] = {
    "openai": ("authorization", "Bearer {}"),
    "azure": ("api-key", "{}"),
    "anthropic": ("x-api-key", "{}"),
    "gemini": ("x-goog-api-key", "{}"),
    "vertex": ("authorization", "Bearer {}"),
}
ANTHROPIC_VERSION = "2023-06-01"


def fold_header(name: str) -> str:
    """A header name as a server that reads `_` as `-` reads it (WSGI/CGI, LiteLLM):
    lower-cased, every `_` a `-`. Envoy passes names with `_` on by default."""
    return name.lower().replace("_", "-")


def spellings_of(headers: Iterable[str], names: frozenset[str],
                 prefixes: tuple[str, ...] = ()) -> list[str]:
    """The names in `headers` that are one of `names`, or start with one of `prefixes`
    (folded: see `fold_header`), in any spelling: `x_api_key`, `X_Api-Key` and `x-api-key`
    are all `x-api-key`."""
    return [h for h in headers if h in names or fold_header(h) in names
            or (prefixes and fold_header(h).startswith(prefixes))]


class SecretError(ValueError):
    pass


@dataclass
class Secret:
    """A secret named by `env: VAR` or `file: PATH`.

    A file is re-read when the file its path resolves to is another one or has changed
    (realpath, inode, size, mtime: see `filewatch.file_id`), not when its mtime alone moves:
    a Kubernetes Secret volume swaps a `..data` symlink to a new directory whose files may
    carry an older mtime. A read that fails (the file briefly missing, empty, unreadable)
    keeps the last good value, and is tried again at the next check.
    """

    env: str | None = None
    file: str | None = None
    _value: str = field(default="", repr=False)
    _version: FileId | None = None     # the file the value was read from
    _failed: FileId | None = None      # the last version that could not be used (logged once)
    _checked: float = 0.0

    def load(self) -> str:
        """Read the value now; SecretError says what is missing."""
        if self.env is not None:
            value = (os.environ.get(self.env) or "").strip()
            if not value:   # (blank as a blank file is: found by review)
                raise SecretError(f"environment variable {self.env} is not set, or blank")
            self._value = value
            return self._value
        assert self.file is not None
        filewatch.note(self.file)
        version = filewatch.file_id(self.file)   # before reading: a swap now reads again
        try:
            value = Path(self.file).read_text().strip()
        except OSError as exc:
            raise SecretError(f"cannot read {self.file}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise SecretError(f"{self.file} is not UTF-8 text") from exc
        if not value:
            raise SecretError(f"{self.file} is empty")
        self._value, self._version, self._checked = value, version, time.monotonic()
        return value

    def value(self) -> str:
        """The current value; a file is checked for a new version at most once a second,
        and the last good value is kept while the file is missing or unusable."""
        if self.file is not None:
            now = time.monotonic()
            if now - self._checked >= 1.0:
                self._checked = now
                self._refresh()
        return self._value

    def _refresh(self) -> None:
        assert self.file is not None
        version = filewatch.file_id(self.file)
        if version is None or version == self._version:
            return                       # unchanged, or missing for now (a swap in flight)
        try:
            self.load()
        except SecretError as exc:
            if version != self._failed:
                self._failed = version
                log.warning("secret %s changed but cannot be used (%s): keeping the last "
                            "good value", self.file, exc)
        else:
            log.info("secret %s re-read", self.file)

    def describe(self) -> str:
        return f"env {self.env}" if self.env else f"file {self.file}"


def strip_account_reply_headers(ex: Context) -> None:
    """Remove the reply headers naming the provider account (`ACCOUNT_REPLY_HEADERS`) from
    the response, and from `ex.response_headers`, which later policies read."""
    headers = ex.response_headers
    for name in ACCOUNT_REPLY_HEADERS:
        if name in headers:
            ex.remove_response_header(name)
            del headers[name]


class CredentialRefused(BodyTransform):
    """The body of a provider's 401 to a request carrying the injected key: withheld (it
    names the key), and the reply refused with a 502 in the provider's format, its headers
    held (`whole_body`) until then."""

    whole_body = True

    def feed(self, chunk: bytes) -> bytes:
        return b""

    def finish(self) -> bytes:
        _refused("401")


def _refused(why: str) -> NoReturn:
    log.error("the provider refused the route's upstream_credential (%s): replace the key",
              why)
    raise Reject(502, "the provider refused the gateway's credential for this route; its "
                 "operator must replace it (the provider's message is withheld: it names "
                 "the key)", details="extproc_upstream_credential_refused")


#: Google's reason for an error about the API key itself (`API_KEY_INVALID` in a 400,
#: `API_KEY_SERVICE_BLOCKED`, `API_KEY_IP_ADDRESS_BLOCKED` ... in a 403): with the key the
#: gateway injects, the operator's to fix, not the client's (found by review: the client got
#: "API key not valid" as a 400)
_KEY_REASON = re.compile(rb'"reason"\s{0,8}:\s{0,8}"API_KEY_[A-Z_]{0,40}"')
#: the account ids providers write in their error messages, and what each becomes: an
#: OpenAI organization or project id (`Rate limit reached for gpt-4o in organization
#: org-...`), Anthropic's organization id (`the rate limit for your organization (<uuid>)`),
#: a Google project number (`for consumer 'project_number:123...'`, `projects/123...`, `has
#: not been used in project 123...`, `?project=123...`, `on project #123...`,
#: `"containerInfo": "123..."`)
_ACCOUNT_IDS: tuple[tuple[re.Pattern[bytes], bytes], ...] = (
    (re.compile(rb"\b((?:org|proj)[-_])[A-Za-z0-9]{16,40}\b"), rb"\1<redacted>"),
    (re.compile(rb"(organization\W{0,4})[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                rb"[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"), rb"\1<redacted>"),
    (re.compile(rb"(project_number:|projects/|\bproject #?|[?&]project=|"
                rb'"containerInfo"\s{0,4}:\s{0,4}")[0-9]{4,20}'), rb"\1<redacted>"),
)
#: the most bytes of a body that `_KEY_REASON` or an account id matches (each bounded, so
#: that a body cut anywhere is read as it is whole: found by review)
_KEY_REASON_BYTES = 96


def redact_accounts(data: bytes, upto: int | None = None, start: int = 0
                    ) -> tuple[bytes, int]:
    """`data[start:cut]` with the account ids a provider's error message names replaced
    (`_ACCOUNT_IDS`: where the gateway injects its credential, the account is the
    operator's, as the reply headers that name it are: `ACCOUNT_REPLY_HEADERS`), and `cut`:
    `upto` (default: all of it), moved back to the start of an id that reaches it (it may go
    on in what follows, so it waits whole). The ids are found in all of `data` from `start`
    (`data[:start]`: what was released before it, which their word boundaries see), so any
    cut of a body gives what the whole body gives (found by review: ids redacted early at a
    cut let their rest out). Overlapping ids are redacted together."""
    cut = len(data) if upto is None else upto
    spans = sorted((m.start(), m.end(), m.expand(replacement))
                   for pattern, replacement in _ACCOUNT_IDS
                   for m in pattern.finditer(data, start))
    if upto is not None:
        for first, end, _ in reversed(spans):
            if first < cut <= end:
                cut = first
    out: list[bytes] = []
    pos = start
    for first, end, replacement in spans:
        if end > cut:
            break
        if first >= pos:
            out += (data[pos:first], replacement)
            pos = end
        elif end > pos:   # (overlapping the one before: its rest goes too)
            out.append(b"<redacted>")
            pos = end
    out.append(data[pos:cut])
    return b"".join(out), cut


class CredentialNamed(BodyTransform):
    """The body of a provider's other error (not 401) to a request carrying the injected
    key: passed on with the account ids in it redacted (`redact_accounts`), unless it names
    the key, as Google's 403 to a suspended API key does (`Consumer 'api_key:AIza...' has
    been suspended`, in its message and its details; found by review), or says the key
    itself is refused (`_KEY_REASON`: Google answers an invalid key with a 400). Such a
    reply is refused with a 502 in the provider's format.

    It asks for the body whole (`whole_body`: the headers wait, so the refusal is a clean
    502), but reads it in parts too (`parts_ok`), for an Envoy that ignores the request:
    all but the last `len(secret) - 1` bytes go on at once, so no byte of the key ever
    does, and a key found after the headers went out resets the reply. `secret` is the key
    the route injects."""

    whole_body = True
    parts_ok = True

    def __init__(self, secret: str, google: bool = False) -> None:
        """`google`: the key is Google's (a Gemini or Vertex route or backend), whose
        refusal of it is read from the reply (`_KEY_REASON`)."""
        self.secret = secret.encode()
        self.google = google
        self._tail = b""
        self._before = b""   # the last byte released (the ids' word boundaries see it)

    def feed(self, chunk: bytes) -> bytes:
        data = self._tail + chunk    # (as it came: the key is looked for whole in it)
        self._check(data)
        keep = max(len(self.secret), _KEY_REASON_BYTES) - 1
        if len(data) <= keep:
            self._tail = data
            return b""
        before = self._before
        out, cut = redact_accounts(before + data, len(before) + len(data) - keep,
                                   len(before))
        cut -= len(before)
        if cut > 0:
            self._before = data[cut - 1:cut]
        self._tail = data[cut:]
        return out

    @property
    def held_bytes(self) -> int:
        return len(self._tail)

    def finish(self) -> bytes:
        data, self._tail = self._tail, b""
        self._check(data)
        return redact_accounts(self._before + data, None, len(self._before))[0]

    def _check(self, data: bytes) -> None:
        found = _KEY_REASON.search(data) if self.google else None
        if found is not None:   # the key refused: as a 401 is (only Google says it so: from
            # another upstream the words may be a client's text it echoes, found by review)
            _refused(found.group().rsplit(b'"', 2)[-2].decode())
        if self.secret and self.secret in data:
            log.error("the provider's error reply names the route's upstream_credential: "
                      "withheld (the key may be suspended or revoked: check it)")
            raise Reject(502, "the provider answered with an error that names the gateway's "
                         "credential for this route (withheld); its operator must check the "
                         "key", details="extproc_upstream_credential_named")


def credential_transform(status: int, secret: str, provider: str = ""
                         ) -> BodyTransform | None:
    """The transform of a provider's error reply to a request carrying the injected key
    `secret` of `provider`: a 401 is about that key and names it (`CredentialRefused`);
    another error is passed on unless it names it or is Google's refusal of it
    (`CredentialNamed`); a success is left alone."""
    if status == 401:
        return CredentialRefused()
    if status >= 400:
        return CredentialNamed(secret, google=provider in ("gemini", "vertex"))
    return None


@dataclass
class UpstreamCredential:
    provider: str
    secret: Secret

    def headers(self) -> dict[str, str]:
        name, fmt = PROVIDER_HEADER[self.provider]
        return {name: fmt.format(self.secret.value())}
