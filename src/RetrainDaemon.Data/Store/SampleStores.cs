using Microsoft.Extensions.Options;
using RetrainDaemon.Core.Options;

namespace RetrainDaemon.Data.Store;

/// <summary>Opens the store <c>Store:Provider</c> selects; the daemon and every command-line verb go through here.</summary>
public static class SampleStores
{
    /// <summary>
    /// The store for <paramref name="options"/> (not yet initialized: the first call migrates). Throws
    /// <see cref="ArgumentException"/> for an unknown provider or a PostgreSQL connection string that does not parse.
    /// </summary>
    public static IDaemonStore Open(StoreOptions options, TimeProvider? clock = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.NormalizedProvider switch
        {
            StoreProviders.Sqlite => new SqliteSampleStore(options, clock),
            StoreProviders.Postgres => new PostgresSampleStore(
                options.ResolveConnectionString()
                    ?? throw new ArgumentException("Store:Provider is postgres but neither Store:ConnectionStringFile nor Store:ConnectionString gives a connection string", nameof(options)),
                clock),
            _ => throw new ArgumentException($"Store:Provider '{options.Provider}' is unknown; accepted: {string.Join(", ", StoreProviders.All)}", nameof(options)),
        };
    }
}

/// <summary>
/// What <see cref="StoreOptionsValidator"/> (in Core, which has no database driver) cannot check: that Npgsql
/// accepts the PostgreSQL connection string's keywords and values. Reports in the same "Section:Key = 'value'"
/// form, with the value masked (it may hold a password).
/// </summary>
public sealed class PostgresConnectionValidator : IValidateOptions<StoreOptions>
{
    public ValidateOptionsResult Validate(string? name, StoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.NormalizedProvider != StoreProviders.Postgres)
        {
            return ValidateOptionsResult.Success;
        }

        // A missing, unreadable or shapeless string is StoreOptionsValidator's to report (the host runs both validators).
        if (new StoreOptionsValidator().Validate(name, options).Failed || options.ResolveConnectionString() is not { } connectionString)
        {
            return ValidateOptionsResult.Skip;
        }

        string key = string.IsNullOrEmpty(options.ConnectionStringFile) ? nameof(options.ConnectionString) : nameof(options.ConnectionStringFile);
        try
        {
            PostgresSampleStore.ParseConnectionString(connectionString);
            return ValidateOptionsResult.Success;
        }
        catch (ArgumentException ex)
        {
            // ParseConnectionString's messages never quote the string; drop the parameter-name suffix the exception adds.
            string problem = ex.Message.Replace($" (Parameter '{ex.ParamName}')", "", StringComparison.Ordinal);
            return ValidateOptionsResult.Fail($"{StoreOptions.Section}:{key} = '***': {problem}");
        }
    }
}
