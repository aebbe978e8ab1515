using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;

namespace RetrainDaemon.Core.Options;

/// <summary>
/// Collects every problem of an options object as "Section:Key = 'value': what is wrong", so that
/// start-up reports all of them at once (Quartz's options validators work the same way).
/// </summary>
internal sealed class Failures(string section)
{
    private readonly List<string> items = [];

    public void Add(string key, object? value, string problem) =>
        items.Add(string.Create(CultureInfo.InvariantCulture, $"{section}:{key} = '{value}': {problem}"));

    /// <summary>A failure already formatted by another validator ("Section:Key = 'value': problem").</summary>
    public void AddRaw(string failure) => items.Add(failure.StartsWith(section + ":", StringComparison.Ordinal) ? failure : $"{section}:{failure}");

    public void Secret(string key, string problem) => items.Add($"{section}:{key} = '***': {problem}");

    public void Positive(string key, TimeSpan value)
    {
        if (value <= TimeSpan.Zero)
        {
            Add(key, value, "must be a positive duration");
        }
    }

    public void Range(string key, long value, long min, long max)
    {
        if (value < min || value > max)
        {
            Add(key, value, $"must be between {min} and {max}");
        }
    }

    public ValidateOptionsResult Result() => items.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(items);
}

public sealed class BrokerOptionsValidator : IValidateOptions<BrokerOptions>
{
    public ValidateOptionsResult Validate(string? name, BrokerOptions options)
    {
        var f = new Failures(BrokerOptions.Section);
        if (options.Endpoints.Count == 0)
        {
            f.Add(nameof(options.Endpoints), "", "at least one host:port endpoint is required");
        }

        for (int i = 0; i < options.Endpoints.Count; i++)
        {
            if (!BrokerOptions.TryParseEndpoint(options.Endpoints[i], out _, out _))
            {
                f.Add($"{nameof(options.Endpoints)}:{i}", options.Endpoints[i], "expected host:port with a port in 1..65535");
            }
        }

        if (string.IsNullOrWhiteSpace(options.VirtualHost))
        {
            f.Add(nameof(options.VirtualHost), options.VirtualHost, "must not be empty");
        }

        if (string.IsNullOrWhiteSpace(options.UserName))
        {
            f.Add(nameof(options.UserName), options.UserName, "must not be empty");
        }

        if (!string.IsNullOrEmpty(options.PasswordFile) && !File.Exists(options.PasswordFile))
        {
            f.Add(nameof(options.PasswordFile), options.PasswordFile, "file does not exist");
        }

        f.Positive(nameof(options.Heartbeat), options.Heartbeat);
        f.Positive(nameof(options.NetworkRecoveryInterval), options.NetworkRecoveryInterval);
        f.Positive(nameof(options.ConnectRetryInitial), options.ConnectRetryInitial);
        f.Positive(nameof(options.ConnectRetryMax), options.ConnectRetryMax);
        if (options.ConnectRetryMax < options.ConnectRetryInitial)
        {
            f.Add(nameof(options.ConnectRetryMax), options.ConnectRetryMax, $"must not be below ConnectRetryInitial ({options.ConnectRetryInitial})");
        }

        f.Range(nameof(options.ConnectAttempts), options.ConnectAttempts, 0, int.MaxValue);
        return f.Result();
    }
}

public sealed class IngestOptionsValidator : IValidateOptions<IngestOptions>
{
    /// <summary>RabbitMQ's default <c>max_message_size</c>; a bigger limit of ours could never apply.</summary>
    public const int BrokerMaxMessageBytes = 16 * 1024 * 1024;

    public ValidateOptionsResult Validate(string? name, IngestOptions options)
    {
        var f = new Failures(IngestOptions.Section);
        f.Range(nameof(options.Prefetch), options.Prefetch, 1, 2000);
        f.Range(nameof(options.DeliveryLimit), options.DeliveryLimit, 1, 1000);
        f.Range(nameof(options.QueueMaxLength), options.QueueMaxLength, 1, long.MaxValue);
        f.Range(nameof(options.MaxMessageBytes), options.MaxMessageBytes, 256, BrokerMaxMessageBytes);
        f.Range(nameof(options.BatchSize), options.BatchSize, 1, 10_000);
        f.Range(nameof(options.DecodeParallelism), options.DecodeParallelism, 1, 64);
        if (options.BatchDelay < TimeSpan.Zero || options.BatchDelay > TimeSpan.FromSeconds(1))
        {
            f.Add(nameof(options.BatchDelay), options.BatchDelay, "must be between 0 and 1 s");
        }

        f.Positive(nameof(options.StoreRetryInitial), options.StoreRetryInitial);
        f.Positive(nameof(options.StoreRetryMax), options.StoreRetryMax);
        if (options.StoreRetryMax < options.StoreRetryInitial)
        {
            f.Add(nameof(options.StoreRetryMax), options.StoreRetryMax, $"must not be below StoreRetryInitial ({options.StoreRetryInitial})");
        }

        f.Positive(nameof(options.DrainTimeout), options.DrainTimeout);
        if (options.BatchSize > options.Prefetch)
        {
            f.Add(nameof(options.BatchSize), options.BatchSize, $"must not exceed Ingest:Prefetch ({options.Prefetch}); a batch can never fill");
        }

        return f.Result();
    }
}

public sealed class StoreOptionsValidator : IValidateOptions<StoreOptions>
{
    public ValidateOptionsResult Validate(string? name, StoreOptions options)
    {
        var f = new Failures(StoreOptions.Section);
        switch (options.NormalizedProvider)
        {
            case StoreProviders.Sqlite:
                if (string.IsNullOrWhiteSpace(options.Path))
                {
                    f.Add(nameof(options.Path), options.Path, "must name a database file");
                }

                if (options.Synchronous.ToLowerInvariant() is not ("full" or "normal" or "extra"))
                {
                    f.Add(nameof(options.Synchronous), options.Synchronous, "must be full, extra or normal");
                }

                break;
            case StoreProviders.Postgres:
                ValidatePostgres(options, f);
                break;
            default:
                f.Add(nameof(options.Provider), options.Provider, $"unknown provider; accepted: {string.Join(", ", StoreProviders.All)}");
                break;
        }

        return f.Result();
    }

    /// <summary>
    /// Core references no database driver, so this checks the shape only (key=value pairs naming a host);
    /// the PostgreSQL store checks the keywords themselves when it opens. The value is never echoed: it may
    /// hold a password.
    /// </summary>
    private static void ValidatePostgres(StoreOptions options, Failures f)
    {
        string key;
        string? connectionString;
        if (!string.IsNullOrEmpty(options.ConnectionStringFile))
        {
            key = nameof(options.ConnectionStringFile);
            if (!File.Exists(options.ConnectionStringFile))
            {
                f.Add(key, options.ConnectionStringFile, "file does not exist");
                return;
            }

            try
            {
                connectionString = options.ResolveConnectionString();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                f.Add(key, options.ConnectionStringFile, $"cannot be read: {ex.Message}");
                return;
            }

            if (connectionString is null)
            {
                f.Add(key, options.ConnectionStringFile, "its first line is empty; it must hold the PostgreSQL connection string");
                return;
            }
        }
        else
        {
            key = nameof(options.ConnectionString);
            connectionString = options.ResolveConnectionString();
            if (connectionString is null)
            {
                f.Add(key, "", "Store:Provider is postgres: set Store:ConnectionString (Host=…;Database=…;Username=…) or Store:ConnectionStringFile");
                return;
            }
        }

        var parsed = new System.Data.Common.DbConnectionStringBuilder();
        try
        {
            parsed.ConnectionString = connectionString;
        }
        catch (ArgumentException)
        {
            f.Secret(key, "not a connection string: expected Key=Value pairs separated by ';', e.g. Host=db;Database=retrain;Username=retrain (URLs are not accepted)");
            return;
        }

        if (!parsed.ContainsKey("Host") && !parsed.ContainsKey("Server"))
        {
            f.Secret(key, "names no Host: add Host=<server name or address>");
        }
    }
}

public sealed class HttpOptionsValidator : IValidateOptions<HttpOptions>
{
    public ValidateOptionsResult Validate(string? name, HttpOptions options)
    {
        var f = new Failures(HttpOptions.Section);
        var urls = options.Urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (urls.Length == 0)
        {
            f.Add(nameof(options.Urls), options.Urls, "at least one URL is required");
        }

        foreach (var url in urls)
        {
            if (!Uri.TryCreate(url.Replace("*", "0.0.0.0", StringComparison.Ordinal).Replace("+", "0.0.0.0", StringComparison.Ordinal), UriKind.Absolute, out var uri)
                || uri.Scheme is not ("http" or "https"))
            {
                f.Add(nameof(options.Urls), url, "not an http(s) URL");
            }
        }

        return f.Result();
    }
}

public sealed partial class ModelCatalogOptionsValidator : IValidateOptions<ModelCatalogOptions>
{
    /// <summary>Model names become routing-key words and file names: keep them plain.</summary>
    [GeneratedRegex("^[a-z0-9][a-z0-9_-]{0,62}$")]
    private static partial Regex ModelName();

    public ValidateOptionsResult Validate(string? name, ModelCatalogOptions options)
    {
        var f = new Failures(ModelCatalogOptions.Section);
        if (options.Models.Count == 0)
        {
            f.Add("", "", "at least one model must be configured");
        }

        foreach (var (model, o) in options.Models)
        {
            if (!ModelName().IsMatch(model))
            {
                f.Add(model, model, "model names are 1-63 chars of a-z, 0-9, '_' and '-', starting with a letter or digit");
            }

            if (o.Modality.ToLowerInvariant() is not ("image" or "text"))
            {
                f.Add($"{model}:Modality", o.Modality, "must be image or text");
            }

            if (double.IsNaN(o.HoldoutFraction) || o.HoldoutFraction < 0 || o.HoldoutFraction >= 1)
            {
                f.Add($"{model}:HoldoutFraction", o.HoldoutFraction, "must be in [0, 1)");
            }

            if (string.Equals(o.Modality, "image", StringComparison.OrdinalIgnoreCase))
            {
                f.Range($"{model}:Image:Width", o.Image.Width, 1, 4096);
                f.Range($"{model}:Image:Height", o.Image.Height, 1, 4096);
                if (o.Image.Channels is not (1 or 3))
                {
                    f.Add($"{model}:Image:Channels", o.Image.Channels, "must be 1 (grayscale) or 3 (RGB)");
                }

                if (o.Image.OnMismatch.ToLowerInvariant() is not ("reject" or "resize"))
                {
                    f.Add($"{model}:Image:OnMismatch", o.Image.OnMismatch, "must be reject or resize");
                }
            }
            else
            {
                f.Range($"{model}:Text:MaxChars", o.Text.MaxChars, 1, 1_000_000);
                f.Range($"{model}:Text:MaxSourceChars", o.Text.MaxSourceChars, 1, 1_000_000);
            }

            Gate.GateOptionsValidator.Collect(f, $"{model}:Gate", o.Gate, o.Modality);
            ModelLoopValidation.Collect(f, model, o, options);
        }

        return f.Result();
    }
}
