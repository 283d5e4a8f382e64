# syntax=docker/dockerfile:1
# The `telescope` command line (replay, soak, bench, report, mock-kvs) with the GStreamer
# runtime it needs, for amd64 and arm64 (EC2 t4g, Jetson-class boxes):
#   docker buildx build --platform linux/amd64,linux/arm64 -t telescope .
#   docker run --rm -v "$PWD:/data" telescope replay /data/clip.mp4 --sink file:/data/out.mkv
# The native KVS sink needs no Producer SDK. `--build-arg WITH_KVSSINK=yes` adds the
# Producer SDK's kvssink GStreamer plugin as well (a long C++ build).

ARG WITH_KVSSINK=no

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      pkg-config clang libclang-dev \
      libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev \
      libgstrtspserver-1.0-dev libopencv-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p harness --bin telescope \
 && install -m 0755 target/release/telescope /usr/local/bin/telescope

FROM debian:bookworm-slim AS runtime-no
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates \
      libgstreamer1.0-0 libgstreamer-plugins-base1.0-0 libgstreamer-plugins-bad1.0-0 \
      libgstrtspserver-1.0-0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
      gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav \
      libopencv-core406 libopencv-imgproc406 libopencv-imgcodecs406 libopencv-videoio406 \
 && rm -rf /var/lib/apt/lists/*

FROM build AS kvssink
ARG KVS_SDK_REF=v3.4.1
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      cmake git libssl-dev libcurl4-openssl-dev liblog4cplus-dev \
 && rm -rf /var/lib/apt/lists/*
RUN git clone --depth 1 --branch "${KVS_SDK_REF}" \
      https://github.com/awslabs/amazon-kinesis-video-streams-producer-sdk-cpp.git /kvs \
 && cmake -S /kvs -B /kvs/build -DBUILD_GSTREAMER_PLUGIN=ON -DBUILD_DEPENDENCIES=OFF \
 && cmake --build /kvs/build --parallel \
 && mkdir -p /opt/kvssink \
 && cp /kvs/build/libgstkvssink.so /kvs/build/*.so* /opt/kvssink/

FROM runtime-no AS runtime-yes
COPY --from=kvssink /opt/kvssink/ /opt/kvssink/
ENV GST_PLUGIN_PATH=/opt/kvssink LD_LIBRARY_PATH=/opt/kvssink

# hadolint ignore=DL3006
FROM runtime-${WITH_KVSSINK}
COPY --from=build /usr/local/bin/telescope /usr/local/bin/telescope
RUN useradd --system --create-home --uid 10001 telescope
USER telescope
WORKDIR /home/telescope
# RTSP (replay --sink rtsp://0.0.0.0:8554/NAME) and mock-kvs.
EXPOSE 8554 4566
ENTRYPOINT ["telescope"]
CMD ["--help"]
