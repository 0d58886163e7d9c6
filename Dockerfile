# The extproc server (and, with another command, the mock provider) as one small image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY extproc ./extproc
COPY envoy ./envoy
COPY config ./config
RUN pip install --no-cache-dir . && useradd --system --uid 10001 extproc
USER extproc

EXPOSE 50051 9464
HEALTHCHECK --interval=5s --timeout=2s --retries=5 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=1)"
ENTRYPOINT ["extproc"]
CMD ["serve", "--config", "/app/config/gateway.yaml", "--listen", "0.0.0.0:50051", \
     "--admin-host", "0.0.0.0", "--admin-port", "9464"]
