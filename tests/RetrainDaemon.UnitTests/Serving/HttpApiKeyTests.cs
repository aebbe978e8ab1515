using Microsoft.Extensions.Options;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Serving.Http;

namespace RetrainDaemon.UnitTests.Serving;

/// <summary>Bearer keys: open when none are configured, 401 without a key, 403 with a wrong one; files; keys never echoed.</summary>
public sealed class HttpApiKeyTests : IDisposable
{
    private const string Key1 = "inference-key-0001-abcdef";
    private const string Key2 = "inference-key-0002-abcdef";
    private const string Admin = "admin-key-000000000000001";

    private readonly DirectoryInfo scratch = Directory.CreateTempSubdirectory("rd-keys-");

    public void Dispose() => scratch.Delete(recursive: true);

    private string File(string name, string text)
    {
        string path = Path.Combine(scratch.FullName, name);
        System.IO.File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void Inference_is_open_and_admin_off_when_no_key_is_configured()
    {
        var keys = ApiKeys.Load(new ServingOptions());

        Assert.True(keys.InferenceOpen);
        Assert.False(keys.AdminEnabled);
        Assert.Equal(KeyCheck.Accepted, keys.CheckInference(null));
        Assert.Equal(KeyCheck.Wrong, keys.CheckAdmin("Bearer " + Admin));
    }

    [Theory]
    [InlineData(null, "Missing")]
    [InlineData("", "Missing")]
    [InlineData("Bearer", "Missing")]
    [InlineData("Bearer    ", "Missing")]
    [InlineData("Basic " + Key1, "Missing")]
    [InlineData("Bearer " + Key1, "Accepted")]
    [InlineData("bearer " + Key1, "Accepted")]
    [InlineData("Bearer  " + Key1 + " ", "Accepted")]
    [InlineData("Bearer " + Key2, "Accepted")]
    [InlineData("Bearer " + Key1 + "x", "Wrong")]
    [InlineData("Bearer " + Admin, "Wrong")]
    public void Inference_keys_are_checked(string? header, string expected)
    {
        var keys = ApiKeys.Load(new ServingOptions { ApiKeys = [Key1], ApiKeysFile = File("keys", $"# inference keys\n\n  {Key2}  \n"), AdminKey = Admin });

        Assert.Equal(Enum.Parse<KeyCheck>(expected), keys.CheckInference(header));
        Assert.Equal(2, keys.InferenceKeyCount);
    }

    [Fact]
    public void Only_the_admin_key_opens_admin_routes()
    {
        var keys = ApiKeys.Load(new ServingOptions { ApiKeys = [Key1], AdminKeyFile = File("admin", $"\n{Admin}\n") });

        Assert.True(keys.AdminEnabled);
        Assert.Equal(KeyCheck.Accepted, keys.CheckAdmin("Bearer " + Admin));
        Assert.Equal(KeyCheck.Wrong, keys.CheckAdmin("Bearer " + Key1));
        Assert.Equal(KeyCheck.Missing, keys.CheckAdmin(null));
        Assert.Equal(KeyCheck.Wrong, keys.CheckInference("Bearer " + Admin));
    }

    [Fact]
    public void Bad_key_files_stop_the_start_without_showing_a_key()
    {
        const string ShortKey = "tooshort";
        var failure = Assert.Throws<OptionsValidationException>(() => ApiKeys.Load(new ServingOptions
        {
            ApiKeysFile = File("keys", $"{Key1}\n{ShortKey}\n{Admin}\n"),
            AdminKeyFile = File("admin", Admin),
        }));

        string all = string.Join("\n", failure.Failures);
        Assert.Contains("Serving:ApiKeysFile", all, StringComparison.Ordinal);
        Assert.Contains("line 2", all, StringComparison.Ordinal);
        Assert.Contains("the admin key must differ from every inference API key", all, StringComparison.Ordinal);
        Assert.DoesNotContain(ShortKey, all, StringComparison.Ordinal);
        Assert.DoesNotContain(Admin, all, StringComparison.Ordinal);
        Assert.DoesNotContain(Key1, all, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_key_file_is_named()
    {
        string missing = Path.Combine(scratch.FullName, "absent");

        var failure = Assert.Throws<OptionsValidationException>(() => ApiKeys.Load(new ServingOptions { ApiKeysFile = missing }));

        Assert.Contains($"Serving:ApiKeysFile = '{missing}': cannot be read", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_empty_admin_key_file_is_refused()
    {
        var failure = Assert.Throws<OptionsValidationException>(() => ApiKeys.Load(new ServingOptions { AdminKeyFile = File("admin", "# nothing\n") }));

        Assert.Contains("the file holds no key", failure.Message, StringComparison.Ordinal);
    }
}
