using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Options;
using RetrainDaemon.Data.Store;

namespace RetrainDaemon.IntegrationTests.Store;

/// <summary>
/// Records generations in a store file before a daemon opens it, as its serving API would have: feedback
/// is only stored for generations the store knows, so tests about feedback ingestion seed the ids they cite.
/// </summary>
public static class GenerationSeed
{
    public static async Task RecordAsync(string storePath, IEnumerable<(string GenerationId, string Model, int Version)> generations)
    {
        await using var store = new SqliteSampleStore(new StoreOptions { Path = storePath });
        var now = DateTimeOffset.UtcNow;
        await store.RecordGenerationsAsync(
            [.. generations.Select(g => new GenerationRecord(g.GenerationId, g.Model, g.Version, now, GenerationModalities.Text, null, null))],
            CancellationToken.None);
    }
}
