# imgd: multi-stage build of the shipped flavour: libjpeg-turbo's SIMD code for JPEG, libheif for
# AVIF and HEIC input (features jpeg-simd,heif).
#   docker build -t imgd .
#   docker run -p 8080:8080 -v imgd-data:/data -e IMGD_ADMIN_KEY="$(openssl rand -hex 24)" imgd
#   (the secret key that seals secrets at rest is generated into /data/secret.key: keep it)
# A cluster of three: deploy/compose/docker-compose.yml; Kubernetes: deploy/kubernetes/.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends nasm libheif-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p imgd --features jpeg-simd,heif

FROM debian:bookworm-slim
# CA roots for HTTPS to S3 (object_store verifies against the system store); libheif with its
# HEVC (libde265) and AV1 (dav1d) decoders.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libheif1 && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --home /data imgd && mkdir -p /data && chown imgd /data
COPY --from=build /src/target/release/imgd /usr/local/bin/imgd
USER imgd
ENV IMGD_LISTEN=0.0.0.0:8080 IMGD_DATA_DIR=/data
VOLUME /data
EXPOSE 8080
HEALTHCHECK CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"]
ENTRYPOINT ["/usr/local/bin/imgd"]
CMD ["serve"]
