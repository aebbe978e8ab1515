namespace RetrainDaemon.Core.Options;

/// <summary>Connection to the RabbitMQ broker (section <c>Broker</c>).</summary>
public sealed class BrokerOptions
{
    public const string Section = "Broker";

    /// <summary>One or more <c>host:port</c> endpoints; the client tries them in order and on recovery.</summary>
    public List<string> Endpoints { get; set; } = [];

    public string VirtualHost { get; set; } = "/";

    public string UserName { get; set; } = "guest";

    /// <summary>Secret. Prefer <see cref="PasswordFile"/> (systemd <c>LoadCredential=</c>) or the environment.</summary>
    public string? Password { get; set; }

    /// <summary>A file whose first line is the password; wins over <see cref="Password"/>.</summary>
    public string? PasswordFile { get; set; }

    public string ClientName { get; set; } = "retrain-daemon";

    public TimeSpan Heartbeat { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long automatic recovery waits between attempts after the connection is lost.</summary>
    public TimeSpan NetworkRecoveryInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>The first connection is not covered by automatic recovery; it is retried with this backoff.</summary>
    public TimeSpan ConnectRetryInitial { get; set; } = TimeSpan.FromMilliseconds(500);

    public TimeSpan ConnectRetryMax { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Attempts before giving up on the first connection; 0 retries until cancelled.</summary>
    public int ConnectAttempts { get; set; }

    /// <summary>The password: from <see cref="PasswordFile"/> when set, else <see cref="Password"/>, else <c>guest</c>.</summary>
    public string ResolvePassword()
    {
        if (!string.IsNullOrEmpty(PasswordFile))
        {
            var text = File.ReadAllText(PasswordFile);
            int end = text.IndexOfAny(['\r', '\n']);
            return end < 0 ? text : text[..end];
        }

        return Password ?? "guest";
    }

    /// <summary>Parsed endpoints; call after validation.</summary>
    public IReadOnlyList<(string Host, int Port)> ParsedEndpoints()
    {
        var list = new List<(string, int)>();
        foreach (var endpoint in Endpoints)
        {
            if (TryParseEndpoint(endpoint, out var host, out var port))
            {
                list.Add((host, port));
            }
        }

        return list;
    }

    public static bool TryParseEndpoint(string? text, out string host, out int port)
    {
        host = "";
        port = 5672;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        int colon = text.LastIndexOf(':');
        if (colon < 0)
        {
            host = text.Trim();
            return host.Length > 0;
        }

        host = text[..colon].Trim();
        return host.Length > 0 && int.TryParse(text[(colon + 1)..], out port) && port is > 0 and < 65536;
    }
}
