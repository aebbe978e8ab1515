using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using System.Text.Json;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Core.IO;

namespace RetrainDaemon.Core.Registry;

/// <summary>
/// The model registry: a Triton-compatible model repository (layout in <see cref="RegistryLayout"/>)
/// with verified versions, atomic aliases and crash recovery.
/// <list type="bullet">
/// <item>Publishing copies the files into <c>&lt;model&gt;/.tmp-*</c>, writes the manifest, fsyncs every
/// file and the folder, and renames it to the next never-used number (a no-replace rename, so an
/// existing number is never overwritten), then fsyncs the parent. A crash at any instant leaves either
/// no new version or a complete one; leftovers are removed by the next writer or <see cref="Recover"/>.</item>
/// <item>A version is only handed out for serving after <see cref="Verify"/>: manifest intact, every
/// file present with its size and SHA-256, nothing unlisted, ONNX external data inside the folder.
/// A champion that fails is refused with a reason (<see cref="ResolveServable"/>); the registry never
/// substitutes another version on its own — the caller keeps serving what it has.</item>
/// <item>Writers (publish, promote, rollback, challenger, retention, recovery) take the model's lock
/// file, so processes and threads publishing the same model each get distinct numbers. Readers take
/// no lock: every file they read is replaced atomically.</item>
/// <item>Rejected candidates go to <c>&lt;model&gt;/rejected/&lt;version&gt;/</c> with their reports,
/// where neither Triton nor this class looks for servable versions; they share the number sequence.</item>
/// </list>
/// Thread-safe: instances hold only configuration; all state is on disk.
/// </summary>
public sealed class ModelRegistry
{
    private readonly TimeSpan lockTimeout;
    private readonly TimeProvider time;

    /// <summary>A registry configured from options (section <c>Registry</c>).</summary>
    public ModelRegistry(RegistryOptions options, TimeProvider? timeProvider = null)
        : this(options?.Root ?? throw new ArgumentNullException(nameof(options)), options.KeepLast, options.LockTimeout, timeProvider)
    {
    }

    /// <summary>A registry at <paramref name="root"/> (created by the first publish) keeping the last <paramref name="keepLast"/> versions besides the aliased ones.</summary>
    public ModelRegistry(string root, int keepLast = 5, TimeSpan? lockTimeout = null, TimeProvider? timeProvider = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(root);
        ArgumentOutOfRangeException.ThrowIfLessThan(keepLast, 1);
        Root = Path.GetFullPath(root);
        KeepLast = keepLast;
        this.lockTimeout = lockTimeout ?? TimeSpan.FromMinutes(1);
        time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>The repository folder (absolute): what Triton's <c>--model-repository</c> would point at.</summary>
    public string Root { get; }

    /// <summary>Retention keeps this many newest versions (servable and rejected counted apart) besides champion, previous and challenger.</summary>
    public int KeepLast { get; }

    // ───────────────────────────── reading (no lock) ─────────────────────────────

    /// <summary>The models that have a folder in the registry, sorted.</summary>
    public IReadOnlyList<string> Models() =>
        !Directory.Exists(Root)
            ? []
            : new DirectoryInfo(Root).EnumerateDirectories().Select(d => d.Name).Where(RegistryLayout.IsValidModelName).Order(StringComparer.Ordinal).ToList();

    /// <summary>The aliases of <paramref name="model"/>, or null when nothing has been promoted yet.</summary>
    /// <exception cref="RegistryException"><c>aliases.json</c> exists but cannot be read.</exception>
    public ModelAliases? ReadAliases(string model)
    {
        RegistryLayout.RequireModelName(model);
        if (!TryReadAliases(model, out var aliases, out var problem))
        {
            throw new RegistryException($"{model}: {problem}");
        }

        return aliases;
    }

    /// <summary>Verifies a servable version; throws with the reason when it does not verify.</summary>
    /// <exception cref="RegistryVerificationException">The version is missing, rejected, or fails a check; <see cref="RegistryVerificationException.Reason"/> names it.</exception>
    public VerifiedVersion Verify(string model, int version) =>
        TryVerify(model, version, out var verified, out var problem)
            ? verified
            : throw new RegistryVerificationException(model, version, problem);

    /// <summary>Verifies a servable version: true with the handle, or false with a human-readable reason.</summary>
    public bool TryVerify(string model, int version, [NotNullWhen(true)] out VerifiedVersion? verified, [NotNullWhen(false)] out string? problem)
    {
        RegistryLayout.RequireModelName(model);
        verified = null;
        string servable = ServableDirectory(model, version);
        if (!Directory.Exists(servable))
        {
            problem = Directory.Exists(RejectedDirectory(model, version))
                ? $"version {version} was rejected by the gate (kept under {RegistryLayout.RejectedFolder}/{version}); rejected candidates are never servable"
                : $"version {version} does not exist";
            return false;
        }

        var check = VerifyFolder(servable, model, version, VersionLocation.Servable);
        verified = check.Verified;
        problem = check.Problem;
        return verified is not null;
    }

    /// <summary>One version, servable or rejected, with its verification result; null when no folder has that number.</summary>
    public VersionInfo? Inspect(string model, int version)
    {
        RegistryLayout.RequireModelName(model);
        var aliases = TryReadAliases(model, out var a, out _) ? a : null;
        foreach (var location in new[] { VersionLocation.Servable, VersionLocation.Rejected })
        {
            string directory = location == VersionLocation.Servable ? ServableDirectory(model, version) : RejectedDirectory(model, version);
            if (Directory.Exists(directory))
            {
                return Describe(model, version, location, directory, aliases);
            }
        }

        return null;
    }

    /// <summary>Every version of a model (servable and rejected, newest first), each verified, with the aliases.</summary>
    public ModelListing List(string model)
    {
        RegistryLayout.RequireModelName(model);
        ModelAliases? aliases = null;
        string? aliasesProblem = null;
        if (TryReadAliases(model, out var a, out var problem))
        {
            aliases = a;
        }
        else
        {
            aliasesProblem = problem;
        }

        var versions = new List<VersionInfo>();
        foreach (var (version, directory) in NumberedFolders(ModelDirectory(model)))
        {
            versions.Add(Describe(model, version, VersionLocation.Servable, directory, aliases));
        }

        foreach (var (version, directory) in NumberedFolders(Path.Combine(ModelDirectory(model), RegistryLayout.RejectedFolder)))
        {
            versions.Add(Describe(model, version, VersionLocation.Rejected, directory, aliases));
        }

        versions.Sort((x, y) => y.Version.CompareTo(x.Version));
        return new ModelListing(model, aliases, aliasesProblem, versions);
    }

    /// <summary>The champion, verified — or the reason it cannot be served. See <see cref="Resolve"/>.</summary>
    public ServableResolution ResolveServable(string model) => Resolve(model, AliasNames.Champion);

    /// <summary>
    /// The version an alias names, verified now. A version that fails verification is refused with
    /// the reason, never replaced by another: a server that already serves something keeps it and
    /// reports the problem; deciding to roll back is an operator's (or a policy's) explicit call.
    /// </summary>
    public ServableResolution Resolve(string model, string alias)
    {
        RegistryLayout.RequireModelName(model);
        if (!Directory.Exists(ModelDirectory(model)))
        {
            return new ServableResolution(model, alias, null, null, $"no model '{model}' in the registry at {Root}", Absent: true);
        }

        if (!TryReadAliases(model, out var aliases, out var problem))
        {
            return new ServableResolution(model, alias, null, null, problem);
        }

        int? version = aliases?.Get(alias);
        if (version is null)
        {
            return new ServableResolution(model, alias, null, null, $"{model} has no {alias} yet", Absent: true);
        }

        return TryVerify(model, version.Value, out var verified, out problem)
            ? new ServableResolution(model, alias, version, verified, null)
            : new ServableResolution(model, alias, version, null, $"{alias} v{version} of {model} is refused: {problem}");
    }

    // ───────────────────────────── writing (under the model lock) ─────────────────────────────

    /// <summary>
    /// Records a candidate under a new version number: servable if it passed the gate, under
    /// <c>rejected/</c> otherwise. A passed candidate is verified after it lands; when
    /// <see cref="PublishRequest.Alias"/> asks, it becomes the champion (the old one previous, and
    /// <c>config.pbtxt</c> rewritten) or the challenger in the same locked step. Retention runs last.
    /// </summary>
    /// <exception cref="ArgumentException">The request is malformed (model name, file names, missing <c>model.onnx</c>).</exception>
    /// <exception cref="RegistryException">The candidate's ONNX file is unsafe or unreadable, or the registry refuses the change.</exception>
    public PublishResult Publish(PublishRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        ValidateRequest(request);
        string modelDirectory = EnsureModelDirectory(request.Model);
        using var held = ModelLock.Acquire(modelDirectory, lockTimeout);
        RemoveLeftovers(request.Model);
        var aliases = ReadAliasesForUpdate(request.Model);

        string temp = Path.Combine(modelDirectory, $"{RegistryLayout.TempPrefix}publish-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        int version;
        VersionManifest manifest;
        string target;
        try
        {
            var files = new List<ManifestFile>();
            foreach (var (name, source) in request.Files.OrderBy(f => f.Key, StringComparer.Ordinal))
            {
                files.Add(CopySynced(source, Path.Combine(temp, name), name));
            }

            OnnxModelInfo? onnx = null;
            var external = new List<ExternalDataReference>();
            if (request.Status == VersionStatus.Passed)
            {
                // What is served is what was checked: the signature comes from the file, and an unsafe
                // external-data reference is refused before the version exists.
                onnx = InspectOnnxFiles(temp, files, external, out var problem)
                    ?? throw new RegistryException($"{request.Model}: the candidate cannot be published: {problem}");
            }

            version = NextVersion(request.Model);
            manifest = new VersionManifest
            {
                Model = request.Model,
                Version = version,
                Status = request.Status,
                CreatedAt = time.GetUtcNow(),
                RunId = request.RunId,
                ParentVersion = request.ParentVersion,
                DataWatermark = request.DataWatermark,
                Opset = onnx?.Opset,
                Inputs = onnx?.Inputs ?? [],
                Outputs = onnx?.Outputs ?? [],
                MaxBatchSize = request.MaxBatchSize,
                Hyperparameters = request.Hyperparameters.OrderBy(p => p.Key, StringComparer.Ordinal).ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal),
                Metrics = request.Metrics.ToList(),
                GateReport = request.GateReport?.DeepClone(),
                Parity = request.Parity,
                Files = files,
                ExternalData = external,
            };

            string parent = request.Status == VersionStatus.Passed ? modelDirectory : EnsureRejectedDirectory(request.Model);
            while (true)
            {
                string manifestPath = Path.Combine(temp, RegistryLayout.ManifestName);
                File.Delete(manifestPath);
                byte[] encoded = ManifestCodec.Encode(manifest, out _);
                DurableFiles.WriteNewFile(manifestPath, s => s.Write(encoded));
                DurableFiles.SyncDirectory(temp);
                // The number is recorded as used before the folder appears: a crash in between skips a
                // number, which is harmless; the reverse order could hand the number out twice.
                WriteCounter(request.Model, version);
                target = Path.Combine(parent, RegistryLayout.VersionName(version));
                if (DurableFiles.TryRenameNoReplace(temp, target))
                {
                    break;
                }

                // Taken by a writer that ignored the lock (or a folder made by hand): never overwrite, take the next.
                version = NextVersion(request.Model); // above the number just recorded in versions.json
                manifest = manifest with { Version = version };
            }

            DurableFiles.SyncDirectory(parent);
        }
        catch
        {
            DurableFiles.TryDeleteDirectory(temp);
            throw;
        }

        var location = request.Status == VersionStatus.Passed ? VersionLocation.Servable : VersionLocation.Rejected;
        var check = VerifyFolder(target, request.Model, version, location);
        if (check.Problem is not null)
        {
            // The folder stays (reported unverified, never loadable); nothing points at it.
            throw new RegistryException($"{request.Model} v{version} was written but does not verify: {check.Problem}");
        }

        if (request.Status == VersionStatus.Passed && request.Alias != PublishAlias.None)
        {
            string reason = string.IsNullOrWhiteSpace(request.Reason) ? "passed the gate" : request.Reason;
            aliases = request.Alias == PublishAlias.Champion
                ? PromoteLocked(aliases, check.Verified!, reason)
                : SetChallengerLocked(request.Model, aliases, check.Verified!, reason);
        }

        var retention = ApplyRetentionLocked(request.Model, aliases);
        // A verified handle means "servable"; a rejected candidate is only checked for integrity.
        var servable = request.Status == VersionStatus.Passed ? check.Verified : null;
        return new PublishResult(request.Model, version, request.Status, target, manifest, servable, aliases ?? new ModelAliases(), retention);
    }

    /// <summary>Makes a passed, verifying version the champion; the old champion becomes previous. Rewrites <c>config.pbtxt</c>.</summary>
    /// <exception cref="RegistryException">The version is rejected, missing, does not verify, or is already the champion.</exception>
    public ModelAliases Promote(string model, int version, string reason)
    {
        RegistryLayout.RequireModelName(model);
        ArgumentException.ThrowIfNullOrWhiteSpace(reason);
        using var held = LockExisting(model);
        var aliases = ReadAliasesForUpdate(model);
        if (aliases?.Champion == version)
        {
            throw new RegistryException($"{model} v{version} is already the champion");
        }

        if (!TryVerify(model, version, out var verified, out var problem))
        {
            throw new RegistryException($"cannot promote {model} v{version}: {problem}");
        }

        return PromoteLocked(aliases, verified, reason);
    }

    /// <summary>
    /// Points the champion back at previous (which must verify), records the reason, and clears
    /// previous — so a second rollback fails clearly instead of flipping back to the version just
    /// rolled away from (promote it explicitly if that is wanted). Rewrites <c>config.pbtxt</c>.
    /// </summary>
    /// <exception cref="RegistryException">No champion, no previous, or previous does not verify.</exception>
    public ModelAliases Rollback(string model, string reason)
    {
        RegistryLayout.RequireModelName(model);
        ArgumentException.ThrowIfNullOrWhiteSpace(reason);
        using var held = LockExisting(model);
        var aliases = ReadAliasesForUpdate(model);
        if (aliases?.Champion is not int champion)
        {
            throw new RegistryException($"cannot roll back {model}: it has no champion");
        }

        if (aliases.Previous is not int previous)
        {
            throw new RegistryException($"cannot roll back {model}: v{champion} is the champion and there is no previous version to return to");
        }

        if (!TryVerify(model, previous, out var verified, out var problem))
        {
            throw new RegistryException($"cannot roll back {model} to previous v{previous}: {problem}");
        }

        var change = new AliasChange(time.GetUtcNow(), AliasActions.Rollback, AliasNames.Champion, champion, previous, reason);
        var updated = aliases.With(change, champion: previous, previous: null, challenger: aliases.Challenger == previous ? null : aliases.Challenger);
        WriteAliases(model, updated);
        WriteConfig(verified.Manifest);
        return updated;
    }

    /// <summary>Names a passed, verifying version the challenger, or clears the challenger when <paramref name="version"/> is null.</summary>
    public ModelAliases SetChallenger(string model, int? version, string reason)
    {
        RegistryLayout.RequireModelName(model);
        ArgumentException.ThrowIfNullOrWhiteSpace(reason);
        using var held = LockExisting(model);
        var aliases = ReadAliasesForUpdate(model);
        if (version is null)
        {
            var cleared = (aliases ?? new ModelAliases()).With(
                new AliasChange(time.GetUtcNow(), AliasActions.ClearChallenger, AliasNames.Challenger, aliases?.Challenger, null, reason),
                aliases?.Champion, aliases?.Previous, null);
            WriteAliases(model, cleared);
            return cleared;
        }

        if (!TryVerify(model, version.Value, out var verified, out var problem))
        {
            throw new RegistryException($"cannot make {model} v{version} the challenger: {problem}");
        }

        return SetChallengerLocked(model, aliases, verified, reason);
    }

    /// <summary>Deletes versions beyond the newest <see cref="KeepLast"/> that no alias names (rejected ones kept apart, also the newest <see cref="KeepLast"/>).</summary>
    public RetentionReport ApplyRetention(string model)
    {
        RegistryLayout.RequireModelName(model);
        using var held = LockExisting(model);
        return ApplyRetentionLocked(model, ReadAliasesForUpdate(model));
    }

    /// <summary>
    /// Start-up recovery for one model: removes what interrupted writes left (<c>.tmp-*</c>,
    /// <c>.trash-*</c>), reports numbered folders that do not verify (never loadable, left for an
    /// operator to inspect), and rewrites <c>config.pbtxt</c> if a crash came between the alias
    /// change and the configuration rewrite.
    /// </summary>
    public RecoveryReport Recover(string model)
    {
        RegistryLayout.RequireModelName(model);
        using var held = LockExisting(model);
        var removed = RemoveLeftovers(model);
        var listing = List(model);
        var unverified = listing.Versions.Where(v => !v.Verified).ToList();
        bool rewritten = false;
        if (listing.Aliases?.Champion is int champion && TryVerify(model, champion, out var verified, out _))
        {
            string config = Path.Combine(ModelDirectory(model), RegistryLayout.ConfigName);
            string expected = TritonConfig.Render(verified.Manifest);
            if (!File.Exists(config) || File.ReadAllText(config) != expected)
            {
                WriteConfig(verified.Manifest);
                rewritten = true;
            }
        }

        return new RecoveryReport(model, removed, unverified, rewritten);
    }

    /// <summary><see cref="Recover"/> for every model in the registry.</summary>
    public IReadOnlyList<RecoveryReport> RecoverAll() => Models().Select(Recover).ToList();

    // ───────────────────────────── internals ─────────────────────────────

    private string ModelDirectory(string model) => Path.Combine(Root, model);

    private string ServableDirectory(string model, int version) => Path.Combine(Root, model, RegistryLayout.VersionName(version));

    private string RejectedDirectory(string model, int version) => Path.Combine(Root, model, RegistryLayout.RejectedFolder, RegistryLayout.VersionName(version));

    private static void ValidateRequest(PublishRequest request)
    {
        RegistryLayout.RequireModelName(request.Model);
        if (request.Files is null || request.Files.Count == 0)
        {
            throw new ArgumentException("a version needs at least one file", nameof(request));
        }

        foreach (var (name, source) in request.Files)
        {
            if (!RegistryLayout.IsPlainFileName(name))
            {
                throw new ArgumentException($"'{name}' is not a plain file name for a version folder (no directories, not hidden, not {RegistryLayout.ManifestName})", nameof(request));
            }

            if (!File.Exists(source))
            {
                throw new ArgumentException($"source file '{source}' for '{name}' does not exist", nameof(request));
            }
        }

        if (request.Status == VersionStatus.Passed && !request.Files.ContainsKey(RegistryLayout.ModelFileName))
        {
            throw new ArgumentException($"a passed version must contain {RegistryLayout.ModelFileName}", nameof(request));
        }

        if (request.Status == VersionStatus.Rejected && request.Alias != PublishAlias.None)
        {
            throw new ArgumentException("a rejected candidate cannot be given an alias", nameof(request));
        }

        if (request.MaxBatchSize < 0)
        {
            throw new ArgumentException($"MaxBatchSize must not be negative ({request.MaxBatchSize})", nameof(request));
        }
    }

    private string EnsureModelDirectory(string model)
    {
        string directory = ModelDirectory(model);
        if (!Directory.Exists(directory))
        {
            Directory.CreateDirectory(directory);
            DurableFiles.SyncDirectory(Root);
        }

        return directory;
    }

    private string EnsureRejectedDirectory(string model)
    {
        string directory = Path.Combine(ModelDirectory(model), RegistryLayout.RejectedFolder);
        if (!Directory.Exists(directory))
        {
            Directory.CreateDirectory(directory);
            DurableFiles.SyncDirectory(ModelDirectory(model));
        }

        return directory;
    }

    private ModelLock LockExisting(string model)
    {
        string directory = ModelDirectory(model);
        return Directory.Exists(directory)
            ? ModelLock.Acquire(directory, lockTimeout)
            : throw new RegistryException($"no model '{model}' in the registry at {Root}");
    }

    /// <summary>Copies a file, hashing the bytes as they are written, and fsyncs the copy.</summary>
    private static ManifestFile CopySynced(string source, string target, string name)
    {
        using var input = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read, 1);
        using var output = new FileStream(target, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            int read;
            while ((read = input.Read(buffer, 0, buffer.Length)) > 0)
            {
                hash.AppendData(buffer, 0, read);
                output.Write(buffer, 0, read);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        output.Flush(flushToDisk: true);
        return new ManifestFile(name, output.Length, Convert.ToHexStringLower(hash.GetHashAndReset()));
    }

    private static string HashFile(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    /// <summary>The next unused number: above the counter and above every folder, rejected one and trash entry.</summary>
    private int NextVersion(string model)
    {
        string directory = ModelDirectory(model);
        int max = ReadCounter(model);
        foreach (var (version, _) in NumberedFolders(directory))
        {
            max = Math.Max(max, version);
        }

        foreach (var (version, _) in NumberedFolders(Path.Combine(directory, RegistryLayout.RejectedFolder)))
        {
            max = Math.Max(max, version);
        }

        // A version being deleted by retention keeps its number in its trash name until it is gone.
        foreach (var trash in Directory.EnumerateFileSystemEntries(directory, RegistryLayout.TrashPrefix + "*"))
        {
            string rest = Path.GetFileName(trash)[RegistryLayout.TrashPrefix.Length..];
            int dash = rest.IndexOf('-', StringComparison.Ordinal);
            if (dash > 0 && RegistryLayout.TryParseVersion(rest[..dash], out int version))
            {
                max = Math.Max(max, version);
            }
        }

        return max == int.MaxValue ? throw new RegistryException($"{model}: version numbers exhausted") : max + 1;
    }

    private int ReadCounter(string model)
    {
        string path = Path.Combine(ModelDirectory(model), RegistryLayout.VersionsName);
        if (!File.Exists(path))
        {
            return 0;
        }

        try
        {
            var counter = JsonSerializer.Deserialize(File.ReadAllBytes(path), RegistryJsonContext.Default.VersionCounter);
            return counter?.LastVersion ?? throw new JsonException("empty document");
        }
        catch (JsonException ex)
        {
            // Fail closed: guessing could hand out a number that retention already deleted.
            throw new RegistryException($"{model}: {RegistryLayout.VersionsName} is unreadable ({ex.Message}); repair it (set lastVersion to at least the highest number ever used) before publishing", ex);
        }
    }

    private void WriteCounter(string model, int version)
    {
        var counter = new VersionCounter(1, Math.Max(version, ReadCounter(model)));
        DurableFiles.ReplaceFile(Path.Combine(ModelDirectory(model), RegistryLayout.VersionsName),
            s => JsonSerializer.Serialize(s, counter, RegistryJsonContext.Default.VersionCounter));
    }

    private bool TryReadAliases(string model, out ModelAliases? aliases, [NotNullWhen(false)] out string? problem)
    {
        aliases = null;
        problem = null;
        string path = Path.Combine(ModelDirectory(model), RegistryLayout.AliasesName);
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (FileNotFoundException)
        {
            return true;
        }
        catch (DirectoryNotFoundException)
        {
            return true;
        }

        try
        {
            aliases = JsonSerializer.Deserialize(bytes, RegistryJsonContext.Default.ModelAliases);
            if (aliases is null)
            {
                problem = $"{RegistryLayout.AliasesName} holds null";
                return false;
            }

            return true;
        }
        catch (JsonException ex)
        {
            problem = $"{RegistryLayout.AliasesName} is unreadable: {ex.Message}";
            return false;
        }
    }

    private ModelAliases? ReadAliasesForUpdate(string model) =>
        TryReadAliases(model, out var aliases, out var problem)
            ? aliases
            : throw new RegistryException($"{model}: {problem}; repair it before changing aliases");

    private void WriteAliases(string model, ModelAliases aliases) =>
        DurableFiles.ReplaceFile(Path.Combine(ModelDirectory(model), RegistryLayout.AliasesName),
            s => JsonSerializer.Serialize(s, aliases, RegistryJsonContext.Default.ModelAliases));

    private void WriteConfig(VersionManifest champion)
    {
        string text = TritonConfig.Render(champion);
        DurableFiles.ReplaceFile(Path.Combine(ModelDirectory(champion.Model), RegistryLayout.ConfigName),
            s => s.Write(System.Text.Encoding.UTF8.GetBytes(text)));
    }

    private ModelAliases PromoteLocked(ModelAliases? aliases, VerifiedVersion target, string reason)
    {
        var current = aliases ?? new ModelAliases();
        var change = new AliasChange(time.GetUtcNow(), AliasActions.Promote, AliasNames.Champion, current.Champion, target.Version, reason);
        var updated = current.With(change,
            champion: target.Version,
            previous: current.Champion ?? current.Previous,
            challenger: current.Challenger == target.Version ? null : current.Challenger);
        // aliases.json first, then config.pbtxt: our loader follows the aliases, and Recover rewrites
        // the configuration if a crash falls between the two.
        WriteAliases(target.Model, updated);
        WriteConfig(target.Manifest);
        return updated;
    }

    private ModelAliases SetChallengerLocked(string model, ModelAliases? aliases, VerifiedVersion target, string reason)
    {
        var current = aliases ?? new ModelAliases();
        if (current.Champion == target.Version)
        {
            throw new RegistryException($"{model} v{target.Version} is the champion; it cannot also be the challenger");
        }

        var change = new AliasChange(time.GetUtcNow(), AliasActions.SetChallenger, AliasNames.Challenger, current.Challenger, target.Version, reason);
        var updated = current.With(change, current.Champion, current.Previous, target.Version);
        WriteAliases(model, updated);
        return updated;
    }

    private RetentionReport ApplyRetentionLocked(string model, ModelAliases? aliases)
    {
        string directory = ModelDirectory(model);
        var pinned = new HashSet<int>();
        foreach (var v in new[] { aliases?.Champion, aliases?.Previous, aliases?.Challenger })
        {
            if (v is int version)
            {
                pinned.Add(version);
            }
        }

        var kept = new List<int>();
        var deletedServable = new List<int>();
        var deletedRejected = new List<int>();
        var servable = NumberedFolders(directory).OrderByDescending(f => f.Version).ToList();
        for (int i = 0; i < servable.Count; i++)
        {
            if (i < KeepLast || pinned.Contains(servable[i].Version))
            {
                kept.Add(servable[i].Version);
            }
            else
            {
                MoveToTrashAndDelete(directory, servable[i].Directory, servable[i].Version);
                deletedServable.Add(servable[i].Version);
            }
        }

        string rejectedDirectory = Path.Combine(directory, RegistryLayout.RejectedFolder);
        var rejected = NumberedFolders(rejectedDirectory).OrderByDescending(f => f.Version).ToList();
        for (int i = 0; i < rejected.Count; i++)
        {
            if (i < KeepLast)
            {
                kept.Add(rejected[i].Version);
            }
            else
            {
                MoveToTrashAndDelete(directory, rejected[i].Directory, rejected[i].Version);
                deletedRejected.Add(rejected[i].Version);
            }
        }

        kept.Sort();
        return new RetentionReport(kept, deletedServable, deletedRejected);
    }

    /// <summary>
    /// Renames the folder out of the numbered namespace first (atomic), then deletes it: a crash
    /// mid-delete leaves a <c>.trash-*</c> folder that nobody loads and recovery removes, never a
    /// half-deleted version under its number.
    /// </summary>
    private static void MoveToTrashAndDelete(string modelDirectory, string folder, int version)
    {
        string trash = Path.Combine(modelDirectory, $"{RegistryLayout.TrashPrefix}{version}-{Guid.NewGuid():N}");
        Directory.Move(folder, trash);
        string parent = Path.GetDirectoryName(folder)!;
        DurableFiles.SyncDirectory(parent);
        if (!string.Equals(parent, modelDirectory, StringComparison.Ordinal))
        {
            DurableFiles.SyncDirectory(modelDirectory); // a rejected version moved from rejected/ up into the model folder
        }

        DurableFiles.TryDeleteDirectory(trash);
    }

    /// <summary>Removes <c>.tmp-*</c> and <c>.trash-*</c> entries; only called under the lock, when no writer can own them.</summary>
    private List<string> RemoveLeftovers(string model)
    {
        string directory = ModelDirectory(model);
        var removed = new List<string>();
        foreach (var entry in Directory.EnumerateFileSystemEntries(directory))
        {
            string name = Path.GetFileName(entry);
            if (!name.StartsWith(RegistryLayout.TempPrefix, StringComparison.Ordinal) && !name.StartsWith(RegistryLayout.TrashPrefix, StringComparison.Ordinal))
            {
                continue;
            }

            if (Directory.Exists(entry))
            {
                DurableFiles.TryDeleteDirectory(entry);
            }
            else
            {
                DurableFiles.TryDeleteFile(entry);
            }

            removed.Add(name);
        }

        return removed;
    }

    private static IEnumerable<(int Version, string Directory)> NumberedFolders(string directory)
    {
        if (!Directory.Exists(directory))
        {
            yield break;
        }

        foreach (var entry in Directory.EnumerateDirectories(directory))
        {
            if (RegistryLayout.TryParseVersion(Path.GetFileName(entry), out int version))
            {
                yield return (version, entry);
            }
        }
    }

    private VersionInfo Describe(string model, int version, VersionLocation location, string directory, ModelAliases? aliases)
    {
        var check = VerifyFolder(directory, model, version, location);
        return new VersionInfo(model, version, location, directory, check.Problem is null, check.Problem, check.Manifest,
            location == VersionLocation.Servable && aliases is not null ? aliases.AliasesOf(version) : []);
    }

    private readonly record struct FolderCheck(VerifiedVersion? Verified, VersionManifest? Manifest, string? Problem);

    /// <summary>
    /// Every check a version folder must pass. Rejected candidates get the integrity checks but not
    /// the ONNX ones: they are never loaded, and a broken export is a reason to have rejected them.
    /// </summary>
    private static FolderCheck VerifyFolder(string directory, string model, int version, VersionLocation location)
    {
        try
        {
            return VerifyFolderCore(directory, model, version, location);
        }
        catch (IOException ex)
        {
            return new FolderCheck(null, null, $"cannot read the version folder: {ex.Message}");
        }
        catch (UnauthorizedAccessException ex)
        {
            return new FolderCheck(null, null, $"cannot read the version folder: {ex.Message}");
        }
    }

    private static FolderCheck VerifyFolderCore(string directory, string model, int version, VersionLocation location)
    {
        static FolderCheck Fail(string problem, VersionManifest? manifest = null) => new(null, manifest, problem);

        var folder = new DirectoryInfo(directory);
        if (!folder.Exists)
        {
            return Fail("the version folder does not exist");
        }

        if (folder.LinkTarget is not null)
        {
            return Fail($"the version folder is a symbolic link (to {folder.LinkTarget}); only real folders are loaded");
        }

        var manifestFile = new FileInfo(Path.Combine(directory, RegistryLayout.ManifestName));
        if (!manifestFile.Exists)
        {
            return Fail($"no {RegistryLayout.ManifestName} (an unfinished write or a folder made by hand)");
        }

        if (manifestFile.LinkTarget is not null)
        {
            return Fail($"{RegistryLayout.ManifestName} is a symbolic link");
        }

        if (manifestFile.Length > ManifestCodec.MaxBytes)
        {
            return Fail($"{RegistryLayout.ManifestName} has {manifestFile.Length} bytes, more than any manifest the registry writes");
        }

        var manifest = ManifestCodec.Decode(File.ReadAllBytes(manifestFile.FullName), out var manifestSha, out var problem);
        if (manifest is null)
        {
            return Fail(problem!);
        }

        if (manifest.Model != model)
        {
            return Fail($"the manifest names model '{manifest.Model}', but the folder belongs to '{model}'", manifest);
        }

        if (manifest.Version != version)
        {
            return Fail($"the manifest names version {manifest.Version}, but the folder is {version}", manifest);
        }

        if (location == VersionLocation.Servable && manifest.Status != VersionStatus.Passed)
        {
            return Fail("the manifest says the gate rejected this version; rejected candidates are never servable", manifest);
        }

        if (location == VersionLocation.Rejected && manifest.Status != VersionStatus.Rejected)
        {
            return Fail($"a passed version under {RegistryLayout.RejectedFolder}/ (moved by hand)", manifest);
        }

        var listed = new Dictionary<string, ManifestFile>(StringComparer.Ordinal);
        foreach (var file in manifest.Files)
        {
            if (!RegistryLayout.IsPlainFileName(file.Name))
            {
                return Fail($"the manifest lists '{file.Name}', which is not a plain file name inside the folder", manifest);
            }

            if (!listed.TryAdd(file.Name, file))
            {
                return Fail($"the manifest lists '{file.Name}' twice", manifest);
            }
        }

        if (location == VersionLocation.Servable && !listed.ContainsKey(RegistryLayout.ModelFileName))
        {
            return Fail($"the manifest does not list {RegistryLayout.ModelFileName}", manifest);
        }

        foreach (var entry in folder.EnumerateFileSystemInfos())
        {
            if (entry.Name == RegistryLayout.ManifestName)
            {
                continue;
            }

            if (entry.LinkTarget is not null)
            {
                return Fail($"'{entry.Name}' is a symbolic link (to {entry.LinkTarget}); the folder was edited by hand", manifest);
            }

            if (entry is DirectoryInfo)
            {
                return Fail($"unexpected folder '{entry.Name}' inside the version folder; the folder was edited by hand", manifest);
            }

            if (!listed.ContainsKey(entry.Name))
            {
                return Fail($"unlisted file '{entry.Name}' (not in the manifest); the folder was edited by hand", manifest);
            }
        }

        foreach (var file in manifest.Files)
        {
            var info = new FileInfo(Path.Combine(directory, file.Name));
            if (!info.Exists)
            {
                return Fail($"{file.Name} is missing", manifest);
            }

            if (info.Length != file.Bytes)
            {
                return Fail($"{file.Name} has {info.Length} bytes, the manifest says {file.Bytes}", manifest);
            }

            string sha = HashFile(info.FullName);
            if (!string.Equals(sha, file.Sha256, StringComparison.Ordinal))
            {
                return Fail($"{file.Name} does not match its sha256 (file {sha}, manifest {file.Sha256})", manifest);
            }
        }

        if (location == VersionLocation.Servable && InspectOnnxFiles(directory, manifest.Files, null, out problem) is null)
        {
            return Fail(problem!, manifest);
        }

        return new FolderCheck(new VerifiedVersion(model, version, Path.GetFullPath(directory), manifest, manifestSha!), manifest, null);
    }

    /// <summary>
    /// Parses every listed <c>.onnx</c> file and checks its external-data references: each must be a
    /// plain name of a listed file in the same folder, and offset + length must lie within it.
    /// Returns the info of <c>model.onnx</c>, or null with the problem.
    /// </summary>
    private static OnnxModelInfo? InspectOnnxFiles(string directory, IReadOnlyList<ManifestFile> files, List<ExternalDataReference>? references, out string? problem)
    {
        var sizes = files.ToDictionary(f => f.Name, f => f.Bytes, StringComparer.Ordinal);
        OnnxModelInfo? main = null;
        foreach (var file in files.Where(f => f.Name.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase)))
        {
            OnnxModelInfo info;
            try
            {
                info = OnnxModelReader.Read(Path.Combine(directory, file.Name));
            }
            catch (InvalidDataException ex)
            {
                problem = $"{file.Name} is not a readable ONNX model: {ex.Message}";
                return null;
            }
            catch (EndOfStreamException ex)
            {
                problem = $"{file.Name} is not a readable ONNX model: {ex.Message}";
                return null;
            }

            foreach (var external in info.ExternalData)
            {
                problem = CheckExternal(file.Name, external, sizes);
                if (problem is not null)
                {
                    return null;
                }

                references?.Add(new ExternalDataReference(file.Name, external.Tensor, external.Location!));
            }

            if (file.Name == RegistryLayout.ModelFileName)
            {
                main = info;
            }
        }

        problem = main is null ? $"{RegistryLayout.ModelFileName} is not listed" : null;
        return main;
    }

    private static string? CheckExternal(string file, OnnxExternalData external, Dictionary<string, long> sizes)
    {
        string what = $"tensor '{external.Tensor}' in {file}";
        string? location = external.Location;
        if (string.IsNullOrEmpty(location))
        {
            return $"{what} is stored as external data but names no location";
        }

        // Absolute paths in either convention: ONNX Runtime would open them as given.
        if (Path.IsPathRooted(location) || location.StartsWith('\\') || (location.Length >= 2 && location[1] == ':'))
        {
            return $"{what} has its external data at an absolute path '{location}', outside the version folder";
        }

        if (location.Split('/', '\\').Any(segment => segment == ".."))
        {
            return $"{what} has its external data at '{location}', which points outside the version folder";
        }

        if (!RegistryLayout.IsPlainFileName(location))
        {
            return $"{what} has its external data at '{location}', which is not a plain file name in the version folder";
        }

        if (!sizes.TryGetValue(location, out long size))
        {
            return $"{what} has its external data in '{location}', which the manifest does not list";
        }

        long offset = external.Offset ?? 0;
        long length = external.Length ?? Math.Max(0, size - offset);
        if (offset > size || length > size - offset)
        {
            return $"{what} reads bytes {offset}..{offset + length} of '{location}', which has only {size} bytes";
        }

        return null;
    }
}
