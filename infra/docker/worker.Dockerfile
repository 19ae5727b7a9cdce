# The sbx worker: creates namespaces, cgroups and overlay mounts for every job, so it runs as root
# (no USER here) with exactly the privileges in infra/README.md "The worker's privileges", which
# infra/compose.yaml declares: cap_drop ALL + CHOWN DAC_OVERRIDE FOWNER FSETID MKNOD SETUID SETGID
# SETFCAP SYS_ADMIN NET_ADMIN, seccomp/AppArmor/SELinux unconfined, no-new-privileges, the host's
# cgroup namespace with /sys/fs/cgroup mounted read-write, and a volume at /var/lib/sbx. Not
# --privileged. Jobs are confined by the launcher (native/SECURITY.md), not by this container.
# From the repository root:
#   docker build -f infra/docker/worker.Dockerfile -t sbx-worker .
# Same stages as api.Dockerfile: the image holds the production node_modules, dist/ (with the
# native addons and sbx-init in dist/native/build/Release) and runs `node dist/worker/src/main.js`.
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
# libzstd1 (sbx_zstd.node) and util-linux (prlimit) are in the base image already.
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules node_modules
COPY package.json ./
COPY --from=build /src/dist dist
VOLUME /var/lib/sbx
CMD ["node", "--initial-old-space-size=128", "dist/worker/src/main.js"]
