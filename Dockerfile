# The extproc server (and, with another command, the mock provider) as one small image.
# A build stage with a C compiler builds the wheel (setup.py compiles the hot path with
# mypyc); the image installs that wheel and carries no compiler.
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY extproc ./extproc
# extproc/envoy_template.yaml links to envoy/envoy.yaml: without it the wheel has no template
COPY envoy ./envoy
RUN find extproc -name '*.so' -delete && rm -f extproc/_native_build.py \
    && pip wheel --no-cache-dir --no-deps -w /wheels .

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY --from=build /wheels /wheels
COPY envoy ./envoy
COPY config ./config
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --system --uid 10001 extproc \
    && python -c "import extproc.native as n, extproc.guards.reframe; assert n.status()['compiled'], n.status()"
USER extproc

EXPOSE 50051 9464
HEALTHCHECK --interval=5s --timeout=2s --retries=5 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=1)"
ENTRYPOINT ["extproc"]
# The default config is the local stack's reference config, which trusts the development
# signing key and API key published with extproc: the server refuses to start on it, so a
# production run cannot be left open to anyone by accident. Mount your own config
# (`serve --config /etc/extproc/gateway.yaml ...`), or, for local development only, opt in:
#   docker run -e EXTPROC_ALLOW_DEV_CREDENTIALS=1 ... extproc:local
# (docker-compose.yml does). The image itself never opts in.
CMD ["serve", "--config", "/app/config/gateway.yaml", "--listen", "0.0.0.0:50051", \
     "--admin-host", "0.0.0.0", "--admin-port", "9464"]
