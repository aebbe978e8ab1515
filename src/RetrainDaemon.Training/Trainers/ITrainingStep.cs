using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RetrainDaemon.Training.Trainers;

/// <summary>
/// One model family's optimization step. Implementations own their modules and optimizers; the
/// <see cref="TrainingLoop"/> owns the schedule, the dispose scope around each step, evaluation,
/// early stopping and the non-finite guard.
/// </summary>
public interface ITrainingStep
{
    /// <summary>GANs train on [-1, 1] (tanh), the others on [0, 1].</summary>
    bool SymmetricPixels { get; }

    /// <summary>The modules, by the name their checkpoint part carries (e.g. generator, discriminator).</summary>
    IReadOnlyDictionary<string, nn.Module> Modules { get; }

    /// <summary>The optimizers, by the name their checkpoint part carries.</summary>
    IReadOnlyDictionary<string, OptimizerHelper> Optimizers { get; }

    /// <summary>Puts every module in training or evaluation mode (dropout, batch norm).</summary>
    void SetTraining(bool training);

    /// <summary>One update on a batch; returns the named losses of this step.</summary>
    IReadOnlyDictionary<string, double> Step(Tensor images, Tensor labels);

    /// <summary>The loss that early stopping watches, on held-out data, without updating anything.</summary>
    double HoldoutLoss(Tensor images, Tensor labels);
}
