# The ROAD image: the `road` CLI (worker, serve, and the reviewer commands) with ROAD's workflows prebuilt into a bundle.
# The CLI runs TypeScript through tsx (a runtime dependency), so there is no compile step; only the workflow bundle
# is built here, so that workers start without webpack.
#
#   docker build -t road .
#   docker run --rm road --help
FROM node:24-bookworm-slim

ENV NODE_ENV=production \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_AUDIT=false
WORKDIR /app

# Dependencies first, so that a source change does not reinstall them. Runtime dependencies are enough:
# tsx (bin/road.js), and @temporalio/worker brings webpack and swc for the bundle.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force

# The sources the CLI, the worker and the API load (tests, tools and provisioning caches stay out).
COPY tsconfig.json ./
COPY bin ./bin
COPY domain ./domain
COPY workflows ./workflows
COPY activities ./activities
COPY db ./db
COPY workers ./workers
COPY client ./client
COPY scripts ./scripts

# Prebuilt workflow bundle (what `npm run build:bundle` writes); createRoadWorker loads it via ROAD_WORKFLOW_BUNDLE.
RUN ./node_modules/.bin/tsx workers/build-bundle.ts dist/workflow-bundle.js \
    && chmod 0755 bin/road.js \
    && ln -s /app/bin/road.js /usr/local/bin/road
ENV ROAD_WORKFLOW_BUNDLE=/app/dist/workflow-bundle.js

# Files stay root-owned and read-only for the process; tsx keeps its cache under /tmp.
USER node

# `docker run road worker`, `docker compose exec road-api road pending` (the `road` link is on PATH).
ENTRYPOINT ["node", "bin/road.js"]
CMD ["--help"]
