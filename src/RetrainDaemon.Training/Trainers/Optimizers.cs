using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RetrainDaemon.Training.Trainers;

public static class Optimizers
{
    /// <summary>SGD with momentum, Adam or AdamW over the trainable (not frozen) parameters.</summary>
    public static OptimizerHelper Create(IEnumerable<Parameter> parameters, TrainingOptions options)
    {
        var trainable = parameters.Where(p => p.requires_grad).ToList();
        if (trainable.Count == 0)
        {
            throw new InvalidOperationException("every parameter is frozen; there is nothing to train");
        }

        return options.Optimizer switch
        {
            OptimizerKind.Sgd => optim.SGD(trainable, options.LearningRate, momentum: options.Momentum, weight_decay: options.WeightDecay),
            OptimizerKind.Adam => optim.Adam(trainable, options.LearningRate, options.Beta1, options.Beta2, weight_decay: options.WeightDecay),
            _ => optim.AdamW(trainable, options.LearningRate, options.Beta1, options.Beta2, weight_decay: options.WeightDecay),
        };
    }

    public static void SetLearningRate(optim.Optimizer optimizer, double learningRate)
    {
        foreach (var group in optimizer.ParamGroups)
        {
            group.LearningRate = learningRate;
        }
    }
}
