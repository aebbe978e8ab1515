using RetrainDaemon.Core.Contracts;
using RetrainDaemon.Core.Imaging;
using RetrainDaemon.Serving.Generation;
using RetrainDaemon.Serving.Http;

namespace RetrainDaemon.UnitTests.Serving;

/// <summary>What the generate route journals for each generation id it hands out.</summary>
public sealed class GenerationRecordTests
{
    private static readonly DateTimeOffset Now = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);

    private static GenerationResult Result(long[]? labels, int count) =>
        new(new GeneratorSpec("fashion-mnist", 4, "CPUExecutionProvider", 8, labels is not null, labels is null ? null : 10, GeneratorRange.Tanh),
            new GeneratorOutput(new float[count * 4], count, 1, 2, 2), 0, count, labels, TimeSpan.Zero, count);

    [Fact]
    public void Each_sample_of_a_class_conditioned_generator_is_journaled_with_its_class_as_slice()
    {
        var records = GenerateEndpoint.Records(Result([3, 7], 2), ["fashion-mnist/4/a", "fashion-mnist/4/b"], Now);

        Assert.Equal(
        [
            new GenerationRecord("fashion-mnist/4/a", "fashion-mnist", 4, Now, GenerationModalities.Image, "3", null),
            new GenerationRecord("fashion-mnist/4/b", "fashion-mnist", 4, Now, GenerationModalities.Image, "7", null),
        ], records);
    }

    [Fact]
    public void An_unconditional_generators_samples_have_no_slice()
    {
        var records = GenerateEndpoint.Records(Result(null, 3), ["x/4/1", "x/4/2", "x/4/3"], Now);

        Assert.Equal(3, records.Count);
        Assert.All(records, r => Assert.Null(r.Slice));
        Assert.Equal(["x/4/1", "x/4/2", "x/4/3"], records.Select(r => r.GenerationId).ToArray());
    }
}
