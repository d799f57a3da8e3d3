# The `tessera` image the manifests in manifests/deploy and manifests/static-pod run.
#   docker build -t <registry>/tessera:0.1.0 .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin tessera

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/tessera /usr/local/bin/tessera
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/tessera"]
