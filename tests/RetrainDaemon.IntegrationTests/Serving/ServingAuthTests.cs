using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using RetrainDaemon.Tests.Shared;
using Xunit.Abstractions;

namespace RetrainDaemon.IntegrationTests.Serving;

/// <summary>
/// reliability.md X5 against the real daemon: inference routes need an API key (none → 401 with
/// <c>WWW-Authenticate: Bearer</c>, a wrong one → 403, the admin key is not an inference key → 403);
/// admin routes exist only on the admin port (404 on the public port whatever the key) and take only
/// the admin key there; keys appear in neither the log nor <c>/metrics</c>.
/// </summary>
[Collection(BrokerCollection.Name)]
public sealed class ServingAuthTests(BrokerFixture fixture, ITestOutputHelper output) : BrokerTest(fixture, "rd-serving-auth")
{
    private const string WrongKey = "not-a-key-of-this-server-000000";

    [Fact]
    public async Task InferenceNeedsItsKey_AdminRoutesOnlyOnTheAdminPortWithTheAdminKey()
    {
        var generators = GeneratorModels.Shared;
        var registry = ServingDaemon.OpenRegistry(Directory);
        var v1 = generators.PublishChampion(registry, ServingDaemon.Model, seed: 1);
        var v2 = ServingDaemon.PublishCandidate(registry, generators, seed: 2);
        await using var serving = ServingDaemon.Start(Fixture.Broker, Directory, new ServingDaemonOptions { ApiKeys = true, Admin = true });
        await serving.Daemon.WaitReadyAsync();
        using var anonymous = serving.NewClient(serving.BaseUri, withKey: false);
        using var adminPort = serving.NewClient(new Uri($"http://127.0.0.1:{serving.AdminPort}"), withKey: false);

        // Inference routes: no key, a wrong key, the admin key, the right key.
        Func<HttpRequestMessage>[] inference =
        [
            () => new HttpRequestMessage(HttpMethod.Get, $"/v2/models/{ServingDaemon.Model}"),
            () => new HttpRequestMessage(HttpMethod.Get, $"/v2/models/{ServingDaemon.Model}/versions/{v1.Version}"),
            () => new HttpRequestMessage(HttpMethod.Get, $"/v2/models/{ServingDaemon.Model}/ready"),
            () => ServingDaemon.Infer(batch: 1, seed: 1),
            () => ServingDaemon.Generate(count: 1),
        ];
        foreach (var make in inference)
        {
            string route = Describe(make());
            var (none, noneChallenge, noneBody) = await SendAsync(anonymous, make(), key: null);
            var (wrong, _, wrongBody) = await SendAsync(anonymous, make(), WrongKey);
            var (admin, _, _) = await SendAsync(anonymous, make(), ServingDaemon.AdminKey);
            var (right, _, _) = await SendAsync(anonymous, make(), ServingDaemon.ApiKey);
            output.WriteLine($"{route,-48} no key {none} ({noneChallenge}), wrong key {wrong}, admin key {admin}, inference key {right}");
            Assert.Equal(HttpStatusCode.Unauthorized, none);
            Assert.StartsWith("Bearer", noneChallenge, StringComparison.Ordinal);
            Assert.Equal(HttpStatusCode.Forbidden, wrong);
            Assert.Equal(HttpStatusCode.Forbidden, admin);
            Assert.Equal(HttpStatusCode.OK, right);
            Assert.False(string.IsNullOrWhiteSpace(Error(noneBody)));
            Assert.DoesNotContain(WrongKey, wrongBody, StringComparison.Ordinal);
        }

        // Operational routes stay open: probes and scrapers carry no key.
        foreach (string open in new[] { "/v2", "/v2/health/live", "/v2/health/ready", "/metrics" })
        {
            Assert.Equal(200, await serving.Daemon.GetStatusAsync(open));
        }

        // Admin routes on the public port do not exist, whatever the key.
        string promote = $"/admin/models/{ServingDaemon.Model}/promote";
        string rollback = $"/admin/models/{ServingDaemon.Model}/rollback";
        string promoteBody = $"{{\"version\":{v2.Version},\"reason\":\"auth test\"}}";
        foreach (string? key in new[] { null, ServingDaemon.ApiKey, ServingDaemon.AdminKey })
        {
            var (status, _, _) = await SendAsync(anonymous, Post(promote, promoteBody), key);
            var (rolled, _, _) = await SendAsync(anonymous, Post(rollback, "{\"reason\":\"auth test\"}"), key);
            output.WriteLine($"public port, {(key is null ? "no key" : key == ServingDaemon.AdminKey ? "admin key" : "inference key")}: promote {status}, rollback {rolled}");
            Assert.Equal(HttpStatusCode.NotFound, status);
            Assert.Equal(HttpStatusCode.NotFound, rolled);
        }

        Assert.Equal(v1.Version, (await serving.ReadyAsync()).Version); // nothing was promoted

        // On the admin port: no key 401, the inference key or a wrong one 403, the admin key promotes.
        var (adminNone, adminChallenge, _) = await SendAsync(adminPort, Post(promote, promoteBody), key: null);
        var (adminInference, _, _) = await SendAsync(adminPort, Post(promote, promoteBody), ServingDaemon.ApiKey);
        var (adminWrong, _, _) = await SendAsync(adminPort, Post(promote, promoteBody), WrongKey);
        var (promoted, _, promotedBody) = await SendAsync(adminPort, Post(promote, promoteBody), ServingDaemon.AdminKey);
        output.WriteLine($"admin port: no key {adminNone}, inference key {adminInference}, wrong key {adminWrong}, admin key {promoted}: {promotedBody}");
        Assert.Equal(HttpStatusCode.Unauthorized, adminNone);
        Assert.StartsWith("Bearer", adminChallenge, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Forbidden, adminInference);
        Assert.Equal(HttpStatusCode.Forbidden, adminWrong);
        Assert.Equal(HttpStatusCode.OK, promoted);
        using (var json = JsonDocument.Parse(promotedBody))
        {
            Assert.Equal(v2.Version, json.RootElement.GetProperty("champion").GetInt32());
        }

        await serving.WaitServingAsync(v2.Version, TimeSpan.FromSeconds(20));
        var (rolledBack, _, _) = await SendAsync(adminPort, Post(rollback, "{\"reason\":\"auth test: back to v1\"}"), ServingDaemon.AdminKey);
        Assert.Equal(HttpStatusCode.OK, rolledBack);
        await serving.WaitServingAsync(v1.Version, TimeSpan.FromSeconds(20));

        // Keys never leave the process: not in its log, not in its metrics.
        string metrics = await serving.Daemon.GetAsync("/metrics");
        foreach (string secret in new[] { ServingDaemon.ApiKey, ServingDaemon.AdminKey, WrongKey })
        {
            Assert.DoesNotContain(secret, serving.Daemon.Output, StringComparison.Ordinal);
            Assert.DoesNotContain(secret, metrics, StringComparison.Ordinal);
        }

        Assert.True(await serving.Daemon.MetricAsync("retrain_serving_requests_total", "reason=\"unauthorized\"") >= inference.Length + 1);
        Assert.True(await serving.Daemon.MetricAsync("retrain_serving_requests_total", "reason=\"forbidden\"") >= 2 * inference.Length + 2);
    }

    private static HttpRequestMessage Post(string path, string body) => new(HttpMethod.Post, path) { Content = ServingDaemon.Json(body) };

    private static string Describe(HttpRequestMessage request)
    {
        using (request)
        {
            return $"{request.Method} {request.RequestUri}";
        }
    }

    private static async Task<(HttpStatusCode Status, string Challenge, string Body)> SendAsync(HttpClient client, HttpRequestMessage request, string? key)
    {
        using (request)
        {
            if (key is not null)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
            }

            using var response = await client.SendAsync(request);
            string challenge = string.Join(", ", response.Headers.WwwAuthenticate.Select(h => h.ToString()));
            return (response.StatusCode, challenge, await response.Content.ReadAsStringAsync());
        }
    }

    private static string Error(string body)
    {
        using var json = JsonDocument.Parse(body);
        return json.RootElement.GetProperty("error").GetString()!;
    }
}
