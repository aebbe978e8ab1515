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
