using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Logging;
using RetrainDaemon.Core.Registry;

namespace RetrainDaemon.Serving.Http;

/// <summary>
/// Admin routes (admin key only; mapped only when one is configured; on the admin listener only
/// when <c>Serving:AdminUrls</c> is set): promote a version to champion, roll back to the previous
/// champion. Both change the registry's aliases and then tell the server to re-read them; the swap
/// itself (verify, load, warm up, swap) happens behind the answer.
/// </summary>
internal static partial class AdminEndpoints
{
    /// <summary>Longest accepted reason: it is stored in the alias history and shown to operators.</summary>
    public const int MaxReasonLength = 500;

    /// <summary><c>POST /admin/models/{model}/promote</c> with <c>{"version": n, "reason": "…"}</c>.</summary>
    public static Task<IResult> PromoteAsync(string model, HttpContext http, [FromServices] ServingHttp serving, [FromServices] ModelRegistry registry, [FromServices] ILogger<ServingHttp> logger) =>
        serving.RunAsync(http, ServingRoute.Promote, model, async call =>
        {
            RequireModel(registry, model);
            var body = await serving.ReadJsonAsync(http, ServingJson.Context.PromoteRequest, call.Token).ConfigureAwait(false);
            string reason = Reason(body.Reason);
            var aliases = Change(() => registry.Promote(model, body.Version, reason));
            LogPromoted(logger, model, body.Version, reason);
            return Answer(serving, model, "promote", aliases, reason);
        });

    /// <summary><c>POST /admin/models/{model}/rollback</c> with <c>{"reason": "…"}</c>.</summary>
    public static Task<IResult> RollbackAsync(string model, HttpContext http, [FromServices] ServingHttp serving, [FromServices] ModelRegistry registry, [FromServices] ILogger<ServingHttp> logger) =>
        serving.RunAsync(http, ServingRoute.Rollback, model, async call =>
        {
            RequireModel(registry, model);
            var body = await serving.ReadJsonAsync(http, ServingJson.Context.RollbackRequest, call.Token).ConfigureAwait(false);
            string reason = Reason(body.Reason);
            var aliases = Change(() => registry.Rollback(model, reason));
            LogRolledBack(logger, model, aliases.Champion ?? 0, reason);
            return Answer(serving, model, "rollback", aliases, reason);
        });

    /// <summary><c>POST /admin/models/{model}/retrain</c> with <c>{"reason": "…"}</c>: one fine-tune now (202; the run is in the ledger).</summary>
    public static Task<IResult> RetrainAsync(string model, HttpContext http, [FromServices] ServingHttp serving, [FromServices] Core.Contracts.IRetrainRequester loop, [FromServices] ILogger<ServingHttp> logger) =>
        serving.RunAsync(http, ServingRoute.Retrain, model, async call =>
        {
            var body = await serving.ReadJsonAsync(http, ServingJson.Context.RollbackRequest, call.Token).ConfigureAwait(false);
            string reason = Reason(body.Reason);
            try
            {
                await loop.RequestAsync(model, reason, call.Token).ConfigureAwait(false);
            }
            catch (ArgumentException ex)
            {
                throw ServingException.NotFound(ex.Message);
            }

            LogRetrainRequested(logger, model, reason);
            return Results.Json(new { model, action = "retrain", reason, status = "queued" }, statusCode: StatusCodes.Status202Accepted);
        });

    private static void RequireModel(ModelRegistry registry, string model)
    {
        if (!RegistryLayout.IsValidModelName(model) || !registry.Models().Contains(model, StringComparer.Ordinal))
        {
            throw ServingException.NotFound($"no model '{model}' in the registry");
        }
    }

    private static string Reason(string reason)
    {
        string trimmed = reason.Trim();
        return trimmed.Length is > 0 and <= MaxReasonLength
            ? trimmed
            : throw ServingException.BadRequest(string.Create(CultureInfo.InvariantCulture, $"'reason' must be 1 to {MaxReasonLength} characters"));
    }

    /// <summary>The registry refuses what it cannot do (rejected version, nothing to roll back to, a version that does not verify) with a reason: 409.</summary>
    private static ModelAliases Change(Func<ModelAliases> change)
    {
        try
        {
            return change();
        }
        catch (RegistryException ex)
        {
            throw new ServingException(StatusCodes.Status409Conflict, FailureReasons.Conflict, ex.Message);
        }
        catch (ArgumentException ex)
        {
            throw ServingException.BadRequest(ex.Message);
        }
    }

    private static IResult Answer(ServingHttp serving, string model, string action, ModelAliases aliases, string reason)
    {
        bool served = serving.Served.Names.Contains(model, StringComparer.Ordinal);
        if (served)
        {
            serving.Served.Notify(model);
        }

        var body = new AdminResponse(model, action, aliases.Champion, aliases.Previous, aliases.Challenger, reason, served);
        return TypedResults.Json(body, ServingJson.Context.AdminResponse);
    }

    [LoggerMessage(EventId = 712, Level = LogLevel.Warning, Message = "Admin route asked for a fine-tune of {Model}: {Reason}")]
    private static partial void LogRetrainRequested(ILogger logger, string model, string reason);

    [LoggerMessage(EventId = 710, Level = LogLevel.Warning, Message = "Admin route promoted {Model} v{Version} to champion: {Reason}")]
    private static partial void LogPromoted(ILogger logger, string model, int version, string reason);

    [LoggerMessage(EventId = 711, Level = LogLevel.Warning, Message = "Admin route rolled {Model} back to v{Version}: {Reason}")]
    private static partial void LogRolledBack(ILogger logger, string model, int version, string reason);
}
