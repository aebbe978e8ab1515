using RetrainDaemon.Core.Options;

namespace RetrainDaemon.UnitTests;

public class OperationsOptionsTests
{
    [Fact]
    public void Defaults_AreValid_AndExpectNoGpu()
    {
        var options = new OperationsOptions();
        Assert.True(new OperationsOptionsValidator().Validate(null, options).Succeeded);
        Assert.False(options.ExpectGpu);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    public void NonPositiveDiskInterval_IsRefused_NamingKeyAndValue(int seconds)
    {
        var result = new OperationsOptionsValidator().Validate(null, new OperationsOptions { DiskCheckInterval = TimeSpan.FromSeconds(seconds) });
        Assert.True(result.Failed);
        var failure = Assert.Single(result.Failures!);
        Assert.StartsWith("Operations:DiskCheckInterval = '", failure, StringComparison.Ordinal);
        Assert.Contains("positive", failure, StringComparison.Ordinal);
    }
}
