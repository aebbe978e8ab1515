using System.Reflection;

namespace RetrainDaemon.Hosting;

/// <summary>
/// Builds the configuration every verb uses, lowest precedence first: the embedded defaults
/// (<c>appsettings.json</c> compiled into the binary), <c>/etc/retrain-daemon/appsettings.json</c>
/// if present, <c>--config FILE</c>, environment variables prefixed <c>RETRAIN__</c>
/// (<c>RETRAIN__Broker__Endpoints__0=host:5672</c>), and <c>--set Key=Value</c> pairs.
/// </summary>
public static class DaemonConfiguration
{
    public const string EnvironmentPrefix = "RETRAIN__";
    public const string SystemConfigFile = "/etc/retrain-daemon/appsettings.json";

    public static IConfigurationRoot Build(FileInfo? configFile, IEnumerable<string>? settings)
    {
        var builder = new ConfigurationBuilder();
        var defaults = Assembly.GetExecutingAssembly().GetManifestResourceStream("RetrainDaemon.appsettings.json")
            ?? throw new InvalidOperationException("the embedded default configuration is missing from the build");
        builder.AddJsonStream(defaults);
        builder.AddJsonFile(SystemConfigFile, optional: true, reloadOnChange: false);
        if (configFile is not null)
        {
            if (!configFile.Exists)
            {
                throw new FileNotFoundException($"configuration file '{configFile.FullName}' does not exist", configFile.FullName);
            }

            builder.AddJsonFile(configFile.FullName, optional: false, reloadOnChange: false);
        }

        builder.AddEnvironmentVariables(EnvironmentPrefix);
        builder.AddInMemoryCollection(ParseSettings(settings ?? []));
        return builder.Build();
    }

    /// <summary><c>Section:Key=Value</c> (or <c>Section__Key=Value</c>) pairs from <c>--set</c>.</summary>
    public static IEnumerable<KeyValuePair<string, string?>> ParseSettings(IEnumerable<string> settings)
    {
        foreach (var setting in settings)
        {
            int eq = setting.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new ArgumentException($"--set expects Key=Value, got '{setting}'");
            }

            yield return new(setting[..eq].Trim().Replace("__", ":", StringComparison.Ordinal), setting[(eq + 1)..]);
        }
    }
}
