# Moat in a container: multi-stage, Node 24, no dev dependencies in the final image, non-root,
# with a health check.
#
#   docker build -t moat .
#   docker run -p 25:2525 -e MOAT_DOWNSTREAM=mail.internal:25 -e MOAT_DOMAINS=example.org \
#     -e MOAT_CLAMD=clamd:3310 -e MOAT_SPAMD=spamd:783 -v moat-state:/var/lib/moat moat
#
# The image listens on 2525 (unprivileged; map the host's port 25 to it) and serves /metrics,
# /healthz and /readyz on 9325. State (Maildir, quarantine, Haraka's generated home) lives in
# /var/lib/moat: mount a volume there. Configuration is /app/config (mount your own moat.ini
# and recipients.txt over it) and rules /app/rules. Without MOAT_CLAMD and MOAT_SPAMD the
# gateway would try to run local scanners, which the image does not contain, and stops with a
# message saying what to set. `moat quarantine ...` is on the PATH (docker exec).
# docker-compose.yml runs the whole stack; docs/deployment.md explains it.

FROM node:24-bookworm-slim AS build
WORKDIR /app
# A C compiler for the allocator trim (native/malloc-trim.c, scripts/build-native.sh).
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
  && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY plugins ./plugins
# The gateway only: unit tests beside the modules import the test harness, which is not here.
RUN printf '%s' '{"extends": "./tsconfig.json", "include": ["src/**/*.ts", "plugins/**/*.ts"],' \
    ' "exclude": ["**/*.test.ts"], "compilerOptions": {"incremental": false}}' > tsconfig.image.json \
  && node_modules/.bin/tsc -p tsconfig.image.json
COPY native ./native
COPY scripts/build-native.sh ./scripts/
RUN NODE=node sh scripts/build-native.sh --required

FROM node:24-bookworm-slim AS runtime
# MALLOC_*: src/runtime/node-flags.ts, GATEWAY_ENV (a test keeps them the same).
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=2 \
    MALLOC_MMAP_THRESHOLD_=131072 \
    MOAT_ROOT=/app \
    MOAT_LISTEN=0.0.0.0:2525 \
    MOAT_METRICS_LISTEN=0.0.0.0:9325 \
    MOAT_STATE_DIR=/var/lib/moat
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only: TypeScript, the test tools and the `node` package stay behind.
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY config ./config
COPY rules ./rules
COPY bin ./bin
RUN ln -s /app/bin/moat /usr/local/bin/moat \
  && mkdir -p /var/lib/moat && chown node:node /var/lib/moat
USER node
EXPOSE 2525 9325
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:9325/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# Node flags: src/runtime/node-flags.ts (a test keeps them the same).
CMD ["node", "--max-semi-space-size=8", "--expose-gc", "dist/src/runtime/main.js"]
