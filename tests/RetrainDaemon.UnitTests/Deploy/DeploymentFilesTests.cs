using System.Globalization;
using System.Text.Json;
using System.Xml.Linq;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Messaging.Broker;
using static RetrainDaemon.UnitTests.Deploy.DeploymentFiles;

namespace RetrainDaemon.UnitTests.Deploy;

/// <summary>
/// The deployment files against each other and against the daemon (issue 8): the Dockerfile statically (no
/// Docker engine here), the compose file and every k8s manifest parsed, and every image, port, volume and
/// <c>RETRAIN__</c> setting they name checked to exist in the Dockerfile or the daemon's configuration.
/// </summary>
public sealed class DeploymentFilesTests
{
    private static readonly string[] FinalStages = ["training", "serving"];

    /// <summary>The values the Dockerfile documents for its build arguments (a FROM may be chosen by one).</summary>
    private static readonly Dictionary<string, string[]> BuildArgValues = new() { ["VARIANT"] = ["cpu", "gpu"] };

    private static Dockerfile ReadDockerfile() => Dockerfile.Parse(File.ReadAllText(PathOf("Dockerfile")));

    // ───────────────────────────── Dockerfile ─────────────────────────────

    [Fact]
    public void Dockerfile_base_images_are_pinned_and_every_stage_reference_resolves()
    {
        var file = ReadDockerfile();
        var problems = new List<string>();
        var stageNames = new HashSet<string>(file.Stages.Where(s => s.Name is not null).Select(s => s.Name!), StringComparer.OrdinalIgnoreCase);
        foreach (var stage in file.Stages)
        {
            foreach (var from in file.Alternatives(stage.From, BuildArgValues))
            {
                if (stageNames.Contains(from))
                {
                    if (file.Stages.IndexOf(file.StageNamed(from)!) >= file.Stages.IndexOf(stage))
                    {
                        problems.Add($"line {stage.Line}: FROM {from} names a stage that is not defined before it");
                    }
                }
                else if (ImagePinProblem(from, requirePatch: true) is { } problem)
                {
                    problems.Add($"line {stage.Line}: {problem}");
                }
            }

            foreach (var copy in stage.Instructions.Where(i => i.Keyword == "COPY" && i.Arguments.Contains("--from=", StringComparison.Ordinal)))
            {
                string source = copy.Arguments.Split(' ').First(a => a.StartsWith("--from=", StringComparison.Ordinal))["--from=".Length..];
                if (!stageNames.Contains(source) && ImagePinProblem(source, requirePatch: true) is { } problem)
                {
                    problems.Add($"line {copy.Line}: COPY --from: {problem}");
                }
            }
        }

        Assert.Empty(problems);
        foreach (var target in FinalStages)
        {
            Assert.NotNull(file.StageNamed(target));
        }

        // `docker build .` without --target builds the last stage: the whole loop.
        Assert.Equal("training", file.Stages[^1].Name);
        Assert.True(file.GlobalArgs.ContainsKey("VARIANT"), "the CPU/GPU build argument VARIANT is declared before the first FROM");
    }

    [Theory]
    [InlineData("training")]
    [InlineData("serving")]
    public void Dockerfile_final_stage_runs_as_non_root_exposes_the_daemon_port_and_checks_readiness(string target)
    {
        var file = ReadDockerfile();
        var stage = file.StageNamed(target)!;

        var user = file.Effective(stage, "USER");
        Assert.True(user is not null, $"{target}: no USER (the image would run as root)");
        string account = user!.Arguments.Split(':')[0];
        Assert.False(account is "root" or "0", $"{target}: USER {user.Arguments} is root");

        var exposed = file.All(stage, "EXPOSE").SelectMany(e => e.Arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Select(p => p.Split('/')[0]).ToList();
        Assert.Equal([DaemonPort.ToString(CultureInfo.InvariantCulture)], exposed);

        var env = file.Environment(stage);
        Assert.True(env.TryGetValue("RETRAIN__Http__Urls", out var urls), $"{target}: the container must set Http:Urls to listen beyond loopback");
        Assert.Equal(DaemonPort, PortOfUrls(urls!));
        Assert.DoesNotContain("127.0.0.1", urls, StringComparison.Ordinal);

        var health = file.Effective(stage, "HEALTHCHECK");
        Assert.True(health is not null, $"{target}: no HEALTHCHECK");
        Assert.Contains($":{DaemonPort}/v2/health/ready", health!.Arguments, StringComparison.Ordinal);

        Assert.NotNull(file.Effective(stage, "ENTRYPOINT"));
        var entry = JsonSerializer.Deserialize<string[]>(file.Effective(stage, "ENTRYPOINT")!.Arguments)!;
        Assert.Equal("dotnet", entry[0]);
        Assert.Contains(file.All(stage, "COPY"), c => c.Arguments.EndsWith(" " + Path.GetDirectoryName(entry[1]), StringComparison.Ordinal));

        // Every RETRAIN__ variable is a real setting; every state path lies on a declared volume.
        var volumes = file.All(stage, "VOLUME").SelectMany(v => v.Arguments.TrimStart('[').TrimEnd(']').Split([',', ' '], StringSplitOptions.RemoveEmptyEntries)).Select(v => v.Trim('"')).ToList();
        Assert.NotEmpty(volumes);
        foreach (var (name, value) in env)
        {
            if (ConfigurationKeyOfEnvironment(name) is not { } key)
            {
                continue;
            }

            Assert.Null(ConfigurationKeyProblem(key));
            if (key is "Store:Path" or "Registry:Root" or "Loop:RunsDirectory" or "Loop:AnalysisDirectory" or "Loop:SchedulerStore" or "Evaluation:StatisticsCache")
            {
                Assert.True(volumes.Any(v => value.StartsWith(v.TrimEnd('/') + "/", StringComparison.Ordinal)), $"{target}: {key} = {value} is not on a VOLUME ({string.Join(", ", volumes)})");
            }
        }
    }

    [Fact]
    public void Dockerfile_serving_target_carries_no_libtorch_and_runs_without_the_loop()
    {
        var file = ReadDockerfile();
        var serving = file.StageNamed("serving")!;
        var copies = file.All(serving, "COPY").Where(c => c.Arguments.Contains("--from=", StringComparison.Ordinal)).ToList();
        var published = copies.Select(c => file.StageNamed(c.Arguments.Split(' ').First(a => a.StartsWith("--from=", StringComparison.Ordinal))["--from=".Length..])).Where(s => s is not null && s.Instructions.Any(i => i.Arguments.Contains("dotnet publish", StringComparison.Ordinal))).ToList();
        var publish = Assert.Single(published);
        foreach (var run in publish!.Instructions.Where(i => i.Arguments.Contains("dotnet publish", StringComparison.Ordinal)))
        {
            Assert.Contains("-p:LibTorch=false", run.Arguments, StringComparison.Ordinal);
        }

        Assert.Equal("serve", file.Environment(serving).GetValueOrDefault("RETRAIN__Node__Roles"));

        var training = file.StageNamed("training")!;
        Assert.DoesNotContain(file.All(training, "RUN"), r => r.Arguments.Contains("LibTorch=false", StringComparison.Ordinal));
        Assert.DoesNotContain(file.Chain(training).SelectMany(s => s.Instructions), i => i.Arguments.Contains("--from=" + publish.Name, StringComparison.Ordinal));

        // The switch exists: every native libtorch package of the Training project is conditioned on $(LibTorch).
        var project = XDocument.Load(PathOf("src", "RetrainDaemon.Training", "RetrainDaemon.Training.csproj"));
        var natives = project.Descendants("PackageReference").Where(p => ((string?)p.Attribute("Include") ?? "") is var id && (id.StartsWith("libtorch", StringComparison.OrdinalIgnoreCase) || id.StartsWith("TorchSharp-c", StringComparison.OrdinalIgnoreCase))).ToList();
        Assert.NotEmpty(natives);
        foreach (var reference in natives)
        {
            string condition = (string?)reference.Parent!.Attribute("Condition") ?? "";
            Assert.Contains("'$(LibTorch)' == 'true'", condition, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Dockerfile_copies_every_file_the_build_reads()
    {
        var file = ReadDockerfile();
        var sources = file.Stages.SelectMany(s => s.Instructions).Where(i => i.Keyword == "COPY" && !i.Arguments.Contains("--from=", StringComparison.Ordinal))
            .SelectMany(i => i.Arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries).Where(a => !a.StartsWith("--", StringComparison.Ordinal)).SkipLast(1))
            .Select(s => s.TrimEnd('/'))
            .ToList();
        foreach (var source in sources)
        {
            Assert.True(File.Exists(PathOf(source)) || Directory.Exists(PathOf(source)), $"COPY {source}: not in the repository");
        }

        // Files the projects include from outside src/ (the embedded JSON Schemas from docs/schemas) must be copied too.
        foreach (var csproj in Directory.EnumerateFiles(PathOf("src"), "*.csproj", SearchOption.AllDirectories))
        {
            foreach (var include in XDocument.Load(csproj).Descendants().Where(e => e.Name.LocalName != "ProjectReference").Select(e => (string?)e.Attribute("Include")).OfType<string>())
            {
                string full = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(csproj)!, include));
                string relative = Path.GetRelativePath(RepoRoot, full).Replace('\\', '/');
                if (!include.Contains("..", StringComparison.Ordinal) || relative.StartsWith("src/", StringComparison.Ordinal) || relative.StartsWith("..", StringComparison.Ordinal))
                {
                    continue;
                }

                Assert.True(sources.Any(s => relative.StartsWith(s + "/", StringComparison.Ordinal) || relative == s), $"{Path.GetFileName(csproj)} includes {relative}, which no COPY brings into the build stage");
            }
        }

        // The build context keeps host build output out (obj/project.assets.json carries host paths).
        var ignore = File.ReadAllLines(PathOf(".dockerignore")).Select(l => l.Trim()).ToList();
        Assert.Contains("**/bin/", ignore);
        Assert.Contains("**/obj/", ignore);
    }

    // ───────────────────────────── compose ─────────────────────────────

    [Fact]
    public void Compose_images_ports_volumes_secrets_and_settings_exist()
    {
        string path = PathOf("deploy", "docker-compose.yml");
        var compose = Map(Assert.Single(LoadYaml(path)), "docker-compose.yml");
        var services = Map(compose["services"], "services");
        var namedVolumes = MapOrNull(compose, "volumes")?.Keys.Select(k => k.ToString()!).ToHashSet() ?? [];
        var secrets = MapOrNull(compose, "secrets")?.Keys.Select(k => k.ToString()!).ToHashSet() ?? [];
        var dockerfile = ReadDockerfile();
        var problems = new List<string>();
        bool daemonSeen = false;

        foreach (var (key, value) in services)
        {
            string name = key.ToString()!;
            var service = Map(value, name);
            string? image = Str(service, "image");
            if (image is null)
            {
                problems.Add($"{name}: no image (every service names a pinned image, built ones their tag)");
                continue;
            }

            bool isDaemon = MapOrNull(service, "build") is not null;
            if (isDaemon)
            {
                daemonSeen = true;
                var build = MapOrNull(service, "build")!;
                string context = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(path)!, Str(build, "context") ?? "."));
                string target = Str(build, "target") ?? "";
                if (!File.Exists(Path.Combine(context, Str(build, "dockerfile") ?? "Dockerfile")))
                {
                    problems.Add($"{name}: no Dockerfile in the build context {context}");
                }

                if (dockerfile.StageNamed(target) is null || !FinalStages.Contains(target))
                {
                    problems.Add($"{name}: build target '{target}' is not a final Dockerfile stage ({string.Join(", ", FinalStages)})");
                }

                foreach (var (arg, argValue) in MapOrNull(build, "args") ?? [])
                {
                    if (!dockerfile.GlobalArgs.ContainsKey(arg.ToString()!) || (BuildArgValues.TryGetValue(arg.ToString()!, out var allowed) && !allowed.Contains(argValue?.ToString())))
                    {
                        problems.Add($"{name}: build arg {arg}={argValue} is not one the Dockerfile declares");
                    }
                }

                if (!SplitImage(image).Tag.EndsWith(target, StringComparison.Ordinal))
                {
                    problems.Add($"{name}: image '{image}' does not say which target it is ({target})");
                }
            }

            if (ImagePinProblem(image, requirePatch: !isDaemon) is { } pin)
            {
                problems.Add($"{name}: {pin}");
            }

            var allowedPorts = isDaemon ? [DaemonPort] : ContainerPortsOf(image);
            foreach (var port in ListOrEmpty(service, "ports").Select(p => p!.ToString()!))
            {
                int containerPort = int.Parse(port.Split(':')[^1].Split('/')[0], CultureInfo.InvariantCulture);
                if (!allowedPorts.Contains(containerPort))
                {
                    problems.Add($"{name}: port {port} maps container port {containerPort}, which {image} does not listen on ({string.Join(", ", allowedPorts)})");
                }
            }

            foreach (var volume in ListOrEmpty(service, "volumes").Select(v => v!.ToString()!))
            {
                string source = volume.Split(':')[0];
                if (source.StartsWith('.') || source.StartsWith('/'))
                {
                    string full = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(path)!, source));
                    if (!full.StartsWith(RepoRoot + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                    {
                        problems.Add($"{name}: bind mount {source} lies outside the repository");
                    }
                    else if (!File.Exists(full) && !Directory.Exists(full) && !IsPlannedMonitoringPath(full))
                    {
                        problems.Add($"{name}: bind mount {source} does not exist");
                    }
                }
                else if (!namedVolumes.Contains(source))
                {
                    problems.Add($"{name}: volume '{source}' is not declared under volumes:");
                }
            }

            var mountedSecrets = ListOrEmpty(service, "secrets").Select(s => s!.ToString()!).ToList();
            problems.AddRange(mountedSecrets.Where(s => !secrets.Contains(s)).Select(s => $"{name}: secret '{s}' is not declared under secrets:"));

            foreach (var (envName, envValue) in MapOrNull(service, "environment") ?? [])
            {
                if (ConfigurationKeyOfEnvironment(envName.ToString()!) is not { } configKey)
                {
                    continue;
                }

                if (ConfigurationKeyProblem(configKey) is { } problem)
                {
                    problems.Add($"{name}: {envName}: {problem}");
                }

                if (configKey.EndsWith("File", StringComparison.Ordinal) && envValue?.ToString() is { } file
                    && !mountedSecrets.Any(s => file == "/run/secrets/" + s))
                {
                    problems.Add($"{name}: {envName}={file} is not a secret mounted in this service");
                }
            }

            foreach (var dependency in (MapOrNull(service, "depends_on")?.Keys.Select(k => k.ToString()!) ?? ListOrEmpty(service, "depends_on").Select(d => d!.ToString()!)))
            {
                if (!services.ContainsKey(dependency))
                {
                    problems.Add($"{name}: depends on '{dependency}', which is not a service");
                }
            }
        }

        Assert.True(daemonSeen, "no service builds the daemon from the Dockerfile");
        Assert.Empty(problems);

        // The broker service loads deploy/rabbitmq/definitions.json.
        Assert.Contains(services.Values.Select(v => Map(v, "service")), s => ListOrEmpty(s, "volumes").Any(v => v!.ToString()!.StartsWith("./rabbitmq/definitions.json:", StringComparison.Ordinal)));
    }

    /// <summary>Container ports of the third-party images the deployment uses.</summary>
    private static int[] ContainerPortsOf(string image) => SplitImage(image).Repository switch
    {
        "rabbitmq" => [5672, 15672],
        "prom/prometheus" => [9090],
        "grafana/grafana" => [3000],
        _ => [],
    };

    /// <summary>
    /// monitoring/ is written alongside these files (DESIGN.md §2: prometheus/, grafana/dashboards, grafana/provisioning);
    /// only those exact folders may be named before they exist.
    /// </summary>
    private static bool IsPlannedMonitoringPath(string full)
    {
        string relative = Path.GetRelativePath(RepoRoot, full).Replace('\\', '/');
        return relative is "monitoring/prometheus" or "monitoring/grafana/dashboards" or "monitoring/grafana/provisioning";
    }

    // ───────────────────────────── RabbitMQ definitions ─────────────────────────────

    [Fact]
    public void Rabbitmq_definitions_declare_exactly_what_the_daemon_declares()
    {
        using var definitions = JsonDocument.Parse(File.ReadAllText(PathOf("deploy", "rabbitmq", "definitions.json")));
        var root = definitions.RootElement;
        var exchanges = root.GetProperty("exchanges").EnumerateArray().ToDictionary(e => e.GetProperty("name").GetString()!, e => e.GetProperty("type").GetString());
        Assert.Equal(new Dictionary<string, string?> { [Topology.IngestExchange] = "topic", [Topology.DeadLetterExchange] = "topic", [Topology.EventsExchange] = "topic" }, exchanges);

        // The ingest queues' arguments as the daemon declares them with its default settings: a different value
        // (x-max-length, x-delivery-limit) makes the daemon's declaration fail with PRECONDITION_FAILED.
        var ingest = new IngestOptions
        {
            DeliveryLimit = int.Parse(ConfigurationValue("Ingest:DeliveryLimit")!, CultureInfo.InvariantCulture),
            QueueMaxLength = long.Parse(ConfigurationValue("Ingest:QueueMaxLength")!, CultureInfo.InvariantCulture),
        };
        var expected = Topology.IngestQueueArguments(ingest).ToDictionary(a => a.Key, a => Convert.ToString(a.Value, CultureInfo.InvariantCulture));
        var queues = root.GetProperty("queues").EnumerateArray().ToDictionary(q => q.GetProperty("name").GetString()!);
        Assert.Equal([Topology.DeadLetterQueue, Topology.FeedbackQueue, Topology.SamplesQueue], queues.Keys.Order(StringComparer.Ordinal));
        foreach (var queue in new[] { Topology.SamplesQueue, Topology.FeedbackQueue })
        {
            Assert.True(queues[queue].GetProperty("durable").GetBoolean());
            var actual = queues[queue].GetProperty("arguments").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString() : p.Value.GetRawText());
            Assert.Equal(expected.OrderBy(e => e.Key, StringComparer.Ordinal), actual.OrderBy(e => e.Key, StringComparer.Ordinal));
        }

        Assert.Equal("quorum", queues[Topology.DeadLetterQueue].GetProperty("arguments").GetProperty("x-queue-type").GetString());
        var bindings = root.GetProperty("bindings").EnumerateArray().Select(b => (b.GetProperty("source").GetString(), b.GetProperty("destination").GetString(), b.GetProperty("routing_key").GetString())).ToHashSet();
        Assert.Equal([(Topology.IngestExchange, Topology.SamplesQueue, "sample.#"), (Topology.IngestExchange, Topology.FeedbackQueue, "feedback.#"), (Topology.DeadLetterExchange, Topology.DeadLetterQueue, "#")], bindings);
    }

    // ───────────────────────────── Kubernetes ─────────────────────────────

    private static List<(string File, Dictionary<object, object?> Doc)> K8sObjects()
    {
        var objects = new List<(string, Dictionary<object, object?>)>();
        foreach (var file in Directory.EnumerateFiles(PathOf("deploy", "k8s"), "*.yaml").Order(StringComparer.Ordinal))
        {
            foreach (var doc in LoadYaml(file).Where(d => d is not null))
            {
                var map = Map(doc, Path.GetFileName(file));
                Assert.False(string.IsNullOrEmpty(Str(map, "kind")), $"{Path.GetFileName(file)}: a document without kind");
                objects.Add((Path.GetFileName(file), map));
            }
        }

        return objects;
    }

    private static string NameOf(Dictionary<object, object?> doc) => Str(MapOrNull(doc, "metadata"), "name") ?? "";

    [Fact]
    public void K8s_manifests_parse_and_every_reference_exists()
    {
        var objects = K8sObjects();
        var kustomization = objects.Single(o => Str(o.Doc, "kind") == "Kustomization");
        foreach (var resource in ListOrEmpty(kustomization.Doc, "resources"))
        {
            Assert.True(File.Exists(PathOf("deploy", "k8s", resource!.ToString()!)), $"kustomization names {resource}, which does not exist");
        }

        var byKind = objects.Where(o => Str(o.Doc, "kind") != "Kustomization").GroupBy(o => Str(o.Doc, "kind")!).ToDictionary(g => g.Key, g => g.Select(o => o.Doc).ToList());
        var claims = byKind.GetValueOrDefault("PersistentVolumeClaim", []).ToDictionary(NameOf);
        var configMaps = byKind.GetValueOrDefault("ConfigMap", []).ToDictionary(NameOf);
        var secretsByName = byKind.GetValueOrDefault("Secret", []).ToDictionary(NameOf);
        var deployments = byKind.GetValueOrDefault("Deployment", []).Concat(byKind.GetValueOrDefault("StatefulSet", [])).ToList();
        var dockerfile = ReadDockerfile();
        var registryRoot = dockerfile.Environment(dockerfile.StageNamed("training")!)["RETRAIN__Registry__Root"];
        var problems = new List<string>();

        // The ConfigMap's appsettings.json: valid JSON whose every key is a setting.
        foreach (var (name, map) in configMaps)
        {
            foreach (var (file, content) in MapOrNull(map, "data") ?? [])
            {
                if (file.ToString()!.EndsWith(".json", StringComparison.Ordinal))
                {
                    foreach (var key in Flatten(content!.ToString()!).Where(k => !Flatten(content.ToString()!).Any(other => other.StartsWith(k + ":", StringComparison.OrdinalIgnoreCase))))
                    {
                        if (ConfigurationKeyProblem(key) is { } problem)
                        {
                            problems.Add($"ConfigMap {name}/{file}: {problem}");
                        }
                    }
                }
            }
        }

        Assert.NotEmpty(deployments);
        foreach (var workload in deployments)
        {
            string name = NameOf(workload);
            var spec = MapOrNull(workload, "spec")!;
            var pod = MapOrNull(MapOrNull(spec, "template")!, "spec")!;
            var podLabels = MapOrNull(MapOrNull(MapOrNull(spec, "template")!, "metadata")!, "labels")!;
            var selector = MapOrNull(MapOrNull(spec, "selector")!, "matchLabels")!;
            problems.AddRange(selector.Where(l => Str(podLabels, l.Key.ToString()!) != l.Value?.ToString()).Select(l => $"{name}: selector {l.Key}={l.Value} does not match the pod labels"));

            var volumes = ListOrEmpty(pod, "volumes").Select(v => Map(v, "volume")).ToDictionary(v => Str(v, "name")!);
            foreach (var (volumeName, volume) in volumes)
            {
                if (Str(MapOrNull(volume, "persistentVolumeClaim"), "claimName") is { } claim && !claims.ContainsKey(claim))
                {
                    problems.Add($"{name}: volume {volumeName} claims '{claim}', which no manifest defines");
                }

                if (Str(MapOrNull(volume, "configMap"), "name") is { } cm && !configMaps.ContainsKey(cm))
                {
                    problems.Add($"{name}: volume {volumeName} uses ConfigMap '{cm}', which no manifest defines");
                }

                if (Str(MapOrNull(volume, "secret"), "secretName") is { } secret && !secretsByName.ContainsKey(secret))
                {
                    problems.Add($"{name}: volume {volumeName} uses Secret '{secret}', which no manifest defines");
                }
            }

            if (Str(MapOrNull(pod, "securityContext"), "runAsNonRoot") != "true")
            {
                problems.Add($"{name}: the pod does not require a non-root user");
            }

            foreach (var container in ListOrEmpty(pod, "containers").Select(c => Map(c, "container")))
            {
                string image = Str(container, "image") ?? "";
                if (ImagePinProblem(image, requirePatch: false) is { } pin)
                {
                    problems.Add($"{name}: {pin}");
                }

                string tag = SplitImage(image).Tag;
                string? stage = FinalStages.FirstOrDefault(s => tag.EndsWith("-" + s, StringComparison.Ordinal) || tag == s);
                if (stage is null)
                {
                    problems.Add($"{name}: image '{image}' names no Dockerfile target (its tag should end in -training or -serving)");
                    continue;
                }

                var env = ListOrEmpty(container, "env").Select(e => Map(e, "env")).ToDictionary(e => Str(e, "name")!, e => Str(e, "value"));
                foreach (var (envName, _) in env)
                {
                    if (ConfigurationKeyOfEnvironment(envName) is { } key && ConfigurationKeyProblem(key) is { } problem)
                    {
                        problems.Add($"{name}: env {envName}: {problem}");
                    }
                }

                var ports = ListOrEmpty(container, "ports").Select(p => Map(p, "port")).ToList();
                var portNames = ports.Where(p => Str(p, "name") is not null).ToDictionary(p => Str(p, "name")!, p => int.Parse(Str(p, "containerPort")!, CultureInfo.InvariantCulture));
                problems.AddRange(ports.Where(p => Str(p, "containerPort") != DaemonPort.ToString(CultureInfo.InvariantCulture)).Select(p => $"{name}: containerPort {Str(p, "containerPort")} is not the daemon's port {DaemonPort}"));

                foreach (var (probe, path) in new[] { ("livenessProbe", "/v2/health/live"), ("readinessProbe", "/v2/health/ready") })
                {
                    var http = MapOrNull(MapOrNull(container, probe) ?? [], "httpGet");
                    if (http is null || Str(http, "path") != path)
                    {
                        problems.Add($"{name}: {probe} must GET {path}");
                        continue;
                    }

                    string port = Str(http, "port") ?? "";
                    int number = portNames.TryGetValue(port, out var named) ? named : int.TryParse(port, CultureInfo.InvariantCulture, out var n) ? n : -1;
                    if (number != DaemonPort)
                    {
                        problems.Add($"{name}: {probe} port '{port}' is not the daemon's port {DaemonPort}");
                    }
                }

                var requests = MapOrNull(MapOrNull(container, "resources") ?? [], "requests");
                if (Str(requests, "cpu") is null || Str(requests, "memory") is null)
                {
                    problems.Add($"{name}: resource requests need cpu and memory");
                }

                var mounts = ListOrEmpty(container, "volumeMounts").Select(m => Map(m, "mount")).ToList();
                problems.AddRange(mounts.Where(m => !volumes.ContainsKey(Str(m, "name")!)).Select(m => $"{name}: volumeMount {Str(m, "name")} names no volume of the pod"));

                // The registry is the shared claim, mounted where the image keeps Registry:Root.
                var registryMount = mounts.FirstOrDefault(m => Str(m, "mountPath") == registryRoot);
                if (registryMount is null || Str(MapOrNull(volumes.GetValueOrDefault(Str(registryMount, "name")!) ?? [], "persistentVolumeClaim"), "claimName") is not { } registryClaim
                    || !ListOrEmpty(MapOrNull(claims.GetValueOrDefault(registryClaim) ?? [], "spec"), "accessModes").Any(a => a?.ToString() == "ReadWriteMany"))
                {
                    problems.Add($"{name}: the registry ({registryRoot}) must be a ReadWriteMany claim shared by training and serving");
                }

                // The broker password file lies in a mounted Secret that has that key.
                foreach (var configMap in configMaps.Values)
                {
                    foreach (var (_, content) in MapOrNull(configMap, "data") ?? [])
                    {
                        using var json = JsonDocument.Parse(content!.ToString()!);
                        if (json.RootElement.TryGetProperty("Broker", out var broker) && broker.TryGetProperty("PasswordFile", out var passwordFile))
                        {
                            string file = passwordFile.GetString()!;
                            var mount = mounts.FirstOrDefault(m => file.StartsWith(Str(m, "mountPath")!.TrimEnd('/') + "/", StringComparison.Ordinal));
                            var secretName = mount is null ? null : Str(MapOrNull(volumes[Str(mount, "name")!], "secret"), "secretName");
                            if (secretName is null || !secretsByName.TryGetValue(secretName, out var secretObject)
                                || !(MapOrNull(secretObject, "stringData") ?? MapOrNull(secretObject, "data") ?? []).ContainsKey(Path.GetFileName(file)))
                            {
                                problems.Add($"{name}: Broker:PasswordFile {file} is not a key of a Secret mounted in the container");
                            }
                        }
                    }
                }

                if (stage == "training")
                {
                    if (Str(spec, "replicas") != "1" || Str(MapOrNull(spec, "strategy"), "type") != "Recreate")
                    {
                        problems.Add($"{name}: the training daemon runs exactly one replica with the Recreate strategy");
                    }
                }
                else if (env.GetValueOrDefault("RETRAIN__Node__Roles") != "serve")
                {
                    problems.Add($"{name}: a serving-only Deployment sets RETRAIN__Node__Roles=serve");
                }
            }
        }

        // Services select pods that exist and target a named container port.
        foreach (var service in byKind.GetValueOrDefault("Service", []))
        {
            var spec = MapOrNull(service, "spec")!;
            var selector = MapOrNull(spec, "selector")!;
            var selected = deployments.Where(d => selector.All(l => Str(MapOrNull(MapOrNull(MapOrNull(MapOrNull(d, "spec")!, "template")!, "metadata")!, "labels"), l.Key.ToString()!) == l.Value?.ToString())).ToList();
            if (selected.Count == 0)
            {
                problems.Add($"Service {NameOf(service)} selects no Deployment");
            }

            foreach (var port in ListOrEmpty(spec, "ports").Select(p => Map(p, "port")))
            {
                string target = Str(port, "targetPort") ?? Str(port, "port")!;
                bool found = selected.SelectMany(d => ListOrEmpty(MapOrNull(MapOrNull(MapOrNull(d, "spec")!, "template")!, "spec"), "containers"))
                    .SelectMany(c => ListOrEmpty(Map(c, "container"), "ports")).Select(p => Map(p, "port"))
                    .Any(p => Str(p, "name") == target || Str(p, "containerPort") == target);
                if (!found)
                {
                    problems.Add($"Service {NameOf(service)}: targetPort {target} is no container port of the pods it selects");
                }
            }
        }

        Assert.Empty(problems);
        Assert.Contains(deployments, d => SplitImage(Str(Map(ListOrEmpty(MapOrNull(MapOrNull(MapOrNull(d, "spec")!, "template")!, "spec"), "containers")[0], "c"), "image")!).Tag.EndsWith("-serving", StringComparison.Ordinal));
        Assert.Contains(deployments, d => SplitImage(Str(Map(ListOrEmpty(MapOrNull(MapOrNull(MapOrNull(d, "spec")!, "template")!, "spec"), "containers")[0], "c"), "image")!).Tag.EndsWith("-training", StringComparison.Ordinal));
    }

    // ───────────────────────────── the checks themselves ─────────────────────────────

    [Theory]
    [InlineData("RETRAIN__Broker__PasswordFile", true)]
    [InlineData("RETRAIN__Broker__Endpoints__0", true)]
    [InlineData("RETRAIN__Broker__Endpoints__3", true)]
    [InlineData("RETRAIN__Loop__Enabled", true)]
    [InlineData("RETRAIN__Node__Roles", true)]
    [InlineData("RETRAIN__Store__ConnectionStringFile", true)]
    [InlineData("RETRAIN__Serving__AdminKeyFile", true)]
    [InlineData("RETRAIN__Broker__Pasword", false)]
    [InlineData("RETRAIN__Http__Url", false)]
    [InlineData("RETRAIN__Loop__Enable", false)]
    public void Configuration_key_check_accepts_settings_and_refuses_typos(string variable, bool valid)
    {
        Assert.Equal(valid, ConfigurationKeyProblem(ConfigurationKeyOfEnvironment(variable)!) is null);
    }

    [Theory]
    [InlineData("rabbitmq:3.13.7-management", true, true)]
    [InlineData("mcr.microsoft.com/dotnet/aspnet:10.0.12-noble", true, true)]
    [InlineData("mcr.microsoft.com/dotnet/aspnet:10.0", true, false)]
    [InlineData("grafana/grafana", false, false)]
    [InlineData("grafana/grafana:latest", false, false)]
    [InlineData("localhost:5000/retrain-daemon", false, false)]
    [InlineData("retrain-daemon:0.1.0-serving", false, true)]
    public void Image_pin_check(string image, bool requirePatch, bool pinned)
    {
        Assert.Equal(pinned, ImagePinProblem(image, requirePatch) is null);
    }

    [Fact]
    public void Dockerfile_parser_follows_stage_chains_and_build_arguments()
    {
        var file = Dockerfile.Parse("""
            ARG VARIANT=cpu
            FROM example/base:1.2.3 AS runtime-cpu
            USER root
            FROM example/cuda:13.0.0 AS runtime-gpu
            FROM runtime-${VARIANT} AS app
            ENV A=1 \
                RETRAIN__Http__Urls=http://0.0.0.0:9464
            FROM app AS final
            USER 10001:10001
            """);
        Assert.Equal(["runtime-cpu", "runtime-gpu", "app", "final"], file.Stages.Select(s => s.Name));
        Assert.Equal(["runtime-cpu", "runtime-gpu"], file.Alternatives("runtime-${VARIANT}", BuildArgValues));
        var final = file.StageNamed("final")!;
        Assert.Equal(["final", "app", "runtime-cpu"], file.Chain(final).Select(s => s.Name));
        Assert.Equal("10001:10001", file.Effective(final, "USER")!.Arguments);
        Assert.Equal("root", file.Effective(file.StageNamed("app")!, "USER")!.Arguments);
        Assert.Equal("http://0.0.0.0:9464", file.Environment(final)["RETRAIN__Http__Urls"]);
    }
}
