# syntax=docker/dockerfile:1
#
# idp container image.
#
#   docker build -t idp .
#   docker run --rm -p 127.0.0.1:8000:8000 \
#     -e IDP_ISSUER=https://id.example.com -e IDP_KEK=... \
#     -e IDP_DATABASE_URL=postgresql://... -e IDP_REDIS_URL=redis://... idp
#
# The entrypoint migrates the database, then execs the server (so it is PID 1
# and receives SIGTERM). Extra arguments are appended to `idp serve`, e.g.
# `docker run idp --workers 4`. For any other subcommand override the
# entrypoint: `docker run --entrypoint idp idp db upgrade`.
#
# No secret is baked in: IDP_KEK (the key-encryption key) and the database
# credentials come from the environment at run time; .dockerignore keeps
# keys/, data/ and .env out of the build context.

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

RUN groupadd --system --gid 10001 idp \
 && useradd --system --uid 10001 --gid idp --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin idp

WORKDIR /app

# The (filtered) tree is copied and installed; the templates and migrations are
# package data of idp (idp/templates, idp/migrations), found through the package.
COPY . /app

# Dependencies (and the build backend) come from the hashed lock; the package itself
# adds nothing unhashed: no dependency resolution, no isolated build environment.
RUN pip install --no-cache-dir --require-hashes -r requirements-runtime.lock \
 && pip install --no-cache-dir --no-deps --no-build-isolation . \
 && rm -rf /app/build /app/*.egg-info \
 && mkdir -p /app/data /app/keys \
 && chown idp:idp /app/data /app/keys \
 && chmod 0700 /app/keys

USER 10001:10001

EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; r = urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2); sys.exit(0 if r.status == 200 else 1)"]

ENTRYPOINT ["/bin/sh", "-c", "idp db upgrade && exec idp serve --host 0.0.0.0 --port 8000 \"$@\"", "idp-entrypoint"]
CMD []
