using RetrainDaemon.Core.Options;

namespace RetrainDaemon.UnitTests;

public class NodeRolesTests
{
    [Theory]
    [InlineData("ingest,train,serve", "ingest train serve", "")]
    [InlineData("serve", "serve", "Ingest:Enabled Loop:Enabled")]
    [InlineData(" Ingest , SERVE ", "ingest serve", "Loop:Enabled")]
    [InlineData("train", "train", "Ingest:Enabled Serving:Enabled")]
    [InlineData("ingest,ingest", "ingest", "Loop:Enabled Serving:Enabled")]
    public void Parse_ValidRoles_SwitchOffTheStagesOfMissingRoles(string text, string roles, string switchedOff)
    {
        var (parsed, failures) = NodeRoles.Parse(text);
        Assert.Empty(failures);
        Assert.Equal(roles.Split(' ').Order(), parsed.Order());
        var overrides = NodeRoles.Overrides(parsed);
        Assert.Equal(switchedOff.Split(' ', StringSplitOptions.RemoveEmptyEntries).Order(), overrides.Keys.Order());
        Assert.All(overrides.Values, v => Assert.Equal("false", v));
    }

    [Theory]
    [InlineData("ingest,trian", "unknown role 'trian'")]
    [InlineData("", "names no role")]
    [InlineData(" , ", "names no role")]
    [InlineData(null, "names no role")]
    [InlineData("serving", "unknown role 'serving' (roles: ingest, train, serve)")]
    public void Parse_BadRoles_NameTheProblem(string? text, string expected)
    {
        var (_, failures) = NodeRoles.Parse(text);
        var failure = Assert.Single(failures);
        Assert.Contains("Node:Roles", failure, StringComparison.Ordinal);
        Assert.Contains(expected, failure, StringComparison.Ordinal);
    }
}
