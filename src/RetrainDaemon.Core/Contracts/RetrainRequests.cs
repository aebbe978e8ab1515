namespace RetrainDaemon.Core.Contracts;

/// <summary>
/// Asks the loop for one fine-tune of a model now (the admin route <c>POST /admin/models/{m}/retrain</c>
/// calls it; the daemon implements it with its scheduler). In Core so Serving can map the route without
/// referencing the scheduler.
/// </summary>
public interface IRetrainRequester
{
    /// <summary>Queues the fine-tune; throws <see cref="ArgumentException"/> for a model the loop does not train.</summary>
    Task RequestAsync(string model, string reason, CancellationToken cancellationToken);
}
