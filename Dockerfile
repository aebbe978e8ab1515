# syntax=docker/dockerfile:1
#
# RetrainDaemon container images (docs/operations.md, "Containers").
#
#   docker build -t retrain-daemon:training .                                   # default target: the whole loop, CPU
#   docker build --target serving -t retrain-daemon:serving .                   # serving only: no libtorch in the image
#   docker build --build-arg VARIANT=gpu -t retrain-daemon:training-gpu .       # CUDA 13 + cuDNN 9 base image
#   docker build --build-arg VARIANT=gpu --target serving -t retrain-daemon:serving-gpu .
#
# VARIANT=cpu  -> -p:OnnxRuntimeCpu=true (the CPU ONNX Runtime package) and TorchSharp's CPU libtorch;
#                 runtime base: the ASP.NET Core runtime image.
# VARIANT=gpu  -> the ONNX Runtime GPU package (the solution's default) and -p:TorchSharpCuda=true
#                 (TorchSharp-cuda-linux: needs a NuGet feed that serves it); runtime base: NVIDIA's CUDA 13 +
#                 cuDNN 9 runtime image with the ASP.NET Core runtime copied in (both are Ubuntu 24.04).
# The serving target publishes with -p:LibTorch=false: TorchSharp's native libtorch (~500 MB) is left out,
# the node has the serve role only (Node:Roles=serve), and a training verb run in it fails at first use with TorchSharp's
# "doesn't contain a reference to libtorch" error. `run` with the loop off never loads TorchSharp.
#
# Every state file lives under /var/lib/retrain-daemon (a volume); the image runs as uid 10001.
# Checked statically in CI by tests/RetrainDaemon.UnitTests/Deploy/DeploymentFilesTests.cs (no Docker engine there).

ARG VARIANT=cpu

# ---------------------------------------------------------------- build (SDK)
FROM mcr.microsoft.com/dotnet/sdk:10.0.401-noble AS source
WORKDIR /src
COPY global.json Directory.Build.props Directory.Build.targets Directory.Packages.props ./
COPY docs/schemas/ docs/schemas/
COPY src/ src/

FROM source AS publish-training
ARG VARIANT
RUN --mount=type=cache,target=/root/.nuget/packages \
    case "$VARIANT" in \
      cpu) flags="-p:OnnxRuntimeCpu=true" ;; \
      gpu) flags="-p:TorchSharpCuda=true" ;; \
      *) echo "VARIANT must be cpu or gpu, not '$VARIANT'" >&2; exit 1 ;; \
    esac \
    && dotnet publish src/RetrainDaemon -c Release $flags -o /out

FROM source AS publish-serving
ARG VARIANT
RUN --mount=type=cache,target=/root/.nuget/packages \
    case "$VARIANT" in \
      cpu) flags="-p:OnnxRuntimeCpu=true" ;; \
      gpu) flags="" ;; \
      *) echo "VARIANT must be cpu or gpu, not '$VARIANT'" >&2; exit 1 ;; \
    esac \
    && dotnet publish src/RetrainDaemon -c Release $flags -p:LibTorch=false -o /out \
    && if ls /out | grep -qiE '^lib(torch|c10|gomp)'; then echo "libtorch leaked into the serving publish" >&2; exit 1; fi

# ---------------------------------------------------------------- runtime bases
# curl: the HEALTHCHECK below. The ASP.NET Core images ship no HTTP client, and a `dotnet` probe would start a
# second .NET process (~60 MB, ~0.3 s CPU) every 30 s; curl is ~1 MB and checks the status code exactly.
# libopenblas0-pthread: FID/KID and the other feature-space metrics P/Invoke into libopenblas.so.0.
FROM mcr.microsoft.com/dotnet/aspnet:10.0.12-noble AS runtime-cpu
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl libopenblas0-pthread \
    && rm -rf /var/lib/apt/lists/*

FROM nvidia/cuda:13.0.0-cudnn-runtime-ubuntu24.04 AS runtime-gpu
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl libicu74 libopenblas0-pthread libssl3t64 tzdata \
    && rm -rf /var/lib/apt/lists/*
COPY --from=runtime-cpu /usr/share/dotnet /usr/share/dotnet
RUN ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet
ENV DOTNET_RUNNING_IN_CONTAINER=true

FROM runtime-${VARIANT} AS app-base
RUN groupadd --system --gid 10001 retrain \
    && useradd --system --uid 10001 --gid retrain --home-dir /var/lib/retrain-daemon --no-create-home --shell /usr/sbin/nologin retrain \
    && mkdir -p /var/lib/retrain-daemon /etc/retrain-daemon \
    && chown retrain:retrain /var/lib/retrain-daemon \
    && chmod 0700 /var/lib/retrain-daemon
# The daemon's settings (section:key as RETRAIN__Section__Key): listen on every interface inside the container
# (the port is the default Http:Urls port), state under the volume, the same layout as the systemd unit.
ENV RETRAIN__Http__Urls=http://0.0.0.0:9464 \
    RETRAIN__Store__Path=/var/lib/retrain-daemon/retrain.db \
    RETRAIN__Registry__Root=/var/lib/retrain-daemon/registry \
    RETRAIN__Loop__RunsDirectory=/var/lib/retrain-daemon/runs \
    RETRAIN__Loop__AnalysisDirectory=/var/lib/retrain-daemon/analysis \
    RETRAIN__Loop__SchedulerStore=/var/lib/retrain-daemon/scheduler.db \
    RETRAIN__Evaluation__StatisticsCache=/var/lib/retrain-daemon/reference-stats \
    HOME=/var/lib/retrain-daemon \
    DOTNET_NOLOGO=1
WORKDIR /var/lib/retrain-daemon
VOLUME ["/var/lib/retrain-daemon"]
EXPOSE 9464
# Ready = broker connected, consumer subscribed, store answering, every served model warmed: a node without a
# champion yet reports unhealthy until its first promotion (docs/operations.md).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD curl -fsS -o /dev/null http://127.0.0.1:9464/v2/health/ready || exit 1
# SIGTERM drains in order (stop consuming, finish the batch, checkpoint training); give it 90 s
# (docker stop -t 90 / stop_grace_period / terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
ENTRYPOINT ["dotnet", "/opt/retrain-daemon/retrain-daemon.dll"]
CMD ["run"]

# ---------------------------------------------------------------- final images
# Serving only: the HTTP API on ONNX Runtime, following the champion in a shared registry; scale it out.
# The serve role alone (Node:Roles=serve): no loop and no ingestion consumer; train and ingest nodes own the
# queues and the runs (docs/scaling.md).
FROM app-base AS serving
COPY --from=publish-serving /out /opt/retrain-daemon
ENV RETRAIN__Node__Roles=serve
USER 10001:10001

# The whole loop: ingestion, Quartz, TorchSharp training, gate, registry, serving. One replica per store.
FROM app-base AS training
COPY --from=publish-training /out /opt/retrain-daemon
USER 10001:10001
