# The sbx worker: needs root in the host's namespaces it is allowed to create (CAP_SYS_ADMIN,
# cgroup write access to its delegated subtree, overlayfs). Run privileged or with an equivalent
# seccomp/AppArmor profile, with /sys/fs/cgroup mounted read-write and a state volume.
FROM node:20-bookworm-slim
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json .npmrc ./
COPY native native
RUN npm ci --omit=dev && npx --no-install node-gyp rebuild --directory native
COPY core core
COPY worker worker
VOLUME /var/lib/sbx
CMD ["node", "--import", "tsx", "worker/src/main.ts"]
