namespace RetrainDaemon.Core.Contracts;

/// <summary>
/// Something that must look at the registry again for one model (the serving runtime implements it;
/// the <c>model.promoted</c> event consumer and admin routes call it). In Core so that Messaging can
/// raise it without referencing Serving.
/// </summary>
public interface IModelChangeNotifier
{
    void Notify(string model);
}

/// <summary>Registry events published on the <c>retrain.events</c> topic exchange (routing key = the type's suffix).</summary>
public static class ModelEventTypes
{
    /// <summary>CloudEvent type of a champion change (promotion or rollback); routing key <c>model.promoted</c>.</summary>
    public const string Promoted = "retrain.model.promoted.v1";

    public const string PromotedRoutingKey = "model.promoted";

    /// <summary>CloudEvent type of a candidate the gate rejected; routing key <c>model.rejected</c>.</summary>
    public const string Rejected = "retrain.model.rejected.v1";

    public const string RejectedRoutingKey = "model.rejected";

    /// <summary>CloudEvent type of an automatic rollback; routing key <c>model.rolled_back</c>.</summary>
    public const string RolledBack = "retrain.model.rolled_back.v1";

    public const string RolledBackRoutingKey = "model.rolled_back";

    /// <summary>CloudEvent type of a finished error analysis; routing key <c>analysis.completed</c>.</summary>
    public const string AnalysisCompleted = "retrain.analysis.completed.v1";

    public const string AnalysisCompletedRoutingKey = "analysis.completed";
}

/// <summary>The data of a <see cref="ModelEventTypes.Promoted"/> event; <c>subject</c> is the model.</summary>
public sealed record ModelPromotedData(string Model, int Version, int? Previous, string Reason);

/// <summary>
/// The data of a <see cref="ModelEventTypes.Rejected"/> event; <c>subject</c> is the model. The
/// candidate is kept in the registry as a rejected version with its gate report.
/// </summary>
/// <param name="Model">The model the candidate was for.</param>
/// <param name="Version">The registry version the rejected candidate was recorded as.</param>
/// <param name="Champion">The champion it was compared with (still serving), if any.</param>
/// <param name="Reason">Why it failed: the gate report's headline.</param>
public sealed record ModelRejectedData(string Model, int Version, int? Champion, string Reason);

/// <summary>The data of a <see cref="ModelEventTypes.RolledBack"/> event: the champion went from <paramref name="From"/> back to <paramref name="To"/>.</summary>
public sealed record ModelRolledBackData(string Model, int From, int To, string Reason);

/// <summary>
/// The data of a <see cref="ModelEventTypes.AnalysisCompleted"/> event: which champion was analysed,
/// the drift score, the worst slices (worst first) and where the report is.
/// </summary>
public sealed record AnalysisCompletedData(string Model, string RunId, int Version, double? Drift, IReadOnlyList<string> WorstSlices, string Report);
