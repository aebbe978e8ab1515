using RetrainDaemon.Core.Options;

namespace RetrainDaemon.UnitTests;

/// <summary>The loop members of a model (family, dataset, training, triggers, rollback) as the catalog validator checks them.</summary>
public class ModelLoopOptionsTests
{
    private static ModelOptions Image(Action<ModelOptions>? change = null)
    {
        var o = new ModelOptions { Modality = "image" };
        change?.Invoke(o);
        return o;
    }

    private static ModelOptions Text(bool conditional, Action<ModelOptions>? change = null)
    {
        var o = new ModelOptions { Modality = "text", Text = new TextLimitOptions { Conditional = conditional } };
        change?.Invoke(o);
        return o;
    }

    private static List<string> Failures(params (string Name, ModelOptions Options)[] models)
    {
        var catalog = new ModelCatalogOptions();
        foreach (var (name, options) in models)
        {
            catalog.Models[name] = options;
        }

        var result = new ModelCatalogOptionsValidator().Validate(null, catalog);
        return result.Succeeded ? [] : result.Failures!.ToList();
    }

    [Fact]
    public void Defaults_AreValid_AndResolveFamilyAndDataset()
    {
        Assert.Empty(Failures(("images", Image()), ("texts", Text(false)), ("pairs", Text(true))));
        Assert.Equal(ModelFamilies.Dcgan, Image().ResolvedFamily);
        Assert.Equal(ModelFamilies.Gpt, Text(true).ResolvedFamily);
        Assert.Equal("vae", Image(o => o.Family = "VAE").ResolvedFamily);
        Assert.Equal("images", Image().ResolvedDataset("images"));
        Assert.Equal("shared", Image(o => o.Dataset = "shared").ResolvedDataset("images"));
    }

    [Theory]
    [InlineData("gan", "Models:m:Family = 'gan': unknown family (known: dcgan, vae, gpt)")]
    [InlineData("gpt", "Models:m:Family = 'gpt': a image model cannot be a gpt")]
    public void ImageFamily_UnknownOrForTheWrongModality_Fails(string family, string expected)
    {
        var failures = Failures(("m", Image(o => o.Family = family)));
        Assert.Contains(failures, f => f.StartsWith(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void TextModel_CannotBeAnImageFamily()
    {
        var failures = Failures(("m", Text(false, o => o.Family = "dcgan")));
        Assert.Contains(failures, f => f.StartsWith("Models:m:Family = 'dcgan': a text model cannot be a dcgan", StringComparison.Ordinal));
    }

    [Fact]
    public void Dataset_MustNameAConfiguredModelOfTheSameShape()
    {
        var failures = Failures(("vae", Image(o => o.Dataset = "nowhere")));
        Assert.Contains(failures, f => f.StartsWith("Models:vae:Dataset = 'nowhere': unknown dataset", StringComparison.Ordinal));

        failures = Failures(("pairs", Text(true)), ("lm", Text(false, o => o.Dataset = "pairs")), ("img", Image(o => o.Dataset = "pairs")));
        Assert.Contains(failures, f => f.StartsWith("Models:lm:Dataset = 'pairs': the dataset's modality, image shape or conditional flag differs", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Models:img:Dataset = 'pairs': the dataset's modality", StringComparison.Ordinal));
        Assert.Empty(Failures(("a", Image()), ("b", Image(o => o.Dataset = "a"))));
    }

    [Fact]
    public void ImageShapesOtherThan28x28Gray_CannotRetrain_ButMayIngest()
    {
        var rgb = Image(o => o.Image = new ImageShapeOptions { Width = 32, Height = 32, Channels = 3 });
        Assert.Contains(Failures(("rgb", rgb)), f => f.StartsWith("Models:rgb:Image = '32x32x3': the image families train on 28x28 grayscale", StringComparison.Ordinal));
        rgb.Retrain = false;
        Assert.Empty(Failures(("rgb", rgb)));
    }

    [Fact]
    public void Training_EveryBadValueIsListed()
    {
        var failures = Failures(("m", Text(false, o =>
        {
            o.Training.Steps = 0;
            o.Training.FineTuneSteps = -1;
            o.Training.BatchSize = 0;
            o.Training.LearningRate = 0;
            o.Training.Optimizer = "lamb";
            o.Training.WeightDecay = 2;
            o.Training.Width = 130;
            o.Training.Heads = 4;
            o.Training.MinHoldoutSamples = 1;
            o.Training.Tune.Trials = 3;
        })));
        foreach (var expected in new[]
        {
            "Models:m:Training:Steps = '0'", "Models:m:Training:FineTuneSteps = '-1'", "Models:m:Training:BatchSize = '0'",
            "Models:m:Training:LearningRate = '0'", "Models:m:Training:Optimizer = 'lamb'", "Models:m:Training:WeightDecay = '2'",
            "Models:m:Training:Width = '130': must be a multiple of Heads (4)", "Models:m:Training:MinHoldoutSamples = '1'",
            "Models:m:Training:Tune:Trials = '3': the tuner searches image families only",
        })
        {
            Assert.Contains(failures, f => f.StartsWith(expected, StringComparison.Ordinal));
        }
    }

    [Fact]
    public void TriggerAndRollbackProblems_AreListedUnderTheModel()
    {
        var failures = Failures(("m", Image(o =>
        {
            o.Triggers.MinNewSamples = 0;
            o.Rollback.MaxErrorRate = 1.5;
            o.Training.Tune.Trials = 2;
            o.Training.Tune.Method = "annealing";
        })));
        Assert.Contains(failures, f => f.StartsWith("Models:m:Triggers:MinNewSamples = '0'", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Models:m:Rollback:MaxErrorRate = '1.5'", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Models:m:Training:Tune:Method = 'annealing'", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(false, 1000, 400, 1000)]
    [InlineData(true, 1000, 400, 400)]
    [InlineData(true, 1000, null, 1000)]
    public void StepsFor_FineTunesUseTheirOwnBudget(bool fineTune, int steps, int? fineTuneSteps, int expected) =>
        Assert.Equal(expected, new ModelTrainingOptions { Steps = steps, FineTuneSteps = fineTuneSteps }.StepsFor(fineTune));
}
