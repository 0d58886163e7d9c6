"""Setup (l): LiteLLM's proxy as a peer gateway, installed into its own virtualenv.

`ensure_installed()` makes bench/.venv-litellm (never `make test`) and installs
`litellm[proxy]` at the pinned VERSION into it, once; `prepare()` writes the proxy's config
next to a copy of bench/litellm_guard.py and returns how to start it. The load goes straight
to LiteLLM's port (it is the gateway itself: no Envoy), on LiteLLM's own OpenAI path
`/v1/chat/completions`, with the same bodies and `x-mock-*` headers as every other setup and
LiteLLM's master key as the bearer token.

Nearest equivalent of our reference policies:
- auth: the master key (a static key compared per request) stands in for our JWT check;
- the PII guard: bench/litellm_guard.py, a `CustomGuardrail` masking prompts (pre-call)
  and replies, whole and streamed (post-call), on by default;
- no rate limits and no usage metering (LiteLLM's need its database or Redis).
The provider key is injected from config/dev-secrets/openai.key as the model's `api_key`.

Quiet, so log I/O does not cost it: `LITELLM_LOG=ERROR` (LiteLLM's loggers and uvicorn's
access log, which logs at INFO, stay silent), `set_verbose: false`,
`turn_off_message_logging: true`, no callbacks, no database (so no spend logs), one uvicorn
worker (`--num_workers 1`), uvloop when installed (LiteLLM picks it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV = BENCH / ".venv-litellm"
#: pinned: the newest release whose `proxy` extra installs from PyPI here (1.108 and later
#: need litellm-proxy / litellm-proxy-extras releases the index does not carry)
VERSION = "1.106.12"
MASTER_KEY = "sk-bench-litellm-master-key"
PATH = "/v1/chat/completions"
INSTALL_TIMEOUT_S = 900


def _installed_version() -> str | None:
    python = VENV / "bin" / "python"
    if not python.exists() or not (VENV / "bin" / "litellm").exists():
        return None
    out = subprocess.run([str(python), "-c", "import importlib.metadata as m; "
                          "print(m.version('litellm'))"],
                         capture_output=True, text=True, check=False, timeout=60)
    return out.stdout.strip() if out.returncode == 0 else None


def ensure_installed() -> str | None:
    """Install LiteLLM VERSION into bench/.venv-litellm if needed; None when ready, else why
    not (one line)."""
    if _installed_version() == VERSION:
        return None
    print(f"(l) installing litellm[proxy]=={VERSION} into {os.path.relpath(VENV)} "
          "(once; a few minutes)", flush=True)
    try:
        if not (VENV / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True,
                           capture_output=True, timeout=300)
        done = subprocess.run([str(VENV / "bin" / "pip"), "install", "-q",
                               f"litellm[proxy]=={VERSION}"], capture_output=True, text=True,
                              check=False, timeout=INSTALL_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"could not make {VENV.name}: {exc}"
    if done.returncode != 0:
        errors = [ln for ln in done.stderr.splitlines() if ln.startswith("ERROR")]
        return (f"pip install litellm[proxy]=={VERSION} failed: "
                f"{(errors or done.stderr.splitlines() or ['?'])[-1][:200]}")
    if _installed_version() != VERSION:
        return f"litellm {VERSION} is not importable in {VENV.name} after pip install"
    return None


def config(mock_port: int) -> dict:
    """LiteLLM's proxy config: one model on the mock, the master key, the guardrail."""
    key = (ROOT / "config" / "dev-secrets" / "openai.key").read_text().strip()
    return {
        "model_list": [{"model_name": "gpt-4o-mini", "litellm_params": {
            "model": "openai/gpt-4o-mini", "api_base": f"http://127.0.0.1:{mock_port}/v1",
            "api_key": key}}],
        "guardrails": [{"guardrail_name": "pii-mask", "litellm_params": {
            "guardrail": "litellm_guard.PiiMask", "mode": ["pre_call", "post_call"],
            "default_on": True}}],
        "litellm_settings": {"set_verbose": False, "turn_off_message_logging": True,
                             "callbacks": [], "drop_params": True},
        # x-* headers go on to the provider: the mock reads its x-mock-* controls
        "general_settings": {"master_key": MASTER_KEY, "disable_spend_logs": True,
                             "forward_client_headers_to_llm_api": True},
    }


def prepare(log_dir: Path, port: int, mock_port: int
            ) -> tuple[list[str], dict[str, str], str, dict[str, str]]:
    """Write the config (beside the guardrail module, which LiteLLM loads relative to it);
    returns (argv, env, request path, headers replacing the workloads')."""
    import yaml
    home = log_dir / "litellm"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(BENCH / "litellm_guard.py", home / "litellm_guard.py")
    path = home / "config.yaml"
    path.write_text(yaml.safe_dump(config(mock_port), sort_keys=False))
    argv = [str(VENV / "bin" / "litellm"), "--config", str(path), "--host", "127.0.0.1",
            "--port", str(port), "--num_workers", "1"]
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "DATABASE_URL", "REDIS_URL")}
    env.update({"LITELLM_LOG": "ERROR", "LITELLM_MODE": "PRODUCTION",
                "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
    return argv, env, PATH, {"authorization": f"Bearer {MASTER_KEY}"}
