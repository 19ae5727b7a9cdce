# The sbx API: stateless, any number of replicas against one Redis.
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
COPY native/binding.gyp native/binding.gyp
COPY native/src native/src
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && npm ci --omit=dev --ignore-scripts \
 && npm rebuild && apt-get purge -y python3 make g++ && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
COPY core core
COPY api api
COPY native/index.ts native/index.ts
USER node
ENV SBX_API_HOST=0.0.0.0 SBX_API_PORT=8080
EXPOSE 8080
CMD ["node", "--import", "tsx", "api/src/main.ts"]
