using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using RetrainDaemon.Core.Options;

namespace RetrainDaemon.Serving.Http;

/// <summary>The outcome of checking a request's bearer key.</summary>
internal enum KeyCheck
{
    /// <summary>The key is one of the configured ones (or none is configured for an open route).</summary>
    Accepted,

    /// <summary>No <c>Authorization: Bearer …</c> header: 401 with <c>WWW-Authenticate: Bearer</c>.</summary>
    Missing,

    /// <summary>A key that is not one of ours: 403.</summary>
    Wrong,
}

/// <summary>
/// The bearer keys of the serving API: inference keys (<c>Serving:ApiKeys</c> plus the lines of
/// <c>Serving:ApiKeysFile</c>; none configured = inference is open) and the admin key
/// (<c>Serving:AdminKey</c> or the first line of <c>Serving:AdminKeyFile</c>; none = admin routes
/// are not mapped). Only SHA-256 hashes of the keys are kept, and a presented key is compared with
/// every one of them in constant time, so neither the comparison's timing nor a memory dump of this
/// object gives a key away. Keys are read once at start: rotating one means a restart.
/// Immutable and thread-safe.
/// </summary>
internal sealed class ApiKeys
{
    /// <summary>Keys shorter than this are refused at start (the options validator says the same for keys given inline).</summary>
    public const int MinimumLength = 16;

    private readonly byte[][] inference;
    private readonly byte[]? admin;

    private ApiKeys(byte[][] inference, byte[]? admin)
    {
        this.inference = inference;
        this.admin = admin;
    }

    /// <summary>True when no inference key is configured: inference routes need no key.</summary>
    public bool InferenceOpen => inference.Length == 0;

    /// <summary>True when an admin key is configured: the admin routes exist.</summary>
    public bool AdminEnabled => admin is not null;

    public int InferenceKeyCount => inference.Length;

    /// <summary>Reads the keys of <paramref name="options"/>, files included.</summary>
    /// <exception cref="OptionsValidationException">
    /// A file that cannot be read, a key line that is too short, or an admin key equal to an
    /// inference key; the failure names the setting and the line, never the key.
    /// </exception>
    public static ApiKeys Load(ServingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        var keys = new List<string>(options.ApiKeys.Where(k => k.Length > 0));
        if (options.ApiKeysFile.Length > 0)
        {
            var lines = ReadLines(options.ApiKeysFile, nameof(options.ApiKeysFile), failures);
            for (int i = 0; i < lines.Count; i++)
            {
                if (lines[i].Length < MinimumLength)
                {
                    failures.Add($"{ServingOptions.Section}:{nameof(options.ApiKeysFile)} ('{options.ApiKeysFile}') line {i + 1}: an API key must have at least {MinimumLength} characters");
                }
                else
                {
                    keys.Add(lines[i]);
                }
            }
        }

        string? adminKey = options.AdminKey.Length > 0 ? options.AdminKey : null;
        if (adminKey is null && options.AdminKeyFile.Length > 0)
        {
            adminKey = ReadLines(options.AdminKeyFile, nameof(options.AdminKeyFile), failures).FirstOrDefault();
            if (adminKey is null)
            {
                failures.Add($"{ServingOptions.Section}:{nameof(options.AdminKeyFile)} ('{options.AdminKeyFile}'): the file holds no key");
            }
            else if (adminKey.Length < MinimumLength)
            {
                failures.Add($"{ServingOptions.Section}:{nameof(options.AdminKeyFile)} ('{options.AdminKeyFile}'): the admin key must have at least {MinimumLength} characters");
            }
        }

        if (adminKey is not null && keys.Contains(adminKey, StringComparer.Ordinal))
        {
            failures.Add($"{ServingOptions.Section}:{nameof(options.AdminKey)}: the admin key must differ from every inference API key");
        }

        if (failures.Count > 0)
        {
            throw new OptionsValidationException(ServingOptions.Section, typeof(ServingOptions), failures);
        }

        return new ApiKeys(keys.Distinct(StringComparer.Ordinal).Select(Hash).ToArray(), adminKey is null ? null : Hash(adminKey));
    }

    /// <summary>Checks the <c>Authorization</c> header of an inference request.</summary>
    public KeyCheck CheckInference(string? authorization) => InferenceOpen ? KeyCheck.Accepted : Check(authorization, inference);

    /// <summary>Checks the <c>Authorization</c> header of an admin request (only the admin key is accepted).</summary>
    public KeyCheck CheckAdmin(string? authorization) => admin is null ? KeyCheck.Wrong : Check(authorization, [admin]);

    /// <summary>The token of an <c>Authorization: Bearer &lt;token&gt;</c> header, or null.</summary>
    internal static string? BearerToken(string? authorization)
    {
        const string Scheme = "Bearer ";
        if (authorization is null || !authorization.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        string token = authorization[Scheme.Length..].Trim();
        return token.Length > 0 ? token : null;
    }

    private static KeyCheck Check(string? authorization, byte[][] hashes)
    {
        string? token = BearerToken(authorization);
        if (token is null)
        {
            return KeyCheck.Missing;
        }

        // Compare with every key, without stopping at a match: the time taken says nothing about which key, or how much of it, matched.
        byte[] presented = Hash(token);
        bool match = false;
        foreach (byte[] hash in hashes)
        {
            match |= CryptographicOperations.FixedTimeEquals(presented, hash);
        }

        return match ? KeyCheck.Accepted : KeyCheck.Wrong;
    }

    private static byte[] Hash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));

    /// <summary>Non-empty, trimmed lines that are not <c>#</c> comments.</summary>
    private static List<string> ReadLines(string path, string setting, List<string> failures)
    {
        try
        {
            return File.ReadAllLines(path).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            failures.Add($"{ServingOptions.Section}:{setting} = '{path}': cannot be read ({ex.GetType().Name})");
            return [];
        }
    }
}

/// <summary>
/// Endpoint filter of the inference or admin routes: no bearer key → 401 with
/// <c>WWW-Authenticate: Bearer</c>, a key that is not accepted → 403. Neither answer nor the log
/// ever repeats the key.
/// </summary>
internal sealed class ApiKeyFilter(ApiKeys keys, bool admin, ServingHttp http) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        var request = context.HttpContext.Request;
        string? authorization = request.Headers.Authorization;
        var check = admin ? keys.CheckAdmin(authorization) : keys.CheckInference(authorization);
        switch (check)
        {
            case KeyCheck.Accepted:
                return await next(context).ConfigureAwait(false);
            case KeyCheck.Missing:
                context.HttpContext.Response.Headers[HeaderNames.WWWAuthenticate] = "Bearer realm=\"retrain-daemon\"";
                return http.Refuse(context.HttpContext, new ServingException(401, FailureReasons.Unauthorized, "this route needs an 'Authorization: Bearer <key>' header"));
            default:
                return http.Refuse(context.HttpContext, new ServingException(403, FailureReasons.Forbidden, admin ? "the key is not the admin key" : "the key is not accepted"));
        }
    }
}

/// <summary>
/// Keeps admin routes to the admin listener(s) when <c>Serving:AdminUrls</c> is set: on any other
/// port they answer a bare 404, as if they did not exist. Decided by the connection's local port,
/// never by the Host header, which the client chooses.
/// </summary>
internal sealed class AdminPortFilter(IReadOnlySet<int> adminPorts) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        return adminPorts.Contains(context.HttpContext.Connection.LocalPort)
            ? await next(context).ConfigureAwait(false)
            : Results.NotFound();
    }
}
