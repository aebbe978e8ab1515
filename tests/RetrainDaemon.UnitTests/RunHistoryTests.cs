using RetrainDaemon.Data.Store;

namespace RetrainDaemon.UnitTests;

public class RunHistoryTests
{
    private static RunRecord Run(string status) =>
        new("r", "m", RunKinds.FineTune, status, "t", DateTimeOffset.UnixEpoch, null, null, null, null, null, null, null, 1, []);

    [Theory]
    [InlineData("", 0)]
    [InlineData("promoted", 0)]
    [InlineData("rejected", 1)]
    [InlineData("rejected rejected rejected", 3)]
    [InlineData("rejected rejected promoted rejected", 2)]
    [InlineData("rejected skipped failed rejected promoted", 2)]
    [InlineData("failed skipped", 0)]
    [InlineData("running rejected", 1)]
    public void ConsecutiveRejections_CountsGateRejectionsSinceTheNewestPromotion(string newestFirst, int expected) =>
        Assert.Equal(expected, RunHistory.ConsecutiveRejections(newestFirst.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(Run)));
}
