# manta-node in a container, as the node operator guide's "Docker Installation" shows:
#
#   docker build --network host -t manta/node:latest .
#   docker run -d --name manta-node --network host \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     -e HOME=$HOME -v $HOME/.manta:$HOME/.manta -e MANTA_NODE_TOKEN=$TOKEN manta/node:latest
#
# Tasks run as sibling containers of the host's Docker (containers.runtime = "docker"), with
# host networking so they reach this node's light service on 127.0.0.1. The host's Docker
# resolves the node's bind mounts (task payloads, datasets) on the host, so ~/.manta must be
# mounted at the same absolute path it has on the host (hence HOME=$HOME), and dataset paths
# must be host paths mounted at the same place too. No registry is
# needed: BASE is any Debian 12 image, e.g. the task image scripts/build-task-image imports
# (manta-task:bookworm). Build with --network host so apt reaches Debian's archive.
ARG BASE=manta-task:bookworm

FROM ${BASE} AS build
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends build-essential cmake pkg-config python3 \
      protobuf-c-compiler libprotobuf-c-dev libprotobuf-dev libgrpc-dev libmosquitto-dev \
      libjansson-dev libyaml-dev zlib1g-dev libsqlite3-dev libssl-dev libmicrohttpd-dev >/dev/null
COPY CMakeLists.txt /src/
COPY proto /src/proto
COPY src /src/src
COPY tools /src/tools
COPY contrib /src/contrib
COPY cmake /src/cmake
COPY web /src/web
RUN cmake -S /src -B /build -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
      -DCMAKE_INSTALL_PREFIX=/usr/local >/dev/null \
 && cmake --build /build -j"$(nproc)" --target manta_node >/dev/null \
 && install -m 0755 /build/manta_node /usr/local/bin/manta_node

FROM ${BASE}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends libgrpc29 libprotobuf-c1 libmosquitto1 libjansson4 libyaml-0-2 \
      zlib1g ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/manta_node /usr/local/bin/manta_node
ENTRYPOINT ["manta_node"]
CMD ["start", "default", "--foreground"]
