# Telescope harness image (amd64 and arm64): docker buildx build --platform linux/amd64,linux/arm64 .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY ci/setup ci/setup
RUN ci/setup
COPY . .
RUN cargo build --release -p harness

FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
      gstreamer1.0-plugins-ugly gstreamer1.0-libav libgstrtspserver-1.0-0 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/telescope /usr/local/bin/telescope
ENTRYPOINT ["telescope"]
