# The sbx API: stateless, any number of replicas against one Redis. From the repository root:
#   docker build -f infra/docker/api.Dockerfile -t sbx-api .
# Stage `build` compiles (npm ci builds the native addons, npm run build the TypeScript into dist/);
# stage `deps` installs the production node_modules only; the image holds those, dist/ and
# package.json, and runs `node dist/api/src/main.js` as an unprivileged user. No tsx, no compiler.
# The API needs no privilege at all (infra/README.md): run it with every capability dropped,
# no-new-privileges and a read-only root, as infra/compose.yaml and infra/k8s/api.yaml do.
FROM node:20-bookworm-slim AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ musl-tools libzstd-dev \
 && rm -rf /var/lib/apt/lists/*
# The repository's .npmrc points node-gyp at Debian's headers (/usr); this image's node lives in /usr/local.
ENV npm_config_nodedir=/usr/local
COPY package.json package-lock.json .npmrc ./
COPY native/binding.gyp native/binding.gyp
COPY native/src native/src
COPY native/tools/build-init.sh native/tools/build-init.sh
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY infra/scripts/build.sh infra/scripts/build.sh
# native/index.ts and the modules it imports (tty-io, errno-name, output-files, …): every TypeScript file of native/.
COPY native/*.ts native/
COPY core core
COPY api api
COPY worker worker
COPY client client
COPY cli cli
RUN npm run build

FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --ignore-scripts

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules node_modules
COPY package.json ./
COPY --from=build /src/dist dist
USER node
# Listens on all addresses of the container; SBX_API_KEYS (or SBX_ALLOW_ANONYMOUS=true behind a
# loopback-only port mapping) is required for that, see README "Configuration".
ENV SBX_API_HOST=0.0.0.0 SBX_API_PORT=8080
EXPOSE 8080
CMD ["node", "dist/api/src/main.js"]
